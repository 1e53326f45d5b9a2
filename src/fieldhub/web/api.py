"""The JSON API's shared shapes, written once: money as strings, list pages, partial (PATCH) bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, PlainSerializer, create_model

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


def partial(model: type[BaseModel]) -> type[BaseModel]:
    """The same fields, all optional: PATCH sends only what changes (the service validates the result whole)."""
    fields: dict[str, Any] = {
        name: (Annotated[(info.annotation | None), *info.metadata] if info.metadata else info.annotation | None, None)  # type: ignore[operator]
        for name, info in model.model_fields.items()
        if name != "status"
    }
    return create_model(f"{model.__name__.removesuffix('In')}Patch", __config__=ConfigDict(extra="ignore"), **fields)
