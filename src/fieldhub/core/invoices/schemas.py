"""What invoice, payment and refund writes accept. Rules needing the database live in the service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from fieldhub.core.payments.models import PaymentMethod
from fieldhub.core.validation import ID_SCHEMA, Money, OptionalId, Quantity, Text, require_in_schema


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _blank_to_one(value: Any) -> Any:
    return "1" if value is None or (isinstance(value, str) and not value.strip()) else value


def _blank_to_zero(value: Any) -> Any:
    return "0" if value is None or (isinstance(value, str) and not value.strip()) else value


OptionalMoney = Annotated[Money | None, BeforeValidator(_blank_to_none)]
Discount = Annotated[Money, BeforeValidator(_blank_to_zero)]
LineQuantity = Annotated[Quantity, BeforeValidator(_blank_to_one)]
OptionalDate = Annotated[date | None, BeforeValidator(_blank_to_none)]
OptionalBool = Annotated[bool | None, BeforeValidator(_blank_to_none)]
MAX_LINES = 200


class InvoiceLineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    item_id: OptionalId = None
    description: Text(4000) = ""
    quantity: LineQuantity = Decimal("1")
    # None: the item's price (required when there is no item).
    unit_price: OptionalMoney = None
    discount_amount: Discount = Decimal("0.00")
    # None: the item's taxable flag (not taxable when there is no item).
    taxable: OptionalBool = None


class InvoiceIn(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra=require_in_schema("customer_id"))

    # Required, and documented so; a blank one is taken here and refused by the service along with every
    # other mistake on the form, so the page can show them all at once.
    customer_id: Annotated[OptionalId, WithJsonSchema(ID_SCHEMA)] = None
    issue_date: OptionalDate = None  # None: today
    due_date: OptionalDate = None
    tax_rate_id: OptionalId = None
    discount_amount: Discount = Decimal("0.00")
    memo: Text(4000) = ""
    notes: Text(10_000) = ""
    lines: list[InvoiceLineIn] = Field(min_length=1, max_length=MAX_LINES)
    # Only on create: a DRAFT is still being written; OPEN is final and can take payments before it is sent.
    status: Literal["DRAFT", "OPEN"] = "DRAFT"


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Money = Field(gt=0)
    received_on: OptionalDate = None  # None: today
    method: PaymentMethod = PaymentMethod.CARD
    reference: Text(100) = ""
    notes: Text(10_000) = ""


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Money = Field(gt=0)
    refunded_on: OptionalDate = None  # None: today
    reason: Text(200) = ""
    reference: Text(100) = ""
