"""Fixing a customer name conflict (QBO 6240): a stable unique DisplayName, or linking to the existing customer.

QuickBooks keeps one DisplayName across customers, vendors and employees. When fieldhub's customer is
refused for that, the person chooses; nothing is created silently:

- **Use the suggested name**: the customer is renamed here to a name QuickBooks does not use yet. The
  suggestion is stable (the same customer gets the same suggestion every time: its city, its company,
  its email, or the next free number as a person would write it, "Jane Smith (2)"), never random.
  Renaming marks the record to sync again.
- **Link to the existing QuickBooks customer**: when the name belongs to a QuickBooks *customer*, the
  ledger row takes that customer's Id; nothing is sent, and what waited for it (invoices, payments) goes.
  A vendor's or employee's name can't be linked to: rename one side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import update_customer
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync import dispatch
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent, history_body
from fieldhub.providers.quickbooks.ledger import quote
from fieldhub.providers.quickbooks.sync import QuickBooksAdapter

NAME_CONFLICT = "6240"
NAME_LISTS = ("Customer", "Vendor", "Employee")
MAX_NAME = 100


class ConflictError(Exception):
    pass


@dataclass
class Holder:
    """Who in QuickBooks uses the name."""

    entity: str  # Customer | Vendor | Employee
    remote_id: str
    name: str
    email: str = ""
    sync_token: str = ""

    @property
    def kind(self) -> str:
        return self.entity.lower()

    @property
    def a_kind(self) -> str:
        return ("an " if self.entity == "Employee" else "a ") + self.kind


@dataclass
class Conflict:
    row: LedgerRow
    customer: Customer
    holder: Holder | None
    suggestion: str

    @property
    def can_link(self) -> bool:
        return self.holder is not None and self.holder.entity == "Customer"


def is_name_conflict(row: LedgerRow) -> bool:
    return row.entity == "customer" and row.error_code == NAME_CONFLICT


def normalise(name: str) -> str:
    """QuickBooks compares names ignoring case and runs of spaces."""
    return re.sub(r"\s+", " ", name).strip().casefold()


def _clean(name: str) -> str:
    # QBO refuses a colon in names (it separates sub-customers) and names past 100 characters.
    return re.sub(r"\s+", " ", name.replace(":", " ")).strip()


def candidates(customer: Customer) -> list[str]:
    """Suggested names, best first; the same customer always gets the same list."""
    base = _clean(customer.display_name)
    extras = []
    city = customer.service_city or customer.billing_city
    if city and normalise(city) not in normalise(base):
        extras.append(_clean(city))
    if customer.company and normalise(customer.company) not in normalise(base):
        extras.append(_clean(customer.company))
    if customer.email and normalise(customer.email) not in normalise(base):
        extras.append(_clean(customer.email))
    # Then the way a person numbers a second "Jane Smith": "Jane Smith (2)".
    extras += [str(n) for n in range(2, 10)]
    return [base[: MAX_NAME - len(f" ({extra})")].rstrip() + f" ({extra})" for extra in extras]


async def holder_of(adapter: QuickBooksAdapter, name: str) -> Holder | None:
    """The customer, vendor or employee in QuickBooks that uses this name, if any."""
    for entity in NAME_LISTS:
        found = (await adapter.query(f"SELECT * FROM {entity} WHERE DisplayName = {quote(name)}")).get(entity, [])
        if found:
            obj = found[0]
            return Holder(
                entity,
                str(obj["Id"]),
                str(obj.get("DisplayName", "")),
                str((obj.get("PrimaryEmailAddr") or {}).get("Address", "")),
                str(obj.get("SyncToken", "")),
            )
    return None


async def _taken_here(session: AsyncSession, tenant_id: int, customer_id: int, name: str) -> bool:
    others = await session.scalars(
        select(Customer.display_name).where(Customer.tenant_id == tenant_id, Customer.id != customer_id)
    )
    return any(normalise(n) == normalise(name) for n in others)


async def suggest(session: AsyncSession, adapter: QuickBooksAdapter, customer: Customer) -> str:
    """The first candidate no one uses, here or in QuickBooks."""
    for name in candidates(customer):
        if await _taken_here(session, customer.tenant_id, customer.id, name):
            continue
        if await holder_of(adapter, name) is None:
            return name
    raise ConflictError("No free name could be found: rename the customer by hand.")


async def _row(session: AsyncSession, conn: Connection, ledger_id: int) -> tuple[LedgerRow, Customer]:
    row = await session.get(LedgerRow, ledger_id)
    if row is None or row.connection_id != conn.id or row.tenant_id != conn.tenant_id:
        raise ConflictError("That record was not found.")
    if not is_name_conflict(row):
        raise ConflictError("This record has no name conflict to fix.")
    customer = await session.scalar(
        select(Customer).where(Customer.id == row.local_id, Customer.tenant_id == conn.tenant_id)
    )
    if customer is None:
        raise ConflictError("The customer no longer exists in fieldhub.")
    return row, customer


async def describe(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int) -> Conflict:
    row, customer = await _row(session, conn, ledger_id)
    async with client_for(env, conn) as client:
        adapter = QuickBooksAdapter(conn, client, env.settings)
        holder = await holder_of(adapter, customer.display_name.strip())
        suggestion = await suggest(session, adapter, customer)
    return Conflict(row, customer, holder, suggestion)


async def use_name(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int, name: str) -> Customer:
    """Rename the customer here (the record then syncs again under the new name)."""
    row, customer = await _row(session, conn, ledger_id)
    name = _clean(name)
    if not name:
        raise ConflictError("Enter a name.")
    if len(name) > MAX_NAME:
        raise ConflictError(f"QuickBooks takes names of up to {MAX_NAME} characters.")
    if await _taken_here(session, conn.tenant_id, customer.id, name):
        raise ConflictError(f"Another customer here is already called “{name}”.")
    async with client_for(env, conn) as client:
        holder = await holder_of(QuickBooksAdapter(conn, client, env.settings), name)
    if holder is not None:
        raise ConflictError(f"QuickBooks already has {holder.a_kind} called “{holder.name}”: choose another name.")
    renamed = await update_customer(session, conn.tenant_id, customer.id, {"display_name": name})
    # update_customer's event marked the row pending again; make it and what waited for it due now.
    await dispatch.retry_record(session, conn.tenant_id, row.id)
    await dispatch.request_sync(session, conn.id, trigger="retry")
    return renamed


async def link(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int, remote_id: str) -> Holder:
    """This customer is that QuickBooks customer: record its Id; nothing is sent; what waited for it goes."""
    row, customer = await _row(session, conn, ledger_id)
    async with client_for(env, conn) as client:
        holder = await holder_of(QuickBooksAdapter(conn, client, env.settings), customer.display_name.strip())
    if holder is None or holder.entity != "Customer" or holder.remote_id != str(remote_id):
        raise ConflictError("That QuickBooks customer no longer carries this name: reload the page.")
    taken = await session.scalar(
        select(LedgerRow.id).where(
            LedgerRow.connection_id == conn.id,
            LedgerRow.entity == "customer",
            LedgerRow.remote_id == holder.remote_id,
            LedgerRow.id != row.id,
        )
    )
    if taken is not None:
        raise ConflictError("That QuickBooks customer is already linked to another customer here.")
    now = utcnow()
    row.remote_id = holder.remote_id
    row.remote_version = holder.sync_token or None
    row.synced_version = row.local_version
    row.state = LedgerState.SYNCED
    row.attempts = 0
    row.idempotency_key = None
    row.sent_at = None
    row.synced_at = now
    row.error_code = row.error_reason = row.error_fix = ""
    session.add(
        RecordEvent(
            ledger_id=row.id,
            action="linked",
            summary=f"linked customer #{customer.id} to the existing QuickBooks customer {holder.remote_id}",
            received=history_body(_plain(holder)),
        )
    )
    await dispatch.request_sync(session, conn.id, trigger="retry")
    return holder


def _plain(holder: Holder) -> dict[str, Any]:
    return {"Id": holder.remote_id, "DisplayName": holder.name, "SyncToken": holder.sync_token}
