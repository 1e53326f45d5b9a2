"""Invoices and their lines. Totals are stored, computed by the service with stated rounding."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.core.customers.models import Customer
from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, IdMixin, ScaledDecimal, UTCDateTime

ZERO = Decimal("0.00")


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    SENT = "SENT"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    VOID = "VOID"


class Invoice(TenantRecord, Base):
    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[InvoiceStatus] = mapped_column(String(20), default=InvoiceStatus.DRAFT)
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    tax_rate_id: Mapped[int | None] = mapped_column(ForeignKey("tax_rates.id"), nullable=True)
    discount_amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    subtotal: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    discount_total: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    tax_total: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    total: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    amount_paid: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    balance: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    memo: Mapped[str] = mapped_column(Text, default="")  # printed on the invoice
    notes: Mapped[str] = mapped_column(Text, default="")  # internal: never leaves fieldhub
    # The unguessable part of the public pay link.
    public_token: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    customer: Mapped[Customer] = relationship(lazy="joined")
    lines: Mapped[list[InvoiceLine]] = relationship(
        lazy="selectin", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )


class InvoiceLine(IdMixin, Base):
    __tablename__ = "invoice_lines"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[Decimal] = mapped_column(ScaledDecimal(4))
    unit_price: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    discount_amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    taxable: Mapped[bool] = mapped_column(default=False)
