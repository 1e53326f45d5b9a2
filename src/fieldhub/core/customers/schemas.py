"""What a customer write accepts: every text bounded by its column, the email checked."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from fieldhub.core.validation import Email, Text


def _country(value: str) -> str:
    if value and (len(value) != 2 or not value.isalpha()):
        raise ValueError("use the two-letter country code, like US")
    return value.upper() or "US"


Country = Annotated[Text(2), AfterValidator(_country)]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    display_name: Text(200, min_length=1)
    company: Text(200) = ""
    email: Email = ""
    phone: Text(40) = ""
    billing_line1: Text(200) = ""
    billing_line2: Text(200) = ""
    billing_city: Text(100) = ""
    billing_region: Text(100) = ""
    billing_postal_code: Text(20) = ""
    billing_country: Country = "US"
    service_line1: Text(200) = ""
    service_line2: Text(200) = ""
    service_city: Text(100) = ""
    service_region: Text(100) = ""
    service_postal_code: Text(20) = ""
    service_country: Country = "US"
    notes: Text(10_000) = ""
    active: bool = True


FIELDS = tuple(CustomerIn.model_fields)
