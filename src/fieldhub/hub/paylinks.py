"""Pay Now links: which invoices can be paid online, through which payments connection, and starting a checkout.

The link is `/pay/<invoice.public_token>`: unguessable, no login. Opening it asks the tenant's live
payments connection (a provider of category `payments` whose `actions.py` has `create_checkout`) for
a hosted checkout of the open balance. No live connection, or an invoice that owes nothing or can't
be paid, means no checkout is started at all and the payer is told whom to contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.money import ZERO, format_money
from fieldhub.core.payments.models import Payment, PaymentStatus
from fieldhub.hub import registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import Capability
from fieldhub.log import get_logger

log = get_logger(__name__)
PAYABLE = (InvoiceStatus.OPEN, InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID)
PATH = "/pay/"


class Unavailable(Exception):
    """Online payment can't start; `message` is for the payer, in plain words. `processing`: a payment is on its
    way already; `status` 409 when there is nothing to pay now, 503 when it can't be paid online right now."""

    def __init__(self, message: str, *, status: int = 503, processing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.processing = processing


@dataclass
class PayConnection:
    connection: Connection
    actions: ModuleType


def pay_url(base_url: str, invoice: Invoice) -> str:
    return f"{base_url.rstrip('/')}{PATH}{invoice.public_token}"


def payable(invoice: Invoice) -> bool:
    return invoice.status in PAYABLE and invoice.balance > ZERO


async def pending_payment(session: AsyncSession, invoice: Invoice) -> Payment | None:
    """A payment on its way (a bank debit not yet cleared): until it settles the invoice is not offered again."""
    return await session.scalar(
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
        .order_by(Payment.id)
        .limit(1)
    )


def processing_words(invoice: Invoice, payment: Payment) -> str:
    return (
        f"A bank payment of {format_money(payment.amount)} for invoice {invoice.number} is processing. It usually "
        "clears within 4 business days; there is nothing to pay meanwhile."
    )


@dataclass(frozen=True)
class Offer:
    """Whether the invoice is offered for payment online now, and if not, why (words for the owner's page)."""

    link: str  # the Pay Now link, or "" when it is not offered
    reason: str = ""
    processing: bool = False


async def offer(session: AsyncSession, invoice: Invoice, base_url: str) -> Offer:
    """The Pay Now button's state, the same on the invoice page, in its email and on its printout."""
    if not payable(invoice):
        return Offer("")
    pending = await pending_payment(session, invoice)
    if pending is not None:
        return Offer("", processing_words(invoice, pending), processing=True)
    if await payment_connection(session, invoice.tenant_id) is None:
        return Offer("", "Online payment is off: no payments provider is connected (Settings → Billing & Taxes).")
    return Offer(pay_url(base_url, invoice))


async def payment_connection(session: AsyncSession, tenant_id: int) -> PayConnection | None:
    """The tenant's live connection to a payments provider that can run a checkout, if any."""
    for spec in registry.all():
        if spec.category != Capability.PAYMENTS:
            continue
        module = registry.import_module(spec.key, "actions")
        if module is None or not hasattr(module, "create_checkout"):
            continue
        for conn in await connections.for_provider(session, tenant_id, spec.key):
            if conn.status == ConnectionStatus.CONNECTED:
                return PayConnection(conn, module)
    return None


async def invoice_for_token(session: AsyncSession, token: str) -> Invoice | None:
    if not token or len(token) > 64:
        return None
    return await session.scalar(select(Invoice).where(Invoice.public_token == token))


def contact_words(tenant: Tenant) -> str:
    ways = [w for w in (tenant.email, tenant.phone) if w]
    return f"{tenant.name} ({' or '.join(ways)})" if ways else tenant.name


async def start_checkout(env: OAuthEnv, session: AsyncSession, invoice: Invoice) -> str:
    """The hosted checkout URL for the invoice's open balance, or Unavailable (and nothing created anywhere)."""
    tenant = await session.get(Tenant, invoice.tenant_id)
    assert tenant is not None
    sorry = f"Online payment is not available for this invoice; contact {contact_words(tenant)}."
    if not payable(invoice):
        if invoice.status == InvoiceStatus.PAID:
            raise Unavailable(
                f"Invoice {invoice.number} is paid in full — thank you. Questions? Contact {contact_words(tenant)}.",
                status=409,
            )
        raise Unavailable(sorry, status=409)
    pending = await pending_payment(session, invoice)
    if pending is not None:  # paying again now would take the money twice
        words = f"{processing_words(invoice, pending)} Questions? Contact {contact_words(tenant)}."
        raise Unavailable(words, status=409, processing=True)
    found = await payment_connection(session, invoice.tenant_id)
    if found is None:
        raise Unavailable(sorry)
    customer = await session.get(Customer, invoice.customer_id)
    link = pay_url(env.settings.base_url, invoice)
    try:
        return await found.actions.create_checkout(
            env,
            found.connection,
            invoice,
            currency=tenant.currency,
            success_url=link + "/done?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=link + "/cancelled",
            customer_email=customer.email if customer else "",
        )
    except Exception as e:  # noqa: BLE001 - whatever the provider says, the payer gets the same plain answer
        log.warning("paylink.checkout.failed", tenant_id=invoice.tenant_id, error=type(e).__name__)
        raise Unavailable(sorry) from None
