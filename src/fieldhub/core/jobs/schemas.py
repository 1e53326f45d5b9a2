"""What job and time-block writes accept. Times are timezone-aware; the service stores them as UTC."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from fieldhub.core.jobs.models import JobStatus
from fieldhub.core.validation import Id, Text


def _ids(value: Any) -> Any:
    # A form sends one value per ticked box, or a single value; blanks are "none chosen".
    if value is None or value == "":
        return []
    if isinstance(value, str | int):
        value = [value]
    return [v for v in value if not (isinstance(v, str) and not v.strip())]


UserIds = Annotated[list[Id], BeforeValidator(_ids), Field(max_length=50)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_id: Id
    title: Text(200, min_length=1)
    description: Text(4000) = ""
    # Empty means the customer's service address.
    address: Text(400) = ""
    scheduled_start: AwareDatetime
    scheduled_end: AwareDatetime
    notes: Text(10_000) = ""
    technician_ids: UserIds = []


class JobStatusIn(BaseModel):
    status: JobStatus


class TimeBlockIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Text(200) = ""


JOB_FIELDS = tuple(f for f in JobIn.model_fields if f != "technician_ids")
