"""What estimate writes accept: a customer, dated, with priced lines and an optional tax rate."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from fieldhub.core.validation import Id, Money, OptionalId, Quantity, Text


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _yes_no(value: Any) -> Any:
    # A form sends "true"/"false", "on" for a ticked box, or "" for "as the item is set up".
    if isinstance(value, str):
        text = value.strip().lower()
        return None if not text else text in ("on", "true", "1", "yes")
    return value


OptionalDate = Annotated[date | None, BeforeValidator(_blank_to_none)]
OptionalMoney = Annotated[Money | None, BeforeValidator(_blank_to_none)]
OptionalBool = Annotated[bool | None, BeforeValidator(_yes_no)]


class EstimateLineIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    item_id: OptionalId = None
    description: Text(2000) = ""
    quantity: Quantity = Field(gt=0)
    # Empty means "the item's price"; a line without an item must state one.
    unit_price: OptionalMoney = None
    # Empty means "as the item is set up"; a line without an item is not taxed unless told.
    taxable: OptionalBool = None

    @model_validator(mode="after")
    def _needs_something(self) -> EstimateLineIn:
        if self.item_id is None and not self.description:
            raise ValueError("Pick an item or describe the work.")
        return self


class EstimateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_id: Id
    # Empty means today in the business's time zone.
    issue_date: OptionalDate = None
    expires_on: OptionalDate = None
    tax_rate_id: OptionalId = None
    memo: Text(4000) = ""
    notes: Text(10_000) = ""
    lines: list[EstimateLineIn] = Field(min_length=1, max_length=200)


HEADER_FIELDS = ("customer_id", "issue_date", "expires_on", "tax_rate_id", "memo", "notes")
