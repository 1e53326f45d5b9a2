"""The money path from Stripe into QuickBooks, end to end through both emulators in one app: payments paid on the
Stripe checkout become QBO Payments linked to their synced invoices (waiting in Undeposited Funds), refunds become
refund receipts, and a payout becomes one QBO Deposit that adds up to the payout; ACH that fails never reaches the
books, and ACH that clears after the invoice was paid another way is told to the owner once, with no retries."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import InvoiceStatus
from fieldhub.core.payments.models import Deposit, PaymentStatus, Refund
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.hub.webhooks.inbox import sweep
from fieldhub.hub.webhooks.models import InboxState, WebhookInbox
from fieldhub.providers.quickbooks.emulator import xsd
from fieldhub.providers.quickbooks.mapping import PAYOUT_NOTE
from fieldhub.providers.stripe.emulator.webhooks import signature_header
from tests.hub.sync.conftest import QBOSetup, connect_mapped
from tests.providers.stripe.hub import RIVERBEND, StripeHub, reload, validate_traffic

UNDEPOSITED, CHECKING, FEES = "3", "4", "7"
# In-process emulator calls are fast, but a loaded CI machine can stall one past the default 2 s timeout.
SLOW_MACHINE = {"timeout": 30.0}


async def sent_invoice(session, tenant_id: int, amount: str):  # noqa: ANN001, ANN201
    """A sent invoice for a customer of its own (QuickBooks names are unique)."""
    sent_invoice.made = getattr(sent_invoice, "made", 0) + 1
    customer = await create_customer(
        session, tenant_id, {"display_name": f"Customer {sent_invoice.made}", "email": "pat@example.com"}
    )
    invoice = await invoices.create_invoice(
        session,
        tenant_id,
        {"customer_id": customer.id, "lines": [{"description": "Water heater", "unit_price": amount}]},
    )
    await invoices.send_invoice(session, tenant_id, invoice.id)
    await session.commit()
    return invoice


def _one(books: QBOSetup, entity: str, note: str) -> dict:
    found = [o for o in books.objects(entity).values() if o.get("PrivateNote") == note]
    assert len(found) == 1, (entity, note)
    return found[0]


def _notes(books: QBOSetup, entity: str) -> set[str]:
    return {o.get("PrivateNote", "") for o in books.objects(entity).values()}


async def _payout(stripe_hub: StripeHub) -> dict:
    await stripe_hub.control("POST", "clock/advance", params={"seconds": 3 * 86400})
    run = await stripe_hub.control("POST", "payouts/run", params={"account": RIVERBEND, "complete": "true"})
    assert run.status_code == 200, run.text
    await stripe_hub.delivered()
    payouts = [p for p in (await stripe_hub.control("GET", "objects", params={"object": "payout"})).json()]
    return max(payouts, key=lambda p: p["created"])


async def test_card_payments_refund_and_payout_reach_quickbooks(stripe_hub: StripeHub, session, biz, spec) -> None:
    await stripe_hub.connect()
    books = await connect_mapped(stripe_hub.app, stripe_hub.owner, session)
    first = await sent_invoice(session, biz.tenant.id, "200.00")
    second = await sent_invoice(session, biz.tenant.id, "99.99")
    for invoice in (first, second):
        await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors

    # Each card payment is a QBO Payment linked to its synced invoice, for its amount, in Undeposited Funds.
    for invoice in (first, second):
        invoice, payments = await reload(stripe_hub.app, invoice.id)
        assert invoice.status == InvoiceStatus.PAID
        remote = _one(books, "Payment", f"fieldhub payment #{payments[0].id}")
        qbo_invoice = _one(books, "Invoice", f"fieldhub invoice #{invoice.id}")
        assert remote["Line"][0]["LinkedTxn"] == [{"TxnId": qbo_invoice["Id"], "TxnType": "Invoice"}]
        assert remote["TotalAmt"] == invoice.total == payments[0].amount
        assert remote["DepositToAccountRef"]["value"] == UNDEPOSITED
        assert remote["PaymentRefNum"] == payments[0].reference[:21]
        assert qbo_invoice["Balance"] == Decimal("0")

    # A partial refund in Stripe: a refund receipt drawn on Undeposited Funds, where the payout takes it from.
    _, paid = await reload(stripe_hub.app, first.id)
    r = await stripe_hub.owner.post(
        "/emulators/stripe/v1/refunds",
        data={"payment_intent": paid[0].reference, "amount": "5000"},
        headers={"Authorization": "Bearer demo-stripe-client-secret", "Stripe-Account": RIVERBEND},
    )
    assert r.status_code == 200, r.text
    await stripe_hub.delivered()
    payout = await _payout(stripe_hub)
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors

    async with stripe_hub.app.state.sessionmaker() as s:
        deposit = (await s.scalars(select(Deposit))).one()
    receipt = next(iter(books.objects("RefundReceipt").values()))
    assert receipt["DepositToAccountRef"]["value"] == UNDEPOSITED and receipt["TotalAmt"] == Decimal("50.00")
    remote = _one(books, "Deposit", f"fieldhub deposit #{deposit.id} · stripe payout {payout['id']}")
    paid_out = Decimal(payout["amount"]).scaleb(-2)
    # 299.99 − 50.00 refunded − fees (6.10 + 3.20) = 240.69, exactly what Stripe paid out.
    assert remote["TotalAmt"] == paid_out == Decimal("240.69") == deposit.net
    assert sum(line["Amount"] for line in remote["Line"]) == paid_out
    assert remote["DepositToAccountRef"]["value"] == CHECKING
    linked = {(ln["LinkedTxn"][0]["TxnType"], ln["Amount"]) for ln in remote["Line"] if ln.get("LinkedTxn")}
    assert linked == {("Payment", Decimal("200.00")), ("Payment", Decimal("99.99")), ("RefundReceipt", Decimal("-50"))}
    fees = [ln for ln in remote["Line"] if not ln.get("LinkedTxn")]
    assert [(ln["Amount"], ln["DepositLineDetail"]["AccountRef"]["value"]) for ln in fees] == [(Decimal("-9.30"), FEES)]
    assert PAYOUT_NOTE.search(remote["PrivateNote"])["payout"] == payout["id"]

    # Every body the adapter sent validates against Intuit's XSD; the Stripe traffic against Stripe's spec.
    if xsd.find_specs_dir() is not None:
        for request in books.api_requests():
            if request.method != "POST" or not request.body:
                continue
            body = json.loads(request.body, parse_float=Decimal)
            resource = request.path.rsplit("/", 1)[-1]
            if resource == "batch":
                for op in body["BatchItemRequest"]:
                    entity = next(k for k in op if k not in ("bId", "operation", "optionsData"))
                    assert xsd.validate_request(entity, op[entity]) == [], entity
                continue
            entity = {"refundreceipt": "RefundReceipt"}.get(resource, resource.capitalize())
            assert xsd.validate_request(entity, body) == [], (entity, body)
    validate_traffic(stripe_hub.emu, spec)


async def test_ach_succeeded_reaches_quickbooks_and_failed_never_does(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    books = await connect_mapped(stripe_hub.app, stripe_hub.owner, session)
    good = await sent_invoice(session, biz.tenant.id, "300.00")
    bad = await sent_invoice(session, biz.tenant.id, "400.00")
    sessions = {inv.id: await stripe_hub.open_pay_link(inv) for inv in (good, bad)}
    for sid in sessions.values():
        assert (await stripe_hub.pay_bank(sid)).status_code == 200
    await stripe_hub.delivered()
    await books.sync(client_options=SLOW_MACHINE)
    assert books.objects("Payment") == {}  # processing: not money yet
    await stripe_hub.control("POST", f"checkout/sessions/{sessions[good.id]}/settle?outcome=succeeded")
    await stripe_hub.control("POST", f"checkout/sessions/{sessions[bad.id]}/settle?outcome=failed")
    await stripe_hub.delivered()
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors

    _, good_payments = await reload(stripe_hub.app, good.id)
    bad_invoice, bad_payments = await reload(stripe_hub.app, bad.id)
    assert [p.status for p in good_payments] == [PaymentStatus.SUCCEEDED]
    assert [p.status for p in bad_payments] == [PaymentStatus.FAILED]
    assert bad_invoice.status == InvoiceStatus.SENT
    remote = _one(books, "Payment", f"fieldhub payment #{good_payments[0].id}")
    assert remote["TotalAmt"] == Decimal("300.00")
    # The failed one was never sent: not in the company, not in any request body.
    assert _notes(books, "Payment") == {f"fieldhub payment #{good_payments[0].id}"}
    bad_note = f"fieldhub payment #{bad_payments[0].id}"
    assert not [r for r in books.api_requests() if r.body and bad_note in r.body]
    # Its invoice went to QuickBooks unpaid.
    assert _one(books, "Invoice", f"fieldhub invoice #{bad.id}")["Balance"] == Decimal("400.00")


async def test_ach_clearing_after_the_invoice_was_paid_another_way_is_told_once(
    stripe_hub: StripeHub, session, biz
) -> None:
    await stripe_hub.connect()
    books = await connect_mapped(stripe_hub.app, stripe_hub.owner, session)
    invoice = await sent_invoice(session, biz.tenant.id, "1200.00")
    sid = await stripe_hub.open_pay_link(invoice)
    assert (await stripe_hub.pay_bank(sid)).status_code == 200
    await stripe_hub.delivered()
    # While the bank debit is processing the customer pays by check, in full.
    check = await invoices.record_payment(
        session, biz.tenant.id, invoice.id, {"amount": "1200.00", "method": "check", "reference": "4411"}
    )
    await session.commit()
    await stripe_hub.control("POST", f"checkout/sessions/{sid}/settle?outcome=succeeded")
    await stripe_hub.delivered()
    assert await sweep(env_for(stripe_hub.app)) == 0  # nothing failed, so nothing to retry

    invoice, payments = await reload(stripe_hub.app, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid == Decimal("1200.00")
    ach = next(p for p in payments if p.id != check.id)
    assert ach.status == PaymentStatus.PENDING  # never counted on the invoice
    async with stripe_hub.app.state.sessionmaker() as s:
        inbox = list(await s.scalars(select(WebhookInbox).where(WebhookInbox.state == InboxState.FAILED)))
        notes = list(await s.scalars(select(Notification).where(Notification.kind == "payment.unapplied")))
    assert inbox == []
    assert len(notes) == 1
    assert invoice.number in notes[0].title
    assert "$1,200.00" in notes[0].body and "already been paid" in notes[0].body and "refund" in notes[0].body
    # The same outcome reported again (a redelivery of every event) tells nobody anything new.
    events = (await stripe_hub.control("GET", "objects", params={"object": "event"})).json()
    for event in events:
        await stripe_hub.control("POST", f"webhooks/redeliver/{event['id']}")
    await stripe_hub.delivered()
    async with stripe_hub.app.state.sessionmaker() as s:
        count = len(list(await s.scalars(select(Notification).where(Notification.kind == "payment.unapplied"))))
    assert count == 1

    # The books get the check only; the payout carries the ACH money as what it is, and still adds up.
    payout = await _payout(stripe_hub)
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors
    assert _notes(books, "Payment") == {f"fieldhub payment #{check.id}"}
    async with stripe_hub.app.state.sessionmaker() as s:
        rows = list(await s.scalars(select(LedgerRow).where(LedgerRow.entity == "payment")))
    assert [r.local_id for r in rows] == [check.id] and rows[0].state == LedgerState.SYNCED
    deposit = next(iter(books.objects("Deposit").values()))
    assert deposit["TotalAmt"] == Decimal(payout["amount"]).scaleb(-2)
    assert all("LinkedTxn" not in ln for ln in deposit["Line"])  # no fieldhub payment to link

    # The owner refunds the double payment in Stripe: nothing to reverse on the invoice, and nothing fails.
    r = await stripe_hub.owner.post(
        "/emulators/stripe/v1/refunds",
        data={"payment_intent": ach.reference},
        headers={"Authorization": "Bearer demo-stripe-client-secret", "Stripe-Account": RIVERBEND},
    )
    assert r.status_code == 200, r.text
    await stripe_hub.delivered()
    assert await sweep(env_for(stripe_hub.app)) == 0
    invoice, _ = await reload(stripe_hub.app, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid == Decimal("1200.00")
    async with stripe_hub.app.state.sessionmaker() as s:
        assert list(await s.scalars(select(Refund))) == []
        assert list(await s.scalars(select(WebhookInbox).where(WebhookInbox.state == InboxState.FAILED))) == []


async def test_a_payout_failing_after_it_was_paid_tells_the_owner_to_remove_its_deposit(
    stripe_hub: StripeHub, session, biz
) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "75.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    payout = await _payout(stripe_hub)
    # Stripe: "some failed payouts may initially show as paid but then change to failed".
    failed = {**payout, "status": "failed", "failure_code": "account_closed"}
    event = {
        "id": "evt_late_payout_failure",
        "object": "event",
        "account": RIVERBEND,
        "api_version": "2023-08-16",
        "created": int(time.time()),
        "data": {"object": failed, "previous_attributes": {"status": "paid"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "payout.failed",
    }
    body = json.dumps(event)
    reply = await stripe_hub.owner.post(
        "/webhooks/stripe",
        content=body.encode(),
        headers={
            "Stripe-Signature": signature_header(body, "demo-stripe-webhook-secret", int(time.time())),
            "Content-Type": "application/json",
        },
    )
    assert reply.status_code == 200, reply.text
    async with stripe_hub.app.state.sessionmaker() as s:
        for _ in range(100):
            notes = list(await s.scalars(select(Notification).where(Notification.kind == "payout.failed")))
            if notes:
                break
            await asyncio.sleep(0.05)
    assert len(notes) == 1
    assert "already recorded it as a bank deposit" in notes[0].body and payout["id"] in notes[0].body
