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
from concurrent.futures import ThreadPoolExecutor
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
    made = {}
    for key, amount in (("invoice_id", "149.50"), ("ach_invoice_id", "420.00"), ("off_invoice_id", "88.00")):
        invoice = await invoices.create_invoice(
            session,
            biz.tenant.id,
            {"customer_id": customer.id, "lines": [{"description": "Repair", "unit_price": amount}]},
        )
        made[key] = invoice.id
    await session.commit()
    return {**made, "owner": biz.owner.email, "tenant_id": biz.tenant.id}


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
        # ...and the customer's email, delivered to the demo mailbox, carries the Pay Now button.
        page.goto(f"{base}/dev/mailbox")
        mail = page.locator("details[data-email]", has_text="pat@example.com").first
        mail.wait_for()
        assert "$149.50" in mail.locator("[data-email-html]").inner_text()
        link = re.fullmatch(rf"{re.escape(base)}/pay/[\w-]+", mail.locator("a[data-pay-now]").get_attribute("href"))
        assert link and mail.locator("a[data-pay-now]").inner_text() == "Pay Now"
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


def _no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_issue15_item7_pay_now_buttons_and_a_pending_bank_payment(served) -> None:  # noqa: ANN001
    """Pay Now is a button on the invoice page (1280 and 390 px), on the printout and in the email; paid by bank, the
    invoice shows the payment processing, offers no refund of it and no second payment, and the link says so."""
    base, db_url, seeded = served
    invoice_id = seeded["ach_invoice_id"]
    with chromium() as browser:
        owner = browser.new_context(viewport={"width": 1280, "height": 900})
        owner.set_default_timeout(UI_TIMEOUT_MS)
        page = login(owner, base, seeded["owner"], f"/invoices/{invoice_id}")
        page.click(f"form[action='/invoices/{invoice_id}/send'] button")
        page.wait_for_url(re.compile(rf"/invoices/{invoice_id}\?msg=sent"))
        number = page.locator("h1").inner_text().split()[1]
        button = page.locator("#pay-now")
        assert button.is_visible() and button.inner_text().strip() == "Pay Now"
        link = button.get_attribute("href")
        assert link and link.startswith(f"{base}/pay/")
        assert link not in page.inner_text("main")  # a button, not an address to copy
        assert _no_sideways_scroll(page)
        page.goto(f"{base}/invoices/{invoice_id}/print")
        assert (
            page.locator("#pay-now").inner_text() == "Pay Now"
            and page.locator("#pay-now").get_attribute("href") == link
        )

        phone = browser.new_context(viewport={"width": 390, "height": 844})
        phone.set_default_timeout(UI_TIMEOUT_MS)
        small = login(phone, base, seeded["owner"], f"/invoices/{invoice_id}")
        assert small.locator("#pay-now").is_visible() and _no_sideways_scroll(small)

        page.goto(f"{base}/dev/mailbox")
        mail = page.locator("details[data-email]", has_text=f"Invoice {number} ").first
        mail.wait_for()
        assert mail.locator("a[data-pay-now]").get_attribute("href") == link

        # The customer clicks Pay Now and pays with the test bank account: the debit is processing.
        customer = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        customer.set_default_timeout(UI_TIMEOUT_MS)
        customer.goto(link)
        customer.wait_for_url(f"{base}/emulators/stripe/c/pay/cs_test_*")
        customer.fill("#email", "pat@example.com")
        customer.click("#pay-bank")
        customer.wait_for_url(re.compile(re.escape(f"{link}/done?session_id=cs_test_") + r"\w+$"))

        def pending() -> list[tuple[int, str]]:
            # Playwright's sync API runs an event loop in this thread: the database is read from another one.
            with ThreadPoolExecutor(1) as pool:
                _, payments = pool.submit(asyncio.run, _state(db_url, invoice_id)).result()
            return [p for p in payments if p[1] == PaymentStatus.PENDING]

        found = _wait(pending, 15.0)
        assert found, "no pending bank payment recorded"
        [(payment_id, _)] = found
        page.goto(f"{base}/invoices/{invoice_id}")
        note = page.locator("#pay-off[data-processing=true]")
        assert "A bank payment of $420.00" in note.inner_text() and "is processing" in note.inner_text()
        assert page.locator("#pay-now").count() == 0
        assert page.locator(f"form[action='/invoices/{invoice_id}/payments/{payment_id}/refund']").count() == 0
        assert _no_sideways_scroll(page)

        # Opening the link again: the checkout page says it's processing, and takes nothing.
        customer.goto(link)
        assert customer.locator("#pay-processing").inner_text() == "Payment processing"
        assert "is processing" in customer.inner_text("#pay-error")
        assert _no_sideways_scroll(customer)


def test_issue15_item7_a_disconnected_stripe_shows_no_charges_and_no_pay_now(served) -> None:  # noqa: ANN001
    """Runs last in this module: it disconnects the business's Stripe."""
    base, _, seeded = served
    invoice_id = seeded["off_invoice_id"]
    with chromium() as browser:
        owner = browser.new_context(viewport={"width": 1280, "height": 900})
        owner.set_default_timeout(UI_TIMEOUT_MS)
        page = login(owner, base, seeded["owner"], "/settings/billing/stripe")
        panel = page.locator("[data-connection-panel=stripe]")
        assert panel.locator("[data-detail=Charges]").inner_text() == "Enabled"
        page.on("dialog", lambda dialog: dialog.accept())
        panel.locator(".disconnect-form button").click()
        page.locator("[data-connection-panel=stripe] .connection-status", has_text="Disconnected").wait_for()
        page.goto(f"{base}/settings/billing/stripe")
        shown = page.locator("[data-connection-panel=stripe]").inner_text()
        assert "Disconnected" in shown and "Charges" not in shown and "Enabled" not in shown
        assert page.locator("[data-connection-panel=stripe] .connect-button").is_visible()

        page.goto(f"{base}/invoices/{invoice_id}")
        page.click(f"form[action='/invoices/{invoice_id}/send'] button")
        page.wait_for_url(re.compile(rf"/invoices/{invoice_id}\?msg=sent"))
        assert page.locator("#pay-now").count() == 0 and "/pay/" not in page.content()
        assert "Online payment is off" in page.locator("#pay-off").inner_text()
        page.goto(f"{base}/invoices/{invoice_id}/print")
        assert page.locator("#pay-now").count() == 0 and "/pay/" not in page.content()
