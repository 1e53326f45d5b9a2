"""Pay Now in a real browser, and the money reaching QuickBooks: the owner sends an invoice, the customer's email (the
demo mailbox) carries the pay link, the Stripe emulator's checkout is paid with 4242…, the success page shows; within
a second the invoice reads PAID with the payment linked and, with Auto-Sync on, the QuickBooks emulator holds the
Payment; then a Stripe payout lands and QuickBooks holds a Deposit whose lines sum to the payout.

The hub is served by uvicorn in demo mode (emulators mounted, the embedded sync worker running) and the signed
webhooks go over the network to it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import Browser, make_business
from tests.hub.oauth.conftest import consent
from tests.hub.sync.conftest import MAPPING
from tests.web.browser import UI_TIMEOUT_MS, chromium, login, serve_hub, within

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.payments.models import Payment, PaymentStatus
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.hub.connections.models import Connection
from fieldhub.providers.quickbooks.emulator import US_REALM

pytestmark = pytest.mark.browser
RIVERBEND = "acct_1RiverbendPlumb0"


async def _prepare(session: Any) -> dict[str, Any]:
    biz = await make_business(session, "pay")
    customer = await create_customer(
        session, biz.tenant.id, {"display_name": "Pat Customer", "email": "pat@example.com"}
    )
    invoice = await invoices.create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": customer.id, "lines": [{"description": "Repair", "unit_price": "149.50"}]},
    )
    await session.commit()
    return {"invoice_id": invoice.id, "owner": biz.owner.email, "tenant_id": biz.tenant.id}


async def _connect(base: str, db_url: str, owner: str, tenant_id: int) -> None:
    """Stripe and QuickBooks connected through the served emulators' consent pages; accounts mapped, Auto-Sync on."""
    async with Browser(base_url=base, timeout=30) as client:
        await client.login(owner)
        for provider, account in (("stripe", RIVERBEND), ("quickbooks", US_REALM)):
            reply, _ = await consent(client, provider, account=account)
            assert reply.status_code == 303, (provider, reply.text)
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as session:
        conn = await session.scalar(
            select(Connection).where(Connection.tenant_id == tenant_id, Connection.provider == "quickbooks")
        )
        assert conn is not None
        conn.settings = {**(conn.settings or {}), "account_mapping": dict(MAPPING)}
        conn.auto_sync = True
        await session.commit()
    await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, Any]]]:
    # Demo mode: the emulators are mounted as in test mode, and the embedded sync worker runs (Auto-Sync).
    with serve_hub(tmp_path_factory.mktemp("pay"), _prepare, {"FIELDHUB_MODE": "demo"}) as (base, seeded, url):
        asyncio.run(_connect(base, url, seeded["owner"], seeded["tenant_id"]))
        yield base, url, seeded


async def _state(db_url: str, invoice_id: int) -> tuple[str, list[tuple[int, str]]]:
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        invoice = await s.get(Invoice, invoice_id)
        assert invoice is not None
        payments = list(await s.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))
        result = str(invoice.status), [(p.id, str(p.status)) for p in payments]
    await engine.dispose()
    return result


def _books(base: str, entity: str) -> list[dict[str, Any]]:
    """What the QuickBooks emulator's company holds, read through its control surface (amounts as exact strings)."""
    r = httpx.get(f"{base}/emulators/quickbooks/_emulator/state", timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()[US_REALM]["objects"][entity].values())


def _wait(what: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_sent_invoice_paid_by_card_reaches_quickbooks_and_the_payout_becomes_a_deposit(served) -> None:  # noqa: ANN001
    base, db_url, seeded = served
    invoice_id = seeded["invoice_id"]
    with chromium() as browser:
        # The owner sends the invoice...
        owner = browser.new_context(viewport={"width": 1280, "height": 900})
        owner.set_default_timeout(UI_TIMEOUT_MS)
        page = login(owner, base, seeded["owner"], f"/invoices/{invoice_id}")
        page.click(f"form[action='/invoices/{invoice_id}/send'] button")
        page.wait_for_url(re.compile(rf"/invoices/{invoice_id}\?msg=sent"))
        # ...and the customer's email, delivered to the demo mailbox, carries the pay link.
        page.goto(f"{base}/dev/mailbox")
        mail = page.locator("details[data-email]", has_text="pat@example.com").first
        mail.wait_for()
        body = mail.locator("pre").inner_text()
        assert "Balance due: $149.50" in body
        link = re.search(rf"{re.escape(base)}/pay/[\w-]+", body)
        assert link, body
        # The customer opens it in their own browser, pays with the test card and lands on the success page.
        customer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        customer.set_default_timeout(UI_TIMEOUT_MS)
        customer.goto(link.group(0))
        customer.wait_for_url(f"{base}/emulators/stripe/c/pay/cs_test_*")
        assert "$149.50" in customer.inner_text("#pay")
        customer.fill("#email", "pat@example.com")
        customer.fill("#cardnumber", "4242 4242 4242 4242")
        customer.click("#pay")
        customer.wait_for_url(re.compile(re.escape(f"{link.group(0)}/done?session_id=cs_test_") + r"\w+$"))
        paid_at = time.monotonic()
        assert "Thank you" in customer.inner_text("h1")

    def paid() -> tuple[str, list[tuple[int, str]]] | None:
        status, payments = asyncio.run(_state(db_url, invoice_id))
        return (status, payments) if status == InvoiceStatus.PAID else None

    deadline = within(1.0)
    found = _wait(paid, deadline)
    assert found, f"not PAID {deadline} s after the success page: {asyncio.run(_state(db_url, invoice_id))}"
    [(payment_id, status)] = found[1]
    assert status == PaymentStatus.SUCCEEDED

    # Auto-Sync: QuickBooks holds the Payment, linked to the synced invoice, within a second of the success page.
    def booked() -> list[dict[str, Any]]:
        return [o for o in _books(base, "Payment") if o.get("PrivateNote") == f"fieldhub payment #{payment_id}"]

    remote = _wait(booked, max(0.0, deadline - (time.monotonic() - paid_at)))
    assert remote, f"QuickBooks has no payment {time.monotonic() - paid_at:.2f} s after the success page"
    invoices_there = _books(base, "Invoice")
    qbo_invoice = next(o for o in invoices_there if o.get("PrivateNote") == f"fieldhub invoice #{invoice_id}")
    assert remote[0]["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_invoice["Id"]
    assert Decimal(remote[0]["TotalAmt"]) == Decimal("149.50") and Decimal(qbo_invoice["Balance"]) == 0

    # A payout lands (the Stripe emulator's payout control): QuickBooks gets a Deposit that sums to it.
    stripe = f"{base}/emulators/stripe/_emulator"
    assert httpx.post(f"{stripe}/clock/advance", params={"seconds": 3 * 86400}, timeout=30).status_code == 200
    run = httpx.post(f"{stripe}/payouts/run", params={"account": RIVERBEND, "complete": "true"}, timeout=30)
    assert run.status_code == 200, run.text
    [payout] = run.json()["payouts"]
    amount = Decimal(payout["amount"]).scaleb(-2)
    assert amount == Decimal("149.50") - Decimal("4.64")  # 2.9% + 30¢ kept by Stripe

    def deposited() -> list[dict[str, Any]]:
        return [o for o in _books(base, "Deposit") if payout["id"] in o.get("PrivateNote", "")]

    deposits = _wait(deposited, 15.0)
    assert deposits, "QuickBooks has no deposit for the payout"
    deposit = deposits[0]
    assert sum(Decimal(line["Amount"]) for line in deposit["Line"]) == amount == Decimal(deposit["TotalAmt"])
    assert [ln["LinkedTxn"][0]["TxnId"] for ln in deposit["Line"] if ln.get("LinkedTxn")] == [remote[0]["Id"]]
