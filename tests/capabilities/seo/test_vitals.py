"""Core Web Vitals from the Chrome UX Report emulator: p75 history stored per period and graded, a fetch log, an
alert when a metric turns poor, and CrUX's 404 for a site without data (issue 19 item 3)."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import func, select

from fieldhub.capabilities.seo import service
from fieldhub.capabilities.seo.models import SeoFetch, VitalsReading
from fieldhub.hub.notify.models import Notification

SITE = "https://riverbend.example"


async def _connect(owner) -> None:  # noqa: ANN001
    r = await owner.submit("/integrations/pagespeed/api-key", {"api_key": "demo-pagespeed-api-key"})
    assert r.status_code in (200, 303), r.text


async def _count(session, model, *where) -> int:  # noqa: ANN001
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_issue19_item3_thresholds_are_web_vitals() -> None:
    assert [service.category("lcp_ms", v) for v in (2500, 2501, 4000, 4001)] == [
        "good",
        "needs-improvement",
        "needs-improvement",
        "poor",
    ]
    assert service.category("inp_ms", 200) == "good" and service.category("inp_ms", 501) == "poor"
    assert service.category("cls", Decimal("0.10")) == "good" and service.category("cls", Decimal("0.26")) == "poor"


async def test_issue19_item3_vitals_history_categories_and_poor_alert(app, owner, session) -> None:
    await _connect(owner)
    r = await owner.submit("/seo/vitals/site", {"site": "riverbend.example/"})
    assert r.status_code == 303, r.text
    assert await _count(session, VitalsReading) == 50  # 25 weekly periods, phone and desktop
    cls = await session.scalar(select(VitalsReading.cls).where(VitalsReading.cls.is_not(None)).limit(1))
    assert isinstance(cls, Decimal)  # CrUX sends CLS p75 as a string with two decimals
    page = (await owner.get("/seo/vitals")).text
    assert 'data-form="phone"' in page and 'data-form="desktop"' in page
    assert 'data-category="good"' in page and "data-vitals-alert" not in page
    assert page.count('<svg class="chart"') == 6 and "data-fetch" in page
    # The site turns poor at CrUX: the next fetch shows it, in red, and alerts the owner once.
    turned = await owner.post("/emulators/pagespeed/_emulator/crux/sites", json={"origin": SITE, "lcp": 5200})
    assert turned.status_code == 200
    r = await owner.submit("/seo/vitals/fetch")
    assert r.status_code == 303 and r.headers["location"].endswith("msg=fetched")
    page = (await owner.get("/seo/vitals")).text
    assert 'data-metric="lcp_ms" data-category="poor"' in page and "5.2 s" in page and "data-vitals-alert" in page
    alerts = list(await session.scalars(select(Notification).where(Notification.kind == service.ALERT_KIND)))
    assert len(alerts) == 2 and all("LCP 5.2 s" in a.body for a in alerts)  # phone and desktop
    await owner.submit("/seo/vitals/fetch")
    assert await _count(session, Notification, Notification.kind == service.ALERT_KIND) == 2  # still poor: no repeat
    assert await _count(session, SeoFetch) == 3


async def test_issue19_item3_crux_404_is_no_data_not_a_failure(app, owner, session) -> None:
    await _connect(owner)
    emu = app.state.endpoints.emulators["pagespeed"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu), base_url="http://crux") as http:
        key = next(iter(emu.api_keys))
        r = await http.post("/v1/records:queryRecord", params={"key": key}, json={"origin": "https://nodata.example"})
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
        r = await http.post("/v1/records:queryRecord", params={"key": "wrong"}, json={"origin": SITE})
        assert r.status_code == 400 and "API_KEY_INVALID" in r.text
        r = await http.post(
            "/v1/records:queryRecord", params={"key": key}, json={"origin": SITE, "formFactor": "PHONE"}
        )
        record = r.json()["record"]
        assert isinstance(record["metrics"]["cumulative_layout_shift"]["percentiles"]["p75"], str)
        assert isinstance(record["metrics"]["largest_contentful_paint"]["percentiles"]["p75"], int)
    await owner.submit("/seo/vitals/site", {"site": "https://nodata.example"})
    fetch = await session.scalar(select(SeoFetch))
    assert fetch is not None and fetch.ok and "no field data" in fetch.detail
    assert await _count(session, VitalsReading) == 0
    page = (await owner.get("/seo/vitals")).text
    assert "No field data for https://nodata.example yet." in page
