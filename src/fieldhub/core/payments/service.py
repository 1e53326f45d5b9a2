"""Reading payments and refunds, tenant-scoped. They are written by the invoice service, with the invoice."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.errors import NotFound
from fieldhub.core.invoices.service import record_payment, refund_payment, refunded_amount
from fieldhub.core.paging import Page, paginate
from fieldhub.core.payments.models import Payment, Refund

__all__ = [
    "get_payment",
    "get_refund",
    "list_payments",
    "list_refunds",
    "record_payment",
    "refund_payment",
    "refunded_amount",
]


async def get_payment(session: AsyncSession, tenant_id: int, payment_id: int) -> Payment:
    payment = await session.scalar(select(Payment).where(Payment.id == payment_id, Payment.tenant_id == tenant_id))
    if payment is None:
        raise NotFound("payment", payment_id)
    return payment


async def list_payments(
    session: AsyncSession, tenant_id: int, *, invoice_id: int | None = None, page: int = 1, per_page: int = 25
) -> Page[Payment]:
    query = select(Payment).where(Payment.tenant_id == tenant_id)
    if invoice_id is not None:
        query = query.where(Payment.invoice_id == invoice_id)
    return await paginate(session, query.order_by(Payment.received_on.desc(), Payment.id.desc()), page, per_page)


async def get_refund(session: AsyncSession, tenant_id: int, refund_id: int) -> Refund:
    refund = await session.scalar(select(Refund).where(Refund.id == refund_id, Refund.tenant_id == tenant_id))
    if refund is None:
        raise NotFound("refund", refund_id)
    return refund


async def list_refunds(
    session: AsyncSession,
    tenant_id: int,
    *,
    invoice_id: int | None = None,
    payment_id: int | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Refund]:
    query = select(Refund).where(Refund.tenant_id == tenant_id)
    if invoice_id is not None:
        query = query.where(Refund.invoice_id == invoice_id)
    if payment_id is not None:
        query = query.where(Refund.payment_id == payment_id)
    return await paginate(session, query.order_by(Refund.refunded_on.desc(), Refund.id.desc()), page, per_page)
