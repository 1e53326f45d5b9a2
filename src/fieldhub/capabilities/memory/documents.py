"""A billing record as billing memory reads it: the text that is embedded, and the facts the answers compute from.

The text holds what a person would look for (customer, where, what was done, quantities and prices, taxes,
totals, dates, status, payments), never the internal notes. One text per record: one vector.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.models import Customer
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.money import format_money
from fieldhub.core.payments.models import Payment, PaymentStatus


@dataclass(frozen=True)
class Document:
    entity: str
    record_id: int
    version: int
    text: str


def address(customer: Customer) -> str:
    """Where the work was: the service address, else the billing address."""
    if customer.service_line1:
        parts = [customer.service_line1, customer.service_line2, customer.service_city, customer.service_region]
        postal = customer.service_postal_code
    else:
        parts = [customer.billing_line1, customer.billing_line2, customer.billing_city, customer.billing_region]
        postal = customer.billing_postal_code
    return " ".join(", ".join(p for p in parts if p).split()) + (f" {postal}" if postal else "")


def _qty(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f")


def _lines(lines: list) -> list[str]:
    return [
        f"- {line.description} × {_qty(line.quantity)} @ {format_money(line.unit_price)} = {format_money(line.amount)}"
        for line in lines
    ]


def invoice_document(invoice: Invoice, payments: list[Payment]) -> Document:
    customer = invoice.customer
    rows = [
        f"Invoice {invoice.number} · {invoice.status} · issued {invoice.issue_date.isoformat()}"
        + (f" · due {invoice.due_date.isoformat()}" if invoice.due_date else ""),
        f"Customer: {customer.display_name}" + (f" ({customer.company})" if customer.company else ""),
        f"Address: {address(customer)}",
        "Work and parts:",
        *_lines(invoice.lines),
        f"Subtotal {format_money(invoice.subtotal)}"
        + (f" · discount {format_money(invoice.discount_total)}" if invoice.discount_total else "")
        + f" · tax {format_money(invoice.tax_total)} · total {format_money(invoice.total)}",
        f"Paid {format_money(invoice.amount_paid)} · balance {format_money(invoice.balance)}",
    ]
    rows += [f"Payment {format_money(p.amount)} on {p.received_on.isoformat()} by {p.method}" for p in payments]
    if invoice.memo:
        rows.append(f"Memo: {invoice.memo}")
    return Document("invoice", invoice.id, invoice.version, "\n".join(rows))


def estimate_document(estimate: Estimate) -> Document:
    customer = estimate.customer
    rows = [
        f"Estimate {estimate.number} · {estimate.status} · issued {estimate.issue_date.isoformat()}"
        + (f" · expires {estimate.expires_on.isoformat()}" if estimate.expires_on else ""),
        f"Customer: {customer.display_name}" + (f" ({customer.company})" if customer.company else ""),
        f"Address: {address(customer)}",
        "Quoted work and parts:",
        *_lines(estimate.lines),
        f"Subtotal {format_money(estimate.subtotal)} · tax {format_money(estimate.tax_total)}"
        f" · total {format_money(estimate.total)}",
    ]
    if estimate.memo:
        rows.append(f"Memo: {estimate.memo}")
    return Document("estimate", estimate.id, estimate.version, "\n".join(rows))


async def documents(session: AsyncSession, tenant_id: int, entity: str, record_ids: list[int]) -> list[Document]:
    """The documents of these records of this tenant (records gone or another tenant's are left out)."""
    if entity == "invoice":
        invoices = list(
            (
                await session.scalars(
                    select(Invoice)
                    .where(Invoice.tenant_id == tenant_id, Invoice.id.in_(record_ids))
                    .order_by(Invoice.id)
                )
            ).unique()
        )
        paid: dict[int, list[Payment]] = defaultdict(list)
        for payment in await session.scalars(
            select(Payment)
            .where(
                Payment.tenant_id == tenant_id,
                Payment.invoice_id.in_([i.id for i in invoices]),
                Payment.status == PaymentStatus.SUCCEEDED,
            )
            .order_by(Payment.received_on, Payment.id)
        ):
            paid[payment.invoice_id].append(payment)
        return [invoice_document(inv, paid[inv.id]) for inv in invoices]
    estimates = await session.scalars(
        select(Estimate).where(Estimate.tenant_id == tenant_id, Estimate.id.in_(record_ids)).order_by(Estimate.id)
    )
    return [estimate_document(est) for est in estimates.unique()]
