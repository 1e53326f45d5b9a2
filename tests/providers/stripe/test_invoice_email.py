"""Sending an invoice emails the customer: its summary, and the unguessable pay link while Stripe is connected and
something is owed; without Stripe, a plain line saying how to pay instead. Delivered by the mail pump to the demo
mailbox, the link completed with the hub's public address; internal notes never in it."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.hub.notify.email import deliver_pending
from fieldhub.hub.notify.invoice_mail import HUB_URL, KIND
from fieldhub.hub.notify.models import OutboundEmail
from tests.providers.stripe.hub import StripeHub


async def _emails(app, to: str) -> list[OutboundEmail]:  # noqa: ANN001
    async with app.state.sessionmaker() as s:
        rows = await s.scalars(select(OutboundEmail).where(OutboundEmail.to_address == to).order_by(OutboundEmail.id))
        return list(rows)


async def _delivered(app, to: str) -> OutboundEmail:  # noqa: ANN001
    """The one email to `to`, once delivered: by the app's mail pump (woken by the commit) or by this call."""
    for _ in range(100):
        await deliver_pending(app.state.sessionmaker, app.state.settings)
        [mail] = await _emails(app, to)
        if mail.transport:  # the pump claims a row before it finishes delivering it
            return mail
        await asyncio.sleep(0.05)
    raise AssertionError(f"the email to {to} was not delivered")


async def _invoice(session, tenant: int, email: str, **extra):  # noqa: ANN001, ANN202
    customer = await create_customer(session, tenant, {"display_name": "Pat Customer", "email": email})
    invoice = await invoices.create_invoice(
        session,
        tenant,
        {
            "customer_id": customer.id,
            "memo": "Thanks for choosing us!",
            "notes": "gate code 4411, dog is friendly",  # internal
            "due_date": "2026-12-31",
            "issue_date": "2026-11-21",
            "lines": [
                {"description": "Water heater", "unit_price": "1150.00"},
                {"description": "Haul-away", "quantity": "2", "unit_price": "25.50"},
            ],
            **extra,
        },
    )
    await session.commit()
    return invoice


async def test_sent_invoice_emails_the_pay_link_when_stripe_is_connected(stripe_hub: StripeHub, session, biz) -> None:
    app = stripe_hub.app
    await stripe_hub.connect()
    invoice = await _invoice(session, biz.tenant.id, "pat@example.com")
    assert await _emails(app, "pat@example.com") == []  # a draft emails nobody
    r = await stripe_hub.owner.submit(f"/invoices/{invoice.id}/send")
    assert r.status_code == 303, r.text
    mail = await _delivered(app, "pat@example.com")
    assert mail.kind == KIND
    assert mail.sent_at is not None and mail.transport == "mailbox"
    assert mail.subject == f"Invoice {invoice.number} from {biz.tenant.name}: $1,201.00 due"
    link = f"{app.state.settings.base_url}/pay/{invoice.public_token}"
    assert link in mail.body and HUB_URL not in mail.body
    for said in ("Hello Pat Customer,", "Water heater", "$1,150.00", "(2 × $25.50)  $51.00", "Total: $1,201.00"):
        assert said in mail.body, said
    assert "Balance due: $1,201.00" in mail.body and "Due by: December 31, 2026" in mail.body
    assert "Thanks for choosing us!" in mail.body
    assert "gate code" not in mail.body and "dog" not in mail.body  # internal notes stay here
    # The link is the one the customer pays through: it opens a Stripe checkout.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as anon:
        opened = await anon.get(link.replace(app.state.settings.base_url, ""))
    assert opened.status_code == 303 and "/c/pay/cs_test_" in opened.headers["location"]
    # The demo mailbox shows it.
    page = await stripe_hub.owner.get("/dev/mailbox")
    assert page.status_code == 200 and mail.subject in page.text and f"/pay/{invoice.public_token}" in page.text


async def test_without_stripe_the_email_says_how_to_pay_instead(stripe_hub: StripeHub, session, biz) -> None:
    app = stripe_hub.app
    invoice = await _invoice(session, biz.tenant.id, "sam@example.com")
    await invoices.send_invoice(session, biz.tenant.id, invoice.id)
    assert await _emails(app, "sam@example.com") == []  # queued in the sending transaction: not before it commits
    await session.commit()
    [queued] = await _emails(app, "sam@example.com")
    assert queued.kind == KIND
    mail = await _delivered(app, "sam@example.com")
    assert HUB_URL not in mail.body
    assert "/pay/" not in mail.body and invoice.public_token not in mail.body
    assert f"Online payment is not available for this invoice. To pay, contact {biz.tenant.name}" in mail.body
    assert "Balance due: $1,201.00" in mail.body


async def test_no_address_no_email_and_the_send_still_happens(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await _invoice(session, biz.tenant.id, "")
    sent = await invoices.send_invoice(session, biz.tenant.id, invoice.id)
    await session.commit()
    assert sent.status == "SENT"
    async with stripe_hub.app.state.sessionmaker() as s:
        assert list(await s.scalars(select(OutboundEmail).where(OutboundEmail.kind == KIND))) == []
