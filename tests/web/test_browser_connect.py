"""Connecting QuickBooks in a real browser: the 600x700 sign-in window, and the full-page fallback when it's blocked.

Serves the app (test mode: every emulator mounted at /emulators/<key>) with uvicorn on a free port and
drives Debian's Chromium through Playwright.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import make_business
from tests.web import browser
from tests.web.browser import SHOTS, UI_TIMEOUT_MS

pytestmark = pytest.mark.browser

COMPANY = "Riverbend Plumbing & Heating"
REALM = "9341453050001234"


async def _prepare(session: Any) -> dict[str, str]:
    return {slug: (await make_business(session, slug)).owner.email for slug in ("popup", "blocked")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with browser.serve_hub(tmp_path_factory.mktemp("connect"), _prepare) as (base, emails, _):
        yield base, emails


@pytest.fixture(scope="module")
def chromium(served):  # noqa: ANN001, ANN201 - playwright types
    with browser.chromium() as launched:
        yield launched


def _login(context, base: str, email: str):  # noqa: ANN001, ANN202
    page = browser.login(context, base, email, "/settings/integrations/quickbooks")
    page.locator("[data-connection-panel=quickbooks]").wait_for()
    return page


def _connect_in_popup(page) -> None:  # noqa: ANN001
    with page.expect_popup() as opened:
        page.click("[data-connection-panel=quickbooks] a.connect-button")
    popup = opened.value
    popup.wait_for_load_state()
    assert "/emulators/quickbooks/connect/oauth2" in popup.url
    size = popup.evaluate("[window.innerWidth, window.innerHeight]")
    assert size == [600, 700], size
    # Listen before clicking: the callback page can close the window before a later wait would start
    # listening, and a missed "close" event then looks like a hang (this raced in full runs).
    with popup.expect_event("close", timeout=UI_TIMEOUT_MS):
        popup.click("#approve")


def _expect_connected(page) -> None:  # noqa: ANN001
    panel = page.locator("[data-connection-panel=quickbooks]")
    # After a reconnect the panel still names the company while it says "Disconnected": wait for the
    # status itself (exactly "Connected"; "Disconnected" contains it).
    panel.locator(".connection-status", has_text=re.compile(r"^\s*Connected\s*$")).wait_for(timeout=UI_TIMEOUT_MS)
    panel.locator(".account-name", has_text=COMPANY).wait_for(timeout=UI_TIMEOUT_MS)
    assert panel.locator('[data-detail="Realm ID"]').inner_text() == REALM
    assert panel.locator(".connection-status").inner_text() == "Connected"
    assert panel.locator(".health-label").inner_text() == "Excellent"
    assert panel.locator(".health .dots i[style]").count() == 5


def test_connect_disconnect_reconnect_through_the_popup(served, chromium) -> None:  # noqa: ANN001
    base, emails = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    errors = browser.watch_errors(context)  # the popup's last page reports back through /static/popup.js
    page = _login(context, base, emails["popup"])
    _connect_in_popup(page)
    _expect_connected(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "quickbooks-connected.png"), full_page=True)

    messages = []

    def answer(dialog) -> None:  # noqa: ANN001
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.click("[data-connection-panel=quickbooks] .disconnect-form button")
    panel = page.locator("[data-connection-panel=quickbooks]")
    panel.locator(".connection-status", has_text="Disconnected").wait_for(timeout=UI_TIMEOUT_MS)
    assert panel.locator(".connection-status").inner_text() == "Disconnected"
    assert panel.locator(".health-label").inner_text() == "Disconnected"
    assert "stay" in messages[0] and "Future syncing stops" in messages[0]

    _connect_in_popup(page)
    _expect_connected(page)
    assert browser.csp_refusals(errors) == []
    # Let the company go: the next test's business connects the same one, which only one business may hold.
    page.click("[data-connection-panel=quickbooks] .disconnect-form button")
    panel.locator(".connection-status", has_text="Disconnected").wait_for(timeout=UI_TIMEOUT_MS)
    context.close()


def test_blocked_popup_falls_back_to_this_tab(served, chromium) -> None:  # noqa: ANN001
    base, emails = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script("window.open = function () { return null; };")
    page = _login(context, base, emails["blocked"])
    page.click("[data-connection-panel=quickbooks] a.connect-button")
    blocked = page.locator("[data-connection-panel=quickbooks] .popup-blocked")
    blocked.wait_for(state="visible")
    assert "Your browser blocked the sign-in window" in blocked.inner_text()
    blocked.locator("a", has_text="Continue in this tab").click()
    page.wait_for_url("**/emulators/quickbooks/connect/oauth2**")
    page.click("#approve")
    page.wait_for_url("**/settings/integrations/quickbooks?connected=quickbooks")
    _expect_connected(page)
    context.close()
