"""The connected QuickBooks page in Chromium: stats, chart, entity cards, history, the Auto-Sync switch, mapping.

Saves var/screenshots/quickbooks.png (and quickbooks-mapping.png) for a person to look at.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import uvicorn
from sqlalchemy import select
from tests.conftest import PASSWORD, TEST_KEYS, Browser, make_business
from tests.hub.oauth.conftest import consent
from tests.web.test_browser_connect import CHROMIUM, CHROMIUM_ARGS, SHOTS, _free_port

from fieldhub.core.customers.models import Customer
from fieldhub.db import make_engine, make_sessionmaker, utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus, SyncRun
from fieldhub.main import create_app
from fieldhub.models import metadata
from fieldhub.settings import Settings

pytestmark = pytest.mark.browser
MAPPING = {
    "service_revenue": "1",
    "product_revenue": "2",
    "sales_tax_payable": "5",
    "discounts": "6",
    "bank_deposit": "4",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('qbo') / 'hub.db'}"

    async def schema() -> None:
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await engine.dispose()

    asyncio.run(schema())
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(mode="test", database_url=url, encryption_keys=TEST_KEYS, public_url=base)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield base, url
    server.should_exit = True
    thread.join(10)


async def _seed(base: str, db_url: str) -> str:
    """A business connected to the emulator's US company, two weeks of runs and a few failed records."""
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        biz = await make_business(session, "shots")
    async with Browser(base_url=base, timeout=30) as client:
        await client.login(biz.owner.email)
        r, _ = await consent(client, "quickbooks")
        assert r.status_code == 303, r.text
    rng = random.Random(7)
    async with sessionmaker() as session:
        conn = await session.scalar(select(Connection).where(Connection.tenant_id == biz.tenant.id))
        conn.settings = {"account_mapping": MAPPING, "customer_direction": "one_way"}
        now = utcnow()
        names = ["Jane Smith", "Oak Street Dental", "Carlos Rivera"]
        customers = [Customer(tenant_id=biz.tenant.id, display_name=n) for n in names]
        session.add_all(customers)
        await session.flush()
        for i in range(1, 41):
            session.add(
                LedgerRow(
                    tenant_id=biz.tenant.id,
                    connection_id=conn.id,
                    entity=rng.choice(["invoice", "payment", "item"]),
                    local_id=100 + i,
                    state=LedgerState.SYNCED,
                    remote_id=str(i),
                    synced_at=now - timedelta(hours=rng.randint(0, 30)),
                )
            )
        session.add(
            LedgerRow(
                tenant_id=biz.tenant.id,
                connection_id=conn.id,
                entity="customer",
                local_id=customers[0].id,
                state=LedgerState.FAILED,
                error_reason="Customer name conflict: a vendor named Jane Smith already exists.",
                error_fix="Rename the customer here, or merge the names in QuickBooks; then Retry.",
            )
        )
        session.add(
            LedgerRow(
                tenant_id=biz.tenant.id,
                connection_id=conn.id,
                entity="customer",
                local_id=customers[1].id,
                state=LedgerState.PENDING,
            )
        )
        for day in range(14):
            for _ in range(rng.randint(2, 7)):
                status = rng.choices([RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED], [85, 10, 5])[0]
                started = now - timedelta(days=day, minutes=rng.randint(0, 600))
                session.add(
                    SyncRun(
                        tenant_id=biz.tenant.id,
                        connection_id=conn.id,
                        trigger=rng.choice(["realtime", "manual"]),
                        direction=rng.choice(["export", "export", "import"]),
                        entity=rng.choice(["invoice", "payment", "customer", "item"]),
                        created=rng.randint(0, 6),
                        updated=rng.randint(0, 4),
                        failed=0 if status == RunStatus.SUCCESS else rng.randint(1, 2),
                        status=status,
                        started_at=started,
                        finished_at=started,
                        duration_ms=rng.randint(120, 2400),
                        errors=[] if status == RunStatus.SUCCESS else [{"reason": "Invalid tax rate"}],
                    )
                )
        await session.commit()
        email = biz.owner.email
    await engine.dispose()
    return email


def test_quickbooks_page_screenshot(served) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    base, db_url = served
    email = asyncio.run(_seed(base, db_url))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
        page.goto(f"{base}/login?next=/settings/integrations/quickbooks")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/settings/integrations/quickbooks")
        dash = page.locator("[data-sync-dashboard]")
        dash.wait_for()
        assert page.locator("[data-stat=failed]").inner_text() == "1"
        assert page.locator(".entity-card").count() == 4
        page.screenshot(path=str(SHOTS / "quickbooks.png"), full_page=True)
        # The Auto-Sync switch saves through HTMX without a reload.
        page.locator(".autosync .track").click()
        page.wait_for_selector(".autosync-state:has-text('Off')")
        # The mapping page reads the live chart of accounts from the emulator.
        page.goto(f"{base}/settings/integrations/quickbooks/{dash.get_attribute('data-sync-dashboard')}/mapping")
        page.locator("#m-bank_deposit option[value='4']").wait_for(state="attached")
        page.screenshot(path=str(SHOTS / "quickbooks-mapping.png"), full_page=True)
        browser.close()
