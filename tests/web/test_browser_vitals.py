"""Core Web Vitals in Chromium at 1280 and 390 px: p75 tiles in web.dev's category colours and the trend charts
from the CrUX emulator, then an alert once the emulator's site turns poor (issue 19 item 3)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import Browser, make_business
from tests.web import browser
from tests.web.browser import SHOTS, UI_TIMEOUT_MS

pytestmark = pytest.mark.browser
SITE = "https://riverbend.example"
GREEN, RED = "rgb(12, 206, 107)", "rgb(255, 78, 66)"


async def _business(session: Any) -> str:
    return (await make_business(session, "vitals")).owner.email


async def _connect(base: str, email: str) -> None:
    async with Browser(base_url=base, timeout=30) as client:
        await client.login(email)
        r = await client.submit("/integrations/pagespeed/api-key", {"api_key": "demo-pagespeed-api-key"})
        assert r.status_code == 303, r.text


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with browser.serve_hub(tmp_path_factory.mktemp("vitals"), _business) as (base, email, _):
        asyncio.run(_connect(base, email))
        yield base, email


def test_issue19_item3_core_web_vitals_colours_charts_and_poor_alert(hub) -> None:  # noqa: ANN001
    base, email = hub
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser.chromium() as chromium:
        for width in (1280, 390):
            context = chromium.new_context(viewport={"width": width, "height": 900})
            errors = browser.watch_errors(context)
            page = browser.login(context, base, email, "/seo/vitals")
            if width == 1280:
                page.fill("#site", SITE)
                page.click("text=Save and measure")
                page.wait_for_selector("text=Website saved and measured", timeout=UI_TIMEOUT_MS)
                lcp = page.locator('[data-form="phone"] [data-metric="lcp_ms"]')
                assert lcp.get_attribute("data-category") == "good"
                assert lcp.evaluate("e => getComputedStyle(e).borderTopColor") == GREEN
                assert page.locator("[data-vitals-alert]").count() == 0
                assert page.locator('[data-form="phone"] svg.chart circle').count() == 75  # 25 periods x 3 metrics
            else:
                httpx.post(f"{base}/emulators/pagespeed/_emulator/crux/sites", json={"origin": SITE, "lcp": 5200})
                page.click("text=Fetch now")
                page.wait_for_selector("[data-vitals-alert]", timeout=UI_TIMEOUT_MS)
                lcp = page.locator('[data-form="phone"] [data-metric="lcp_ms"]')
                assert lcp.get_attribute("data-category") == "poor" and "5.2 s" in lcp.inner_text()
                assert lcp.evaluate("e => getComputedStyle(e).borderTopColor") == RED
                assert "LCP on phone" in page.locator("[data-vitals-alert]").inner_text()
            wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert wide <= inner, f"{wide} px wide in a {inner} px window"
            page.screenshot(path=str(SHOTS / f"vitals-{width}.png"), full_page=True)
            assert not browser.csp_refusals(errors), errors
            context.close()
