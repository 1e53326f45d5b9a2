"""The JSON API's shared shapes, written once: money as strings, list pages, partial (PATCH) bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, create_model

from fieldhub.core.paging import Page

T = TypeVar("T")
# Decimal as a JSON string, documented as one in OpenAPI.
Amount = Annotated[Decimal, PlainSerializer(lambda v: str(v), return_type=str, when_used="json")]
PerPage = Annotated[int, Query(ge=1, le=200)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


def page_out(page: Page[Any], out: type[Out]) -> dict[str, Any]:
    return {
        "items": [out.model_validate(row) for row in page.items],
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
    }


def given(body: BaseModel) -> dict[str, Any]:
    """Only the fields the caller sent: PATCH changes what it names and nothing else."""
    return body.model_dump(exclude_unset=True)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "left out" is not a value a client could send


def partial(model: type[BaseModel]) -> type[BaseModel]:
    """The same fields, none required: PATCH sends only what changes (the service validates the result whole).

    Each field keeps its type, so null is taken only where the record takes it (a due date, a tax rate) and
    refused, like on create, where it doesn't (a customer's name, an amount). A field left out is unset and
    `given` drops it; its placeholder default is never validated nor shown in the schema.
    """
    fields: dict[str, Any] = {
        name: (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation,
            Field(default=None, json_schema_extra=_no_default),
        )
        for name, info in model.model_fields.items()
        if name != "status"
    }
    return create_model(f"{model.__name__.removesuffix('In')}Patch", __config__=ConfigDict(extra="ignore"), **fields)
