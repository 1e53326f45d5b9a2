"""Stripe on the pages (issue 15 item 7) and refunds of Stripe payments (issue 14 item 4): Pay Now is a button on the
invoice page, in the invoice email and on the printout; a disconnected Stripe shows no live account facts and no pay
link; a pending bank payment is neither refundable nor payable twice; a refund of a Stripe payment goes back
through Stripe and is recorded once, a refund of a cash payment stays here."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import httpx
from sqlalchemy import func, select

from fieldhub.core.accounts.service import create_api_token
from fieldhub.core.invoices import service as invoices
from fieldhub.core.payments.models import PaymentStatus, Refund
from fieldhub.hub.notify.email import deliver_pending
from fieldhub.hub.notify.models import OutboundEmail
from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.providers.stripe.hub import StripeHub, reload, sent_invoice


def _visible(html: str) -> str:
    """The page's text as read, without tags and attribute values."""
    return unescape(re.sub(r"<[^>]+>", " ", html))


async def _anonymous(app, path: str) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as anon:
        return await anon.get(path)


def _objects(emu: StripeEmulator, kind: str) -> list[dict]:
    return [stored.obj for stored in emu.objects.values() if stored.obj.get("object") == kind]


async def test_issue15_item7_pay_now_is_a_button_on_the_page_in_the_email_and_on_the_printout(
    stripe_hub: StripeHub, session, biz
) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "149.50")
    link = f"{stripe_hub.app.state.settings.base_url}/pay/{invoice.public_token}"

    page = await stripe_hub.owner.get(f"/invoices/{invoice.id}")
    button = re.search(r'<a class="btn primary" id="pay-now" href="([^"]+)"[^>]*>(.*?)</a>', page.text, re.S)
    assert button and button.group(1) == link and "Pay Now" in button.group(2)
    assert link not in _visible(page.text)  # a button, not a bare URL

    printout = await stripe_hub.owner.get(f"/invoices/{invoice.id}/print")
    button = re.search(r'<a class="pay-now" id="pay-now" href="([^"]+)">Pay Now</a>', printout.text)
    assert button and button.group(1) == link
    # On screen the button; the address is printed only for paper, where nothing can be clicked.
    assert re.search(r'<p class="print-only small">On paper: open ' + re.escape(link), printout.text)

    await deliver_pending(stripe_hub.app.state.sessionmaker, stripe_hub.app.state.settings)
    async with stripe_hub.app.state.sessionmaker() as s:
        mail = await s.scalar(select(OutboundEmail).where(OutboundEmail.to_address == "pat@example.com"))
    assert mail is not None and mail.sent_at is not None
    button = re.search(r'<a href="([^"]+)" data-pay-now[^>]*>Pay Now</a>', mail.html_body)
    assert button and button.group(1) == link
    assert link not in _visible(mail.html_body)
    assert "Balance due" in mail.html_body and "$149.50" in mail.html_body
    assert link in mail.body  # the plain-text part can only carry the address
    mailbox = await stripe_hub.owner.get("/dev/mailbox")
    assert "data-pay-now" in mailbox.text and f'href="{link}"' in mailbox.text

    # The button is the payer's way in: it opens a Stripe checkout.
    opened = await _anonymous(stripe_hub.app, f"/pay/{invoice.public_token}")
    assert opened.status_code == 303 and "/c/pay/cs_test_" in opened.headers["location"]


async def test_issue15_item7_a_disconnected_stripe_shows_no_charges_and_no_pay_link(
    stripe_hub: StripeHub, session, biz
) -> None:
    conn = await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "80.00")
    billing = await stripe_hub.owner.get("/settings/billing/stripe")
    assert 'data-detail="Charges">Enabled' in billing.text  # while connected, the account's facts

    r = await stripe_hub.owner.submit(f"/integrations/stripe/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    billing = await stripe_hub.owner.get("/settings/billing/stripe")
    text = _visible(billing.text)
    assert "Disconnected" in text
    assert "Charges" not in text and "Enabled" not in text and "Payout bank" not in text
    assert "Connect to Stripe" in text

    page = await stripe_hub.owner.get(f"/invoices/{invoice.id}")
    assert 'id="pay-now"' not in page.text and "/pay/" not in page.text
    assert "Online payment is off" in _visible(page.text)
    printout = await stripe_hub.owner.get(f"/invoices/{invoice.id}/print")
    assert "/pay/" not in printout.text and "Pay Now" not in printout.text


async def test_issue15_item7_a_pending_bank_payment_is_not_refundable_and_the_invoice_not_payable_twice(
    stripe_hub: StripeHub, session, biz
) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "420.00")
    session_id = await stripe_hub.open_pay_link(invoice)
    assert (await stripe_hub.pay_bank(session_id)).status_code == 200
    await stripe_hub.delivered()
    invoice, [payment] = await reload(stripe_hub.app, invoice.id)
    assert payment.status == PaymentStatus.PENDING

    page = await stripe_hub.owner.get(f"/invoices/{invoice.id}")
    assert f"/payments/{payment.id}/refund" not in page.text  # no Refund button
    assert 'id="pay-now"' not in page.text and 'data-processing="true"' in page.text
    assert "A bank payment of $420.00 for invoice" in _visible(page.text)
    # Asked anyway, on the page and through the API: refused with the reason, nothing sent to Stripe.
    said = "This bank payment is still clearing: it can be refunded once it has cleared"
    r = await stripe_hub.owner.submit(
        f"/invoices/{invoice.id}/payments/{payment.id}/refund", {"amount": "420.00", "reason": "oops"}
    )
    assert r.status_code == 400 and said in unescape(r.text)
    token = await create_api_token(session, biz.owner, "tests")
    await session.commit()
    api = await stripe_hub.owner.post(
        f"/api/v1/payments/{payment.id}/refunds",
        json={"amount": "420.00"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 422 and said in api.json()["errors"]["status"]
    assert _objects(stripe_hub.emu, "refund") == []
    async with stripe_hub.app.state.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Refund)) == 0

    # The customer opens the link again: the checkout page says it's processing, and no second checkout starts.
    sessions = len(_objects(stripe_hub.emu, "checkout.session"))
    again = await _anonymous(stripe_hub.app, f"/pay/{invoice.public_token}")
    assert again.status_code == 409
    assert "Payment processing" in again.text and "is processing" in again.text
    assert len(_objects(stripe_hub.emu, "checkout.session")) == sessions

    # Cleared: refundable, and nothing is owed so there is nothing to pay.
    await stripe_hub.control("POST", f"checkout/sessions/{session_id}/settle?outcome=succeeded")
    await stripe_hub.delivered()
    page = await stripe_hub.owner.get(f"/invoices/{invoice.id}")
    assert f"/payments/{payment.id}/refund" in page.text and 'data-processing="true"' not in page.text


async def test_issue14_item4_refunding_a_stripe_payment_sends_the_money_back_once(
    stripe_hub: StripeHub, session, biz
) -> None:
    """The Refund button on a card payment refunds it at Stripe; Stripe's own report of it records nothing more."""
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "250.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    _, [payment] = await reload(stripe_hub.app, invoice.id)

    r = await stripe_hub.owner.submit(
        f"/invoices/{invoice.id}/payments/{payment.id}/refund", {"amount": "60.00", "reason": "Part not fitted"}
    )
    assert r.status_code == 303, r.text
    [made] = _objects(stripe_hub.emu, "refund")
    assert made["payment_intent"] == payment.reference and made["amount"] == 6000
    assert made["metadata"]["reason"] == "Part not fitted"
    await stripe_hub.delivered()  # charge.refunded and refund.created report it back
    async with stripe_hub.app.state.sessionmaker() as s:
        refunds = list(await s.scalars(select(Refund)))
    assert [(x.amount, x.reference) for x in refunds] == [(Decimal("60.00"), made["id"])]
    # Over what is left: refused here, before Stripe is asked.
    r = await stripe_hub.owner.submit(f"/invoices/{invoice.id}/payments/{payment.id}/refund", {"amount": "200.00"})
    assert r.status_code == 400 and "At most $190.00" in unescape(r.text)
    assert len(_objects(stripe_hub.emu, "refund")) == 1


async def test_issue14_item4_refunding_a_cash_payment_with_stripe_connected_stays_here(
    stripe_hub: StripeHub, session, biz
) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "75.00")
    payment = await invoices.record_payment(session, biz.tenant.id, invoice.id, {"amount": "75.00", "method": "cash"})
    await session.commit()
    requests = len(stripe_hub.emu.requests)
    r = await stripe_hub.owner.submit(
        f"/invoices/{invoice.id}/payments/{payment.id}/refund", {"amount": "75.00", "reason": "Cancelled"}
    )
    assert r.status_code == 303, r.text
    assert len(stripe_hub.emu.requests) == requests  # Stripe never heard of it
    async with stripe_hub.app.state.sessionmaker() as s:
        assert [x.amount for x in await s.scalars(select(Refund))] == [Decimal("75.00")]
