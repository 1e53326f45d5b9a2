"""Pay Now end to end through the mounted Stripe emulator: pay link → checkout → signed webhook → invoice paid;
ACH settling both ways, duplicates and disorder, refunds, payouts as deposits, disconnect; the spec as referee."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from fieldhub.core.invoices.models import InvoiceStatus
from fieldhub.core.payments.models import Deposit, DepositLineKind, PaymentMethod, PaymentStatus, Refund
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.sync.models import LedgerRow
from fieldhub.hub.webhooks.models import InboxState, WebhookInbox
from fieldhub.providers.stripe.emulator.webhooks import signature_header
from tests.hub.oauth.conftest import consent
from tests.providers.stripe.hub import RIVERBEND, StripeHub, reload, sent_invoice, validate_traffic


async def _count(app, model, *where) -> int:  # noqa: ANN001
    async with app.state.sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def test_card_payment_marks_the_invoice_paid(stripe_hub: StripeHub, session, biz, spec) -> None:
    conn = await stripe_hub.connect()
    assert conn.account_id == RIVERBEND and conn.account_name == "Riverbend Plumbing & Heating"
    invoice = await sent_invoice(session, biz.tenant.id, "250.00")
    session_id = await stripe_hub.open_pay_link(invoice)
    # Opening the link again replays the same session (idempotency key per invoice and balance).
    assert await stripe_hub.open_pay_link(invoice) == session_id
    paid = await stripe_hub.pay_card(session_id)
    assert paid.status_code == 303
    assert paid.headers["location"] == f"http://testserver/pay/{invoice.public_token}/done?session_id={session_id}"
    await stripe_hub.delivered()
    invoice, payments = await reload(stripe_hub.app, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.balance == Decimal("0.00")
    assert len(payments) == 1
    assert payments[0].amount == Decimal("250.00") and payments[0].status == PaymentStatus.SUCCEEDED
    assert payments[0].method == PaymentMethod.CARD and payments[0].reference.startswith("pi_")
    done = await stripe_hub.owner.get(paid.headers["location"])
    assert done.status_code == 200 and "Thank you" in done.text
    # The session the hub created names the invoice, takes card and ACH, on the connected account.
    created = (await stripe_hub.control("GET", "objects", params={"object": "checkout.session"})).json()
    assert len(created) == 1 and created[0]["account"] == RIVERBEND
    assert created[0]["client_reference_id"] == str(invoice.id)
    assert created[0]["metadata"]["invoice_id"] == str(invoice.id)
    assert created[0]["payment_method_types"] == ["card", "us_bank_account"]
    assert created[0]["amount_total"] == 25000
    assert validate_traffic(stripe_hub.emu, spec) >= 2
    # Every delivery reached the inbox once and was processed or deliberately ignored.
    async with stripe_hub.app.state.sessionmaker() as s:
        rows = list(await s.scalars(select(WebhookInbox)))
    assert rows and all(r.state in (InboxState.PROCESSED, InboxState.IGNORED) for r in rows)
    assert {r.event_type for r in rows if r.state == InboxState.PROCESSED} == {"checkout.session.completed"}
    assert all(r.tenant_id == biz.tenant.id for r in rows)


async def test_same_event_five_times_gives_one_payment(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "80.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    events = (await stripe_hub.control("GET", "objects", params={"object": "event"})).json()
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    for _ in range(5):
        r = await stripe_hub.control("POST", f"webhooks/redeliver/{completed['id']}")
        assert r.status_code == 200
        await stripe_hub.delivered()
    _, payments = await reload(stripe_hub.app, invoice.id)
    assert len(payments) == 1
    deliveries = (await stripe_hub.control("GET", "webhooks/deliveries", params={"event": completed["id"]})).json()
    assert len(deliveries) == 6 and all(d["status"] == "delivered" for d in deliveries)
    assert await _count(stripe_hub.app, WebhookInbox, WebhookInbox.event_id == completed["id"]) == 1


async def _post_event(stripe_hub: StripeHub, event: dict, secret: str = "demo-stripe-webhook-secret") -> httpx.Response:
    body = json.dumps(event)
    return await stripe_hub.owner.post(
        "/webhooks/stripe",
        content=body.encode(),
        headers={
            "Stripe-Signature": signature_header(body, secret, int(time.time())),
            "Content-Type": "application/json",
        },
    )


async def test_ach_events_out_of_order_end_succeeded(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "1200.00")
    session_id = await stripe_hub.open_pay_link(invoice)
    stripe_hub.emu.webhooks.paused = True  # hold everything: the test delivers in its own order
    assert (await stripe_hub.pay_bank(session_id)).status_code == 200
    assert (
        await stripe_hub.control("POST", f"checkout/sessions/{session_id}/settle?outcome=succeeded")
    ).status_code == 200
    events = (await stripe_hub.control("GET", "objects", params={"object": "event"})).json()
    events.sort(key=lambda e: e["created"])
    # Newest first: async_payment_succeeded arrives before the checkout's own `completed`.
    for event in reversed(events):
        assert (await _post_event(stripe_hub, event)).status_code == 200
    invoice, payments = await reload(stripe_hub.app, invoice.id)
    assert len(payments) == 1 and payments[0].status == PaymentStatus.SUCCEEDED
    assert payments[0].method == PaymentMethod.ACH
    assert invoice.status == InvoiceStatus.PAID


async def test_ach_processing_then_succeeded_and_failed(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    # Accounting connected too: a failed bank payment must never reach the books.
    reply, _ = await consent(stripe_hub.owner, "quickbooks")
    assert reply.status_code == 303
    good = await sent_invoice(session, biz.tenant.id, "300.00")
    bad = await sent_invoice(session, biz.tenant.id, "400.00")
    good_session = await stripe_hub.open_pay_link(good)
    bad_session = await stripe_hub.open_pay_link(bad)
    for sid in (good_session, bad_session):
        assert (await stripe_hub.pay_bank(sid)).status_code == 200
    await stripe_hub.delivered()
    for inv in (good, bad):
        invoice, payments = await reload(stripe_hub.app, inv.id)
        assert [p.status for p in payments] == [PaymentStatus.PENDING]
        assert invoice.status == InvoiceStatus.SENT and invoice.balance == invoice.total  # pending counts for nothing
    await stripe_hub.control("POST", f"checkout/sessions/{good_session}/settle?outcome=succeeded")
    await stripe_hub.control("POST", f"checkout/sessions/{bad_session}/settle?outcome=failed")
    await stripe_hub.delivered()
    invoice, payments = await reload(stripe_hub.app, good.id)
    assert invoice.status == InvoiceStatus.PAID and [p.status for p in payments] == [PaymentStatus.SUCCEEDED]
    good_payment = payments[0]
    invoice, payments = await reload(stripe_hub.app, bad.id)
    assert invoice.status == InvoiceStatus.SENT and invoice.balance == Decimal("400.00")
    assert [p.status for p in payments] == [PaymentStatus.FAILED]
    bad_payment = payments[0]
    async with stripe_hub.app.state.sessionmaker() as s:
        rows = list(await s.scalars(select(LedgerRow).where(LedgerRow.entity == "payment")))
        notes = list(await s.scalars(select(Notification).where(Notification.kind == "payment.failed")))
    assert [r.local_id for r in rows] == [good_payment.id]  # the succeeded one is queued for QuickBooks...
    assert bad_payment.id not in {r.local_id for r in rows}  # ...the failed one never is
    assert len(notes) == 1 and bad.number in notes[0].title  # told once, though two events reported the failure


async def test_refund_in_stripe_is_recorded_once(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "200.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    _, payments = await reload(stripe_hub.app, invoice.id)
    r = await stripe_hub.owner.post(
        "/emulators/stripe/v1/refunds",
        data={"payment_intent": payments[0].reference, "amount": "5000"},
        headers={"Authorization": "Bearer demo-stripe-client-secret", "Stripe-Account": RIVERBEND},
    )
    assert r.status_code == 200, r.text
    await stripe_hub.delivered()  # charge.refunded and refund.created both report it
    invoice, _ = await reload(stripe_hub.app, invoice.id)
    async with stripe_hub.app.state.sessionmaker() as s:
        refunds = list(await s.scalars(select(Refund)))
    assert [(x.amount, x.reference) for x in refunds] == [(Decimal("50.00"), r.json()["id"])]
    assert invoice.status == InvoiceStatus.PARTIALLY_PAID and invoice.balance == Decimal("50.00")


async def test_payout_becomes_a_deposit_that_adds_up(stripe_hub: StripeHub, session, biz, spec) -> None:
    await stripe_hub.connect()
    first = await sent_invoice(session, biz.tenant.id, "200.00")
    second = await sent_invoice(session, biz.tenant.id, "99.99")
    for inv in (first, second):
        await stripe_hub.pay_card(await stripe_hub.open_pay_link(inv))
    await stripe_hub.delivered()
    await stripe_hub.control("POST", "clock/advance", params={"seconds": 3 * 86400})
    run = await stripe_hub.control("POST", "payouts/run", params={"account": RIVERBEND, "complete": "true"})
    assert run.status_code == 200, run.text
    await stripe_hub.delivered()
    payouts = (await stripe_hub.control("GET", "objects", params={"object": "payout"})).json()
    assert len(payouts) == 1 and payouts[0]["status"] == "paid"
    async with stripe_hub.app.state.sessionmaker() as s:
        deposits = list(await s.scalars(select(Deposit)))
        assert len(deposits) == 1  # payout.paid and payout.reconciliation_completed: one deposit
        deposit = deposits[0]
        lines = deposit.lines
    assert deposit.source_id == payouts[0]["id"] and deposit.net == Decimal(payouts[0]["amount"]).scaleb(-2)
    assert sum(line.amount for line in lines) == deposit.net
    assert deposit.gross == Decimal("299.99")
    # 2.9% + 30¢ each, half up: 6.10 and 3.20.
    assert deposit.fees == Decimal("9.30") and deposit.net == Decimal("290.69")
    assert {line.payment_id for line in lines if line.kind == DepositLineKind.PAYMENT} == {
        (await reload(stripe_hub.app, first.id))[1][0].id,
        (await reload(stripe_hub.app, second.id))[1][0].id,
    }
    validate_traffic(stripe_hub.emu, spec)


async def test_after_disconnect_the_pay_link_explains_and_creates_nothing(stripe_hub: StripeHub, session, biz) -> None:
    conn = await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "120.00")
    await stripe_hub.open_pay_link(invoice)
    await session.execute(
        __import__("sqlalchemy")
        .update(type(biz.tenant))
        .where(type(biz.tenant).id == biz.tenant.id)
        .values(email="office@a.test", phone="555-0100")
    )
    await session.commit()
    r = await stripe_hub.owner.submit(f"/integrations/stripe/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    await stripe_hub.delivered()
    before = len((await stripe_hub.control("GET", "objects", params={"object": "checkout.session"})).json())
    requests_before = len(stripe_hub.emu.requests)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stripe_hub.app), base_url="http://testserver"
    ) as anon:
        page = await anon.get(f"/pay/{invoice.public_token}")
    assert page.status_code == 503
    assert "Online payment is not available for this invoice; contact" in page.text
    assert "office@a.test" in page.text and "555-0100" in page.text
    after = len((await stripe_hub.control("GET", "objects", params={"object": "checkout.session"})).json())
    assert after == before
    assert not [e for e in list(stripe_hub.emu.requests)[requests_before:] if e.path.startswith("/v1/")]


async def test_links_that_cannot_pay(stripe_hub: StripeHub, session, biz) -> None:
    from fieldhub.core.invoices import service as invoices

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stripe_hub.app), base_url="http://testserver"
    ) as anon:
        assert (await anon.get("/pay/not-a-token")).status_code == 404
        invoice = await sent_invoice(session, biz.tenant.id, "10.00")
        nothing_connected = await anon.get(f"/pay/{invoice.public_token}")
        assert nothing_connected.status_code == 503
        await stripe_hub.connect()
        await invoices.void_invoice(session, biz.tenant.id, invoice.id)
        await session.commit()
        void = await anon.get(f"/pay/{invoice.public_token}")
        assert void.status_code == 409 and "not available" in void.text
    assert (await stripe_hub.control("GET", "objects", params={"object": "checkout.session"})).json() == []


async def test_dispute_and_failed_payout_notify_the_owner(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "75.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    await stripe_hub.control("POST", "clock/advance", params={"seconds": 3 * 86400})
    await stripe_hub.control("POST", "payouts/fail_next")
    run = await stripe_hub.control("POST", "payouts/run", params={"account": RIVERBEND, "complete": "true"})
    assert run.status_code == 200, run.text
    charges = (await stripe_hub.control("GET", "objects", params={"object": "charge"})).json()
    assert (await stripe_hub.control("POST", f"charges/{charges[0]['id']}/dispute")).status_code == 200
    await stripe_hub.delivered()
    async with stripe_hub.app.state.sessionmaker() as s:
        kinds = {n.kind for n in await s.scalars(select(Notification).where(Notification.tenant_id == biz.tenant.id))}
    assert {"payment.disputed", "payout.failed"} <= kinds
    assert await _count(stripe_hub.app, Deposit) == 0
