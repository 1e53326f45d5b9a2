"""Estimates: quoted work the customer approves or declines. Never synced to accounting."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.core.customers.models import Customer
from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, IdMixin, ScaledDecimal

ZERO = Decimal("0.00")


class EstimateStatus(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    APPROVED = "approved"
    DECLINED = "declined"


class Estimate(TenantRecord, Base):
    __tablename__ = "estimates"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[EstimateStatus] = mapped_column(String(10), default=EstimateStatus.DRAFT)
    issue_date: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    tax_rate_id: Mapped[int | None] = mapped_column(ForeignKey("tax_rates.id"), nullable=True)
    subtotal: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    tax_total: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    total: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    memo: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship(lazy="joined")
    lines: Mapped[list[EstimateLine]] = relationship(
        lazy="selectin", order_by="EstimateLine.position", cascade="all, delete-orphan"
    )


class EstimateLine(IdMixin, Base):
    __tablename__ = "estimate_lines"

    estimate_id: Mapped[int] = mapped_column(ForeignKey("estimates.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[Decimal] = mapped_column(ScaledDecimal(4))
    unit_price: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    taxable: Mapped[bool] = mapped_column(default=False)
