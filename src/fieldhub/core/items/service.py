"""Items and tax rates: the only writer of the items and tax_rates tables, scoped to one tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.errors import NotFound
from fieldhub.core.events import record_event
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.items.schemas import ITEM_FIELDS, TAX_RATE_FIELDS, ItemIn, TaxRateIn
from fieldhub.core.paging import Page, paginate
from fieldhub.core.validation import parse

R = TypeVar("R", Item, TaxRate)


async def _emit(session: AsyncSession, entity: str, record: Item | TaxRate, kind: str, changed: list[str]) -> None:
    await record_event(session, entity, record, kind, {"name": record.name, "changed": changed})


async def _update(
    session: AsyncSession,
    record: R,
    entity: str,
    schema: type[BaseModel],
    fields: tuple[str, ...],
    data: BaseModel | Mapping[str, Any],
) -> R:
    """Merge the given fields over the current ones, validate the whole, write only what changed."""
    given = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)
    merged = {**{f: getattr(record, f) for f in fields}, **{k: v for k, v in given.items() if k in fields}}
    values = parse(schema, merged).model_dump()
    changed = [f for f in fields if values[f] != getattr(record, f)]
    if not changed:
        return record
    for f in changed:
        setattr(record, f, values[f])
    record.version += 1
    await session.flush()
    await _emit(session, entity, record, "updated", changed)
    return record


async def create_item(session: AsyncSession, tenant_id: int, data: ItemIn | Mapping[str, Any]) -> Item:
    values = parse(ItemIn, data)
    item = Item(tenant_id=tenant_id, version=1, **values.model_dump())
    session.add(item)
    await session.flush()
    await _emit(session, "item", item, "created", list(ITEM_FIELDS))
    return item


async def get_item(session: AsyncSession, tenant_id: int, item_id: int) -> Item:
    item = await session.scalar(select(Item).where(Item.id == item_id, Item.tenant_id == tenant_id))
    if item is None:
        raise NotFound("item", item_id)
    return item


async def update_item(session: AsyncSession, tenant_id: int, item_id: int, data: ItemIn | Mapping[str, Any]) -> Item:
    item = await get_item(session, tenant_id, item_id)
    return await _update(session, item, "item", ItemIn, ITEM_FIELDS, data)


async def list_items(
    session: AsyncSession,
    tenant_id: int,
    *,
    q: str = "",
    active: bool | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Item]:
    query = select(Item).where(Item.tenant_id == tenant_id)
    q = q.strip()[:200]
    if q:
        query = query.where(or_(*(c.icontains(q, autoescape=True) for c in (Item.name, Item.sku, Item.description))))
    if active is not None:
        query = query.where(Item.active == active)
    return await paginate(session, query.order_by(Item.name, Item.id), page, per_page)


async def create_tax_rate(session: AsyncSession, tenant_id: int, data: TaxRateIn | Mapping[str, Any]) -> TaxRate:
    values = parse(TaxRateIn, data)
    rate = TaxRate(tenant_id=tenant_id, version=1, **values.model_dump())
    session.add(rate)
    await session.flush()
    await _emit(session, "tax_rate", rate, "created", list(TAX_RATE_FIELDS))
    return rate


async def get_tax_rate(session: AsyncSession, tenant_id: int, tax_rate_id: int) -> TaxRate:
    rate = await session.scalar(select(TaxRate).where(TaxRate.id == tax_rate_id, TaxRate.tenant_id == tenant_id))
    if rate is None:
        raise NotFound("tax_rate", tax_rate_id)
    return rate


async def update_tax_rate(
    session: AsyncSession, tenant_id: int, tax_rate_id: int, data: TaxRateIn | Mapping[str, Any]
) -> TaxRate:
    rate = await get_tax_rate(session, tenant_id, tax_rate_id)
    return await _update(session, rate, "tax_rate", TaxRateIn, TAX_RATE_FIELDS, data)


async def list_tax_rates(
    session: AsyncSession, tenant_id: int, *, active: bool | None = None, page: int = 1, per_page: int = 100
) -> Page[TaxRate]:
    query = select(TaxRate).where(TaxRate.tenant_id == tenant_id)
    if active is not None:
        query = query.where(TaxRate.active == active)
    return await paginate(session, query.order_by(TaxRate.name, TaxRate.id), page, per_page)
