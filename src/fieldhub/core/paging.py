"""One page of a tenant-scoped list, and the query that fetches it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.validation import MAX_ID

T = TypeVar("T")
MAX_PER_PAGE = 200
# A list can't hold more records than there are ids, so a page past this is always empty; bounding it keeps
# the OFFSET ((page - 1) × per_page) inside the 64-bit integer both databases take.
MAX_PAGE = MAX_ID
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE)]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


async def paginate(session: AsyncSession, query: Select[Any], page: int = 1, per_page: int = 25) -> Page[Any]:
    """Count, then fetch one page; page and per_page are clamped rather than refused (inputs refuse them first)."""
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = min(max(page, 1), MAX_PAGE)
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = (await session.scalars(query.limit(per_page).offset((page - 1) * per_page))).unique().all()
    return Page(items=list(rows), total=total, page=page, per_page=per_page)
