"""What item and tax-rate writes accept."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from fieldhub.core.items.models import ItemKind
from fieldhub.core.validation import Money, Percent, Text


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text(100, min_length=1)
    sku: Text(100) = ""
    description: Text(4000) = ""
    unit_price: Money = Decimal("0.00")
    cost: Annotated[Money | None, BeforeValidator(_blank_to_none)] = None  # unknown when blank
    kind: ItemKind = ItemKind.SERVICE
    taxable: bool = False
    active: bool = True


class TaxRateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Text(100, min_length=1)
    rate: Percent
    agency: Text(100) = ""
    active: bool = True


ITEM_FIELDS = tuple(ItemIn.model_fields)
TAX_RATE_FIELDS = tuple(TaxRateIn.model_fields)
