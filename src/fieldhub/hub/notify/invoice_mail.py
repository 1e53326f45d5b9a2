"""The invoice email: sending an invoice emails the customer its summary and, when it can be paid online, the pay link.

`on_domain_event` is subscribed to core events at start (beside the sync ledger): the invoice's `sent`
event queues one email to the customer inside the sending transaction, so an invoice is never marked
sent without its email, nor emailed without being sent. The mail pump (hub.notify.email) delivers it
after the commit: over SMTP, or to the demo mailbox (/dev/mailbox).

The pay link is the invoice's unguessable `/pay/<token>`, offered only while a payments provider
(Stripe) is connected and the invoice has a balance; otherwise the email says plainly how to pay
instead. Links are written with HUB_URL in place of the hub's address and completed at delivery
with the delivering process's public URL, the one address customers can reach.
"""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.events import DomainEvent
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.money import ZERO, format_money
from fieldhub.hub.notify import MAIL_KEY
from fieldhub.hub.notify.models import OutboundEmail
from fieldhub.log import get_logger

log = get_logger(__name__)
KIND = "invoice.sent"
HUB_URL = "[[fieldhub:hub-url]]"


def expand(body: str, base_url: str) -> str:
    """The body as delivered: the hub's public address in every link."""
    return body.replace(HUB_URL, base_url.rstrip("/"))


async def on_domain_event(session: AsyncSession, event: DomainEvent) -> None:
    if event.entity == "invoice" and event.kind == "sent":
        await queue_invoice_email(session, event.tenant_id, event.record_id)


async def queue_invoice_email(session: AsyncSession, tenant_id: int, invoice_id: int) -> OutboundEmail | None:
    """Queue the customer's copy of the invoice; None when the customer has no email address."""
    from fieldhub.hub import paylinks  # imported late: paylinks → connections → notify

    invoice = await session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id))
    if invoice is None:
        return None
    customer = await session.get(Customer, invoice.customer_id)
    tenant = await session.get(Tenant, tenant_id)
    assert customer is not None and tenant is not None
    if not customer.email:
        log.info("invoice_mail.no_address", tenant_id=tenant_id, invoice_id=invoice.id)
        return None
    offer = await paylinks.offer(session, invoice, HUB_URL)
    contact = paylinks.contact_words(tenant)
    processing = offer.reason if offer.processing else ""
    row = OutboundEmail(
        tenant_id=tenant_id,
        to_address=customer.email,
        kind=KIND,
        subject=f"Invoice {invoice.number} from {tenant.name}: {format_money(invoice.balance)} due"[:300],
        body=compose(invoice, customer, tenant, offer.link, contact, processing),
        html_body=compose_html(invoice, customer, tenant, offer.link, contact, processing),
    )
    session.add(row)
    await session.flush()
    session.sync_session.info[MAIL_KEY] = True  # the pump is woken after this transaction commits
    log.info("invoice_mail.queued", tenant_id=tenant_id, invoice_id=invoice.id, pay_link=bool(offer.link))
    return row


def compose(
    invoice: Invoice, customer: Customer, tenant: Tenant, pay_link: str, contact: str, processing: str = ""
) -> str:
    """Plain text: greeting, the lines and totals, what is due and by when, and how to pay. Internal notes never.
    The HTML part (compose_html) says the same with a Pay Now button; a text reader gets the link itself."""
    rows = [f"Hello {customer.display_name},", "", f"Here is invoice {invoice.number} from {tenant.name}.", ""]
    for line in sorted(invoice.lines, key=lambda ln: ln.position):
        qty = line.quantity.normalize()
        rows.append(f"  {line.description}  ({qty:f} × {format_money(line.unit_price)})  {format_money(line.amount)}")
    rows.append("")
    rows.append(f"  Subtotal: {format_money(invoice.subtotal)}")
    if invoice.discount_total > ZERO:
        rows.append(f"  Discount: -{format_money(invoice.discount_total)}")
    if invoice.tax_total > ZERO:
        rows.append(f"  Tax: {format_money(invoice.tax_total)}")
    rows.append(f"  Total: {format_money(invoice.total)}")
    if invoice.amount_paid > ZERO:
        rows.append(f"  Paid: {format_money(invoice.amount_paid)}")
    rows.append(f"  Balance due: {format_money(invoice.balance)}")
    if invoice.due_date:
        rows.append(f"  Due by: {invoice.due_date:%B %-d, %Y}")
    if invoice.memo:
        rows += ["", invoice.memo]
    rows.append("")
    if pay_link:
        rows += ["Pay Now, online by card or bank transfer (ACH):", pay_link]
    elif processing:
        rows.append(processing)
    elif invoice.balance > ZERO:
        rows.append(f"Online payment is not available for this invoice. To pay, contact {contact}.")
    else:
        rows.append("Nothing is due on this invoice. Thank you!")
    rows += ["", f"Questions? Contact {contact}."]
    return "\n".join(rows)


def compose_html(
    invoice: Invoice, customer: Customer, tenant: Tenant, pay_link: str, contact: str, processing: str = ""
) -> str:
    """The email as HTML: the same words as `compose`, with a Pay Now button. Every value is escaped; inline
    styles and a table layout, as mail clients render them."""
    cell = 'style="padding:4px 8px;border-bottom:1px solid #e5e7eb"'
    num = 'style="padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:right"'
    lines = "".join(
        f"<tr><td {cell}>{escape(line.description)}</td><td {num}>{line.quantity.normalize():f}</td>"
        f"<td {num}>{escape(format_money(line.unit_price))}</td><td {num}>{escape(format_money(line.amount))}</td></tr>"
        for line in sorted(invoice.lines, key=lambda ln: ln.position)
    )
    totals = [("Subtotal", invoice.subtotal)]
    if invoice.discount_total > ZERO:
        totals.append(("Discount", -invoice.discount_total))
    if invoice.tax_total > ZERO:
        totals.append(("Tax", invoice.tax_total))
    totals.append(("Total", invoice.total))
    if invoice.amount_paid > ZERO:
        totals.append(("Paid", invoice.amount_paid))
    totals.append(("Balance due", invoice.balance))
    foot = "".join(
        f'<tr><td colspan="3" {num}>{label}</td><td {num}><strong>{escape(format_money(value))}</strong></td></tr>'
        for label, value in totals
    )
    parts = [
        '<div style="font-family:system-ui,-apple-system,Segoe UI,sans-serif;color:#111;max-width:600px">',
        f"<p>Hello {escape(customer.display_name)},</p>",
        f"<p>Here is invoice {escape(invoice.number)} from {escape(tenant.name)}.</p>",
        '<table style="border-collapse:collapse;width:100%;font-size:14px">',
        f"<tr><th {cell} align=left>Description</th><th {num}>Qty</th><th {num}>Unit price</th><th {num}>Amount</th>"
        f"</tr>{lines}{foot}</table>",
    ]
    if invoice.due_date:
        parts.append(f"<p>Due by {invoice.due_date:%B %-d, %Y}.</p>")
    if invoice.memo:
        parts.append(f'<p style="white-space:pre-wrap">{escape(invoice.memo)}</p>')
    if pay_link:
        parts.append(
            '<table role="presentation" cellspacing="0" cellpadding="0" style="margin:20px 0"><tr>'
            '<td style="border-radius:6px;background:#2563eb">'
            f'<a href="{escape(pay_link)}" data-pay-now style="display:inline-block;padding:12px 28px;color:#fff;'
            'font-weight:600;text-decoration:none;border-radius:6px">Pay Now</a></td></tr></table>'
            '<p style="color:#555;font-size:13px">By card or bank transfer (ACH), on a secure checkout page.</p>'
        )
    elif processing:
        parts.append(f"<p>{escape(processing)}</p>")
    elif invoice.balance > ZERO:
        parts.append(f"<p>Online payment is not available for this invoice. To pay, contact {escape(contact)}.</p>")
    else:
        parts.append("<p>Nothing is due on this invoice. Thank you!</p>")
    parts.append(f'<p style="color:#555;font-size:13px">Questions? Contact {escape(contact)}.</p></div>')
    return "".join(parts)
