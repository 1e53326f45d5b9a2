"""Issue 14 item 8: security headers on every answer of the hub, and pages that satisfy its Content-Security-Policy."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Browser, Business

from fieldhub.core.accounts.service import create_api_token
from fieldhub.web.headers import CSP
from fieldhub.web.templating import PROVIDERS, STATIC, TEMPLATES


def _secured(r, *, cached: bool = False) -> None:  # noqa: ANN001
    assert r.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "'unsafe-eval'" not in CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    if cached:
        assert "no-store" not in r.headers.get("cache-control", "")
    else:
        assert r.headers["cache-control"] == "no-store"


async def test_issue14_item8_headers_on_pages_api_and_login(
    client: Browser, owner: Browser, make_client, session, biz: Business
) -> None:
    token = await create_api_token(session, biz.owner, "t")
    await session.commit()
    for r in (
        await owner.get("/"),
        await owner.get("/customers"),
        await owner.get("/settings/integrations"),
        await owner.get("/nowhere"),  # the 404 page too
        await owner.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"}),
        await owner.get("/api/v1/customers"),  # and a 401
    ):
        _secured(r)
    async with make_client() as stranger:
        _secured(await stranger.get("/login"))
        _secured(await stranger.get("/static/app.css"), cached=True)
        # The emulators stand in for other sites: their pages keep their own rules (inline styles included).
        emulator = await stranger.get("/emulators/quickbooks/_emulator/oauth")
        assert "content-security-policy" not in emulator.headers


def _templates() -> list[Path]:
    return sorted([*TEMPLATES.rglob("*.html"), *PROVIDERS.glob("*/templates/**/*.html")])


def test_issue14_item8_every_template_keeps_to_the_policy() -> None:
    """No inline script, event handler, <style> element or javascript: URL in any page of the hub: the CSP
    would refuse them and the page would break without a word."""
    found = []
    for path in _templates():
        text = path.read_text()
        for what, pattern in (
            ("inline script", r"<script(?![^>]*\bsrc=)[^>]*>"),
            ("event handler", r"\son[a-z]+\s*="),
            ("style element", r"<style\b"),
            ("javascript: URL", r"javascript:"),
        ):
            found += [f"{path.name}: {what}: {m.group(0)}" for m in re.finditer(pattern, text, re.I)]
    assert len(_templates()) > 40
    assert found == []
    for script in STATIC.glob("*.js"):  # the hub's own scripts (vendored ones aside) evaluate no strings
        assert not re.search(r"\beval\(|new Function\(", script.read_text()), script.name
    base = (TEMPLATES / "base.html").read_text()
    assert '"includeIndicatorStyles": false' in base and '"allowEval": false' in base  # htmx adds neither
