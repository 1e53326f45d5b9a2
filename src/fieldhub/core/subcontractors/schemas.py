"""What subcontractor and sub-ticket writes accept."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from fieldhub.core.money import ZERO
from fieldhub.core.validation import Email, Money, OptionalId, Text


class SubcontractorIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    company: Text(200, min_length=1)
    contact_name: Text(200) = ""
    # Required: assignment is an email, so a subcontractor without an address could never be told.
    email: Email
    phone: Text(40) = ""
    trade: Text(100) = ""
    active: bool = True


class SubTicketIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scope: Text(4000, min_length=1)
    scheduled_on: date
    price: Money = ZERO
    # Given at creation, the sub-ticket is assigned (and emailed) at once.
    subcontractor_id: OptionalId = None


SUBCONTRACTOR_FIELDS = tuple(SubcontractorIn.model_fields)
