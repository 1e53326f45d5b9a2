"""Payments received against invoices, and refunds of them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
