"""Payments received against invoices, refunds of them, and the bank deposits that carry them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, ScaledDecimal


class PaymentMethod(StrEnum):
    CARD = "card"
    ACH = "ach"
    CASH = "cash"
    CHECK = "check"


class PaymentStatus(StrEnum):
    PENDING = "pending"  # ACH in flight: not money yet, never synced to the books
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    VOIDED = "voided"  # taken back after it was recorded (voided or deleted in the books): out of amount paid


class Payment(TenantRecord, Base):
    __tablename__ = "payments"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    received_on: Mapped[date] = mapped_column(Date)
    method: Mapped[PaymentMethod] = mapped_column(String(10))
    status: Mapped[PaymentStatus] = mapped_column(String(10), default=PaymentStatus.SUCCEEDED)
    reference: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")


class Refund(TenantRecord, Base):
    __tablename__ = "refunds"

    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    refunded_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200), default="")
    reference: Mapped[str] = mapped_column(String(100), default="")


class Deposit(TenantRecord, Base):
    """Money that reached the business's bank in one transfer (a processor's payout): what it is made of.

    net = gross − fees − refunds (± adjustments): the amount that landed, exactly. `source` and
    `source_id` name where it came from (the processor's key and its payout id), unique per tenant so a
    payout becomes one deposit however often it is reported.
    """

    __tablename__ = "deposits"
    __table_args__ = (UniqueConstraint("tenant_id", "source", "source_id"),)

    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    gross: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    fees: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    refunds: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    adjustments: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    net: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    arrival_date: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[DepositLine]] = relationship(
        back_populates="deposit", cascade="all, delete-orphan", order_by="DepositLine.position", lazy="selectin"
    )


class DepositLineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    FEE = "fee"
    ADJUSTMENT = "adjustment"


class DepositLine(Base):
    """One movement inside a deposit; `amount` is signed (a refund or a fee is negative), lines sum to net."""

    __tablename__ = "deposit_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deposit_id: Mapped[int] = mapped_column(ForeignKey("deposits.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[DepositLineKind] = mapped_column(String(12))
    amount: Mapped[Decimal] = mapped_column(ScaledDecimal(2))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), nullable=True)
    source_id: Mapped[str] = mapped_column(String(100), default="")  # the processor's transaction id
    description: Mapped[str] = mapped_column(String(300), default="")
    deposit: Mapped[Deposit] = relationship(back_populates="lines")
