"""Items and services the business sells, and its sales tax rates."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, ScaledDecimal


class ItemKind(StrEnum):
    SERVICE = "service"
    PRODUCT = "product"


class Item(TenantRecord, Base):
    __tablename__ = "items"

    name: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    unit_price: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=Decimal("0.00"))
    # What a unit costs the business (a part's purchase price); None when not known. Billing memory's markup
    # figures read it (capabilities/memory/ask.py). Never leaves fieldhub.
    cost: Mapped[Decimal | None] = mapped_column(ScaledDecimal(2), nullable=True)
    kind: Mapped[ItemKind] = mapped_column(String(10), default=ItemKind.SERVICE)
    taxable: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)


class TaxRate(TenantRecord, Base):
    __tablename__ = "tax_rates"

    name: Mapped[str] = mapped_column(String(100))
    # Percent with 4 places: 8.2500 means 8.25 %.
    rate: Mapped[Decimal] = mapped_column(ScaledDecimal(4))
    agency: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(default=True)
