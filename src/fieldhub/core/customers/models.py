"""Customers: who the business bills and where it works."""

from __future__ import annotations

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base


class Customer(TenantRecord, Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_tenant_name", "tenant_id", "display_name"),)

    display_name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    billing_line1: Mapped[str] = mapped_column(String(200), default="")
    billing_line2: Mapped[str] = mapped_column(String(200), default="")
    billing_city: Mapped[str] = mapped_column(String(100), default="")
    billing_region: Mapped[str] = mapped_column(String(100), default="")
    billing_postal_code: Mapped[str] = mapped_column(String(20), default="")
    billing_country: Mapped[str] = mapped_column(String(2), default="US")
    service_line1: Mapped[str] = mapped_column(String(200), default="")
    service_line2: Mapped[str] = mapped_column(String(200), default="")
    service_city: Mapped[str] = mapped_column(String(100), default="")
    service_region: Mapped[str] = mapped_column(String(100), default="")
    service_postal_code: Mapped[str] = mapped_column(String(20), default="")
    service_country: Mapped[str] = mapped_column(String(2), default="US")
    # Internal notes never leave fieldhub: no provider mapping may read this field.
    notes: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
