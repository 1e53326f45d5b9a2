"""Customers: the only writer of the customers table. Every read and write is scoped to one tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.schemas import FIELDS, CustomerIn
from fieldhub.core.errors import NotFound
from fieldhub.core.events import record_event
from fieldhub.core.paging import Page, paginate
from fieldhub.core.validation import parse

ENTITY = "customer"


def _current(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in FIELDS}


async def _emit(session: AsyncSession, customer: Customer, kind: str, changed: list[str]) -> None:
    await record_event(session, ENTITY, customer, kind, {"display_name": customer.display_name, "changed": changed})


async def create_customer(session: AsyncSession, tenant_id: int, data: CustomerIn | Mapping[str, Any]) -> Customer:
    values = parse(CustomerIn, data)
    customer = Customer(tenant_id=tenant_id, version=1, **values.model_dump())
    session.add(customer)
    await session.flush()
    await _emit(session, customer, "created", list(FIELDS))
    return customer


async def get_customer(session: AsyncSession, tenant_id: int, customer_id: int) -> Customer:
    """Another tenant's customer is NotFound, exactly like a missing one."""
    customer = await session.scalar(select(Customer).where(Customer.id == customer_id, Customer.tenant_id == tenant_id))
    if customer is None:
        raise NotFound(ENTITY, customer_id)
    return customer


async def update_customer(
    session: AsyncSession, tenant_id: int, customer_id: int, data: CustomerIn | Mapping[str, Any]
) -> Customer:
    """Only the fields present in `data` change; the result is validated whole, then written."""
    customer = await get_customer(session, tenant_id, customer_id)
    given = data.model_dump(exclude_unset=True) if isinstance(data, CustomerIn) else dict(data)
    merged = {**_current(customer), **{k: v for k, v in given.items() if k in FIELDS}}
    values = parse(CustomerIn, merged).model_dump()
    changed = [name for name in FIELDS if values[name] != getattr(customer, name)]
    if not changed:
        return customer
    for name in changed:
        setattr(customer, name, values[name])
    customer.version += 1
    await session.flush()
    await _emit(session, customer, "updated", changed)
    return customer


async def set_customer_active(session: AsyncSession, tenant_id: int, customer_id: int, active: bool) -> Customer:
    customer = await get_customer(session, tenant_id, customer_id)
    if customer.active == active:
        return customer
    customer.active = active
    customer.version += 1
    await session.flush()
    await _emit(session, customer, "activated" if active else "deactivated", ["active"])
    return customer


async def deactivate_customer(session: AsyncSession, tenant_id: int, customer_id: int) -> Customer:
    return await set_customer_active(session, tenant_id, customer_id, False)


async def activate_customer(session: AsyncSession, tenant_id: int, customer_id: int) -> Customer:
    return await set_customer_active(session, tenant_id, customer_id, True)


async def list_customers(
    session: AsyncSession,
    tenant_id: int,
    *,
    q: str = "",
    active: bool | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Customer]:
    """Search matches name, company, email or phone, case-insensitively; wildcards in `q` are literal."""
    query = select(Customer).where(Customer.tenant_id == tenant_id)
    q = q.strip()[:200]
    if q:
        query = query.where(
            or_(
                *(
                    column.icontains(q, autoescape=True)
                    for column in (Customer.display_name, Customer.company, Customer.email, Customer.phone)
                )
            )
        )
    if active is not None:
        query = query.where(Customer.active == active)
    query = query.order_by(Customer.display_name, Customer.id)
    return await paginate(session, query, page, per_page)


def phone_digits(phone: str) -> str:
    """A phone number as its last ten digits ("+1 (512) 555-0147" and "512.555.0147" are one number)."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[-10:] if len(digits) >= 10 else digits


async def find_by_phone(session: AsyncSession, tenant_id: int, phone: str) -> Customer | None:
    """The tenant's customer with this phone number, however either was written; the oldest if several.

    The last four digits narrow the rows in SQL (a LIKE on the stored text), the digits compare exactly here."""
    wanted = phone_digits(phone)
    if len(wanted) < 7:
        return None
    rows = await session.scalars(
        select(Customer)
        .where(Customer.tenant_id == tenant_id, Customer.phone.like(f"%{wanted[-1]}"))
        .order_by(Customer.id)
    )
    for customer in rows:
        if phone_digits(customer.phone) == wanted:
            return customer
    return None
