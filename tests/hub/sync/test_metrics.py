"""GET /metrics: the ledger gauges come from the database at scrape time; provider calls are counted."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup
from tests.hub.sync.test_engine import make_invoice


def samples(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_metrics_report_pending_then_synced_and_provider_calls(client, session, biz: Business, qbo: QBOSetup):
    await make_invoice(session, biz)  # customer, item, invoice: three pending rows
    connection = str(qbo.connection_id)

    before = (await client.get("/metrics")).text
    assert samples(before, "fieldhub_sync_pending", provider="quickbooks", connection=connection) == 3
    calls_before = samples(before, "fieldhub_provider_calls_total", provider="quickbooks", status="200")

    await qbo.sync()

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert samples(after, "fieldhub_sync_pending", provider="quickbooks", connection=connection) == 0
    assert samples(after, "fieldhub_provider_calls_total", provider="quickbooks", status="200") > calls_before
    assert samples(after, "fieldhub_sync_latency_seconds_count", provider="quickbooks") >= 3
    assert re.search(r"^# TYPE fieldhub_sync_failed gauge", after, re.M)


async def test_metrics_token_is_required_when_configured(client, app):
    app.state.settings.metrics_token = type(app.state.settings.metrics_token)("s3cret-scrape")
    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 404
    response = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert response.status_code == 200
    assert "s3cret-scrape" not in response.text


async def test_issue14_item10_metrics_in_production_mode_answer_only_the_token(client, app):
    """A same-host reverse proxy makes every client loopback: in production mode /metrics needs the token."""
    settings = app.state.settings
    assert (await client.get("/metrics")).status_code == 200  # test mode, loopback peer, no token: answered
    settings.mode = "production"
    try:
        assert (await client.get("/metrics")).status_code == 404
        settings.metrics_token = type(settings.metrics_token)("prod-scrape")
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics", headers={"Authorization": "Bearer prod-scrape"})).status_code == 200
    finally:
        settings.mode = "test"
    # Outside production, a client that is not loopback is refused all the same.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 4000)), base_url="http://testserver"
    ) as remote:
        settings.metrics_token = type(settings.metrics_token)("")
        assert (await remote.get("/metrics")).status_code == 404
