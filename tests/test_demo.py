"""The demo business loads every kind of record through the services, and a second load adds nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.core.customers.models import Customer
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.core.events import DomainEventRow
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.jobs.models import Job, TimeBlock
from fieldhub.core.jobs.service import week_start
from fieldhub.core.payments.models import Payment, Refund
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.demo import DEMO_PASSWORD, DEMO_SLUG, load_demo
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation
from fieldhub.providers.quickbooks.emulator import US_REALM
from fieldhub.providers.quickbooks.emulator.seed import US_MAPPING
from fieldhub.settings import Settings
from tests.conftest import TEST_KEYS, Browser
from tests.hub.oauth.conftest import consent
from tests.web.browser import free_port

MODELS = (User, Customer, Item, TaxRate, Invoice, Payment, Refund, Estimate, Job, TimeBlock, DomainEventRow)


async def _counts(session) -> dict[str, int]:
    return {m.__name__: await session.scalar(select(func.count()).select_from(m)) for m in MODELS}


async def test_demo_loads_everything_once(settings):
    assert await load_demo(settings) is True
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            first = await _counts(session)
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            assert first["Customer"] == 25 and first["Item"] == 15 and first["TaxRate"] == 2
            assert first["Invoice"] == 40 and first["Estimate"] == 10 and first["Refund"] == 1
            techs = list(await session.scalars(select(User).where(User.role == Role.TECHNICIAN)))
            assert len(techs) == 3

            customers = list(await session.scalars(select(Customer)))
            assert all(c.billing_line1 and c.billing_city and c.billing_postal_code for c in customers)
            items = list(await session.scalars(select(Item)))
            assert {i.kind for i in items} == {"service", "product"} and any(i.taxable for i in items)

            statuses = Counter((await session.scalars(select(Invoice.status))).all())
            assert set(statuses) == set(InvoiceStatus), statuses
            methods = set((await session.scalars(select(Payment.method))).all())
            assert len(methods) >= 3, methods
            # Totals add up on every invoice: paid = payments − refunds, balance = total − paid (VOID owes 0).
            for inv in await session.scalars(select(Invoice)):
                paid = await session.scalar(select(func.sum(Payment.amount)).where(Payment.invoice_id == inv.id)) or 0
                back = await session.scalar(select(func.sum(Refund.amount)).where(Refund.invoice_id == inv.id)) or 0
                assert inv.amount_paid == paid - back
                if inv.status != InvoiceStatus.VOID:
                    assert inv.balance == inv.total - inv.amount_paid

            est_statuses = set((await session.scalars(select(Estimate.status))).all())
            assert est_statuses == set(EstimateStatus)

            zone = ZoneInfo(tenant.timezone)
            monday = week_start(datetime.now(UTC).astimezone(zone).date())
            job_rows = list(await session.scalars(select(Job)))
            assert len(job_rows) >= 15
            for job in job_rows:
                local = job.scheduled_start.astimezone(zone).date()
                assert monday <= local < monday + timedelta(days=7)
                assert job.technicians and all(u.role == Role.TECHNICIAN for u in job.technicians)
            assert len({u.id for j in job_rows for u in j.technicians}) == 3
            assert first["TimeBlock"] >= 2
            assert first["DomainEventRow"] > 100  # everything went through the services

        assert await load_demo(settings) is False
        async with make_sessionmaker(engine)() as session:
            assert await _counts(session) == first
    finally:
        await engine.dispose()


async def test_issue15_item8_the_demo_is_one_business(settings, app):
    """The demo tenant, its QuickBooks company, its Stripe account and the first account on every emulator's
    sign-in page are the same business (Riverbend), not a stranger's."""
    await load_demo(settings)
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            owner = await session.scalar(select(User).where(User.tenant_id == tenant.id, User.role == Role.OWNER))
    finally:
        await engine.dispose()
    domain = tenant.email.rpartition("@")[2].split(".")[0]  # "riverbend"
    emulators = app.state.endpoints.emulators
    company = emulators["quickbooks"].companies[US_REALM].seed
    assert company.name == tenant.name and company.email == tenant.email
    stripe = emulators["stripe"].demo_accounts()[0]
    assert stripe["business_profile"]["name"] == tenant.name and domain in stripe["email"]
    checked = []
    for key, emulator in sorted(emulators.items()):
        accounts = getattr(getattr(emulator, "oauth", None), "accounts", None)
        if not accounts:
            continue
        first = accounts[0]
        assert first.name in (tenant.name, owner.name) or tenant.name in first.extra.values(), (key, first)
        assert domain in first.email, (key, first)
        checked.append(key)
    assert len(checked) >= 8, checked


# --- issue 15 item 13: the demo remembers its providers across restarts --------------------------------------
DEMO = [sys.executable, "-c", "from fieldhub.cli import app; app()", "demo"]
OWNER = "owner@example.com"


class DemoProcess:
    """`fieldhub demo` in its own process on a free port, started, stopped (SIGTERM) or killed (SIGKILL)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
        self.env = {
            **os.environ,
            "FIELDHUB_MODE": "demo",
            "FIELDHUB_DATABASE_URL": self.db_url,
            "FIELDHUB_PORT": str(self.port),
            "FIELDHUB_ENCRYPTION_KEYS": TEST_KEYS,
        }
        self.log = folder / "demo.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(DEMO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self.process

    async def start(self) -> None:
        process = self.launch()
        deadline = time.monotonic() + 180
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                assert process.poll() is None, f"the demo exited: {self.log.read_text()[-3000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.base}/login")).status_code == 200:
                        return
                assert time.monotonic() < deadline, "the demo did not start within 180 s"
                await asyncio.sleep(0.25)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError("the demo did not stop within 60 s of SIGTERM") from None


async def _connections(db_url: str) -> dict[str, Connection]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return {c.provider: c for c in await session.scalars(select(Connection))}
    finally:
        await engine.dispose()


async def _synced(db_url: str, connection_id: int) -> list[LedgerRow]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(LedgerRow).where(
                    LedgerRow.connection_id == connection_id,
                    LedgerRow.state == LedgerState.SYNCED,
                    LedgerRow.remote_id.is_not(None),
                    LedgerRow.operation != Operation.DELETE,
                )
            )
            return list(rows)
    finally:
        await engine.dispose()


async def _assert_kept(demo: DemoProcess) -> int:
    """Both connections are Connected, and QuickBooks holds everything the hub's ledger says it synced there."""
    conns = await _connections(demo.db_url)
    qbo, pay = conns["quickbooks"], conns["stripe"]
    assert qbo.status == ConnectionStatus.CONNECTED and pay.status == ConnectionStatus.CONNECTED
    remote = {name: entity.remote for name, entity in registry.get("quickbooks").entities.items()}
    async with httpx.AsyncClient(base_url=demo.base, timeout=30) as http:
        company = (await http.get("/emulators/quickbooks/_emulator/state")).json()[qbo.account_id]["objects"]
        synced = await _synced(demo.db_url, qbo.id)
        missing = [(r.entity, r.remote_id) for r in synced if r.remote_id not in company[remote[r.entity]]]
        assert synced and missing == []
        # Stripe still has the account connected to the platform (the hub's key reaches it as before).
        secret = Settings(mode="demo").provider("stripe").client_secret.get_secret_value()
        account = await http.get(
            "/emulators/stripe/v1/account",
            headers={"Authorization": f"Bearer {secret}", "Stripe-Account": pay.account_id},
        )
        assert account.status_code == 200 and account.json()["id"] == pay.account_id
    return len(synced)


async def _wait_synced(demo: DemoProcess, connection_id: int, more_than: int) -> int:
    deadline = time.monotonic() + 120
    while (count := len(await _synced(demo.db_url, connection_id))) <= more_than:
        assert time.monotonic() < deadline, f"nothing more synced to QuickBooks in 120 s ({count})"
        await asyncio.sleep(0.5)
    return count


@pytest.mark.slow
async def test_issue15_item13_demo_keeps_its_providers_across_a_stop_and_a_kill(tmp_path: Path) -> None:
    demo = DemoProcess(tmp_path)
    await demo.start()
    try:
        async with Browser(base_url=demo.base, timeout=60) as owner:
            await owner.login(OWNER, DEMO_PASSWORD)
            for key in ("quickbooks", "stripe"):
                r, _ = await consent(owner, key)
                assert r.status_code == 303, r.text
            qbo = (await _connections(demo.db_url))["quickbooks"]
            # The test sync sends a customer, an invoice and a payment to QuickBooks at once.
            r = await owner.submit(f"/settings/integrations/quickbooks/{qbo.id}/mapping", US_MAPPING)
            assert r.status_code == 303, r.text
            r = await owner.submit(f"/settings/integrations/quickbooks/{qbo.id}/test-sync", {"amount": "1.00"})
            assert r.status_code == 200, r.text
        first = await _wait_synced(demo, qbo.id, 0)

        demo.stop(signal.SIGTERM)
        await demo.start()
        kept = await _assert_kept(demo)
        assert kept >= first

        # Bring every existing record over, and kill -9 while the backfill is under way.
        async with Browser(base_url=demo.base, timeout=60) as owner:
            await owner.login(OWNER, DEMO_PASSWORD)
            r = await owner.submit(f"/settings/integrations/quickbooks/{qbo.id}/backfill", {"transactions": "on"})
            assert r.status_code == 200, r.text
        await _wait_synced(demo, qbo.id, kept + 5)
        demo.stop(signal.SIGKILL)
        await demo.start()
        await _assert_kept(demo)

        # The grants themselves work: with its access token expired, the hub refreshes with the refresh token the
        # emulator kept, and reads the live chart of accounts.
        async with Browser(base_url=demo.base, timeout=60) as owner:
            r = await owner.post("/emulators/quickbooks/_emulator/tokens/expire")
            assert r.status_code == 200 and r.json()["expired"] >= 1
            await owner.login(OWNER, DEMO_PASSWORD)
            page = await owner.get(f"/settings/integrations/quickbooks/{qbo.id}/mapping")
            assert page.status_code == 200 and "Checking" in page.text
        await _assert_kept(demo)
    finally:
        demo.stop(signal.SIGTERM)
