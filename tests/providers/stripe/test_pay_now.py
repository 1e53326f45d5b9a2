"""Pay Now end to end through the mounted Stripe emulator: pay link → checkout → signed webhook → invoice paid."""

from __future__ import annotations

from decimal import Decimal

from fieldhub.core.invoices.models import InvoiceStatus
from fieldhub.core.payments.models import PaymentMethod, PaymentStatus
from tests.providers.stripe.hub import StripeHub, reload, sent_invoice


async def test_card_payment_marks_the_invoice_paid(stripe_hub: StripeHub, session, biz) -> None:
    await stripe_hub.connect()
    invoice = await sent_invoice(session, biz.tenant.id, "250.00")
    session_id = await stripe_hub.open_pay_link(invoice)
    paid = await stripe_hub.pay_card(session_id)
    assert paid.status_code == 303 and paid.headers["location"].endswith(
        f"/pay/{invoice.public_token}/done?session_id={session_id}"
    )
    await stripe_hub.delivered()
    invoice, payments = await reload(stripe_hub.app, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.balance == Decimal("0.00")
    assert len(payments) == 1
    assert payments[0].amount == Decimal("250.00") and payments[0].status == PaymentStatus.SUCCEEDED
    assert payments[0].method == PaymentMethod.CARD and payments[0].reference.startswith("pi_")
