"""Fixing a customer name conflict: a stable unique display name, or linking to the existing customer.

Ledgers keep customer names unique (QuickBooks across customers, vendors and employees: its fault 6240;
Xero across contacts). A ledger says which refusal that is with its ledger module's NAME_CONFLICT code. When
fieldhub's customer is refused for that, the person chooses; nothing is created silently:

- **Use the suggested name**: the customer is renamed here to a name the ledger does not use yet. The
  suggestion is stable (the same customer gets the same suggestion every time: its city, its company,
  its email, or the next free number as a person would write it, "Jane Smith (2)"), never random.
  Renaming marks the record to sync again.
- **Link to the existing customer there**: when the name belongs to a *customer* in the ledger, the
  ledger row takes that customer's id; nothing is sent, and what waited for it (invoices, payments) goes.
  A vendor's or employee's name can't be linked to: rename one side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.protocol import Ledger, Party
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import update_customer
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync import dispatch
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent, history_body

MAX_NAME = 100  # the shortest limit among the ledgers (QuickBooks' DisplayName)


class ConflictError(Exception):
    pass


@dataclass
class Conflict:
    row: LedgerRow
    customer: Customer
    holder: Party | None
    suggestion: str
    books_name: str = "the ledger"
    name_rule: str = ""  # how the ledger keeps names unique, in words

    @property
    def can_link(self) -> bool:
        return self.holder is not None and self.holder.kind == "customer"


def is_name_conflict(row: LedgerRow, provider: str) -> bool:
    module = ledgers.module(provider)
    code = getattr(module, "NAME_CONFLICT", None) if module is not None else None
    return code is not None and row.entity == "customer" and row.error_code == code


def normalise(name: str) -> str:
    """Ledgers compare names ignoring case and runs of spaces."""
    return re.sub(r"\s+", " ", name).strip().casefold()


def _clean(name: str) -> str:
    # QuickBooks refuses a colon in names (it separates sub-customers), and names past 100 characters.
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


async def _taken_here(session: AsyncSession, tenant_id: int, customer_id: int, name: str) -> bool:
    others = await session.scalars(
        select(Customer.display_name).where(Customer.tenant_id == tenant_id, Customer.id != customer_id)
    )
    return any(normalise(n) == normalise(name) for n in others)


async def suggest(session: AsyncSession, ledger: Ledger, customer: Customer) -> str:
    """The first candidate no one uses, here or in the ledger."""
    for name in candidates(customer):
        if await _taken_here(session, customer.tenant_id, customer.id, name):
            continue
        if await ledger.name_holder(name) is None:
            return name
    raise ConflictError("No free name could be found: rename the customer by hand.")


async def _row(session: AsyncSession, conn: Connection, ledger_id: int) -> tuple[LedgerRow, Customer]:
    row = await session.get(LedgerRow, ledger_id)
    if row is None or row.connection_id != conn.id or row.tenant_id != conn.tenant_id:
        raise ConflictError("That record was not found.")
    if not is_name_conflict(row, conn.provider):
        raise ConflictError("This record has no name conflict to fix.")
    customer = await session.scalar(
        select(Customer).where(Customer.id == row.local_id, Customer.tenant_id == conn.tenant_id)
    )
    if customer is None:
        raise ConflictError("The customer no longer exists in fieldhub.")
    return row, customer


async def describe(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int) -> Conflict:
    row, customer = await _row(session, conn, ledger_id)
    async with ledgers.open_for(env, conn) as ledger:
        holder = await ledger.name_holder(customer.display_name.strip())
        suggestion = await suggest(session, ledger, customer)
    rule = str(getattr(ledgers.module(conn.provider), "NAME_RULE", ""))
    return Conflict(row, customer, holder, suggestion, ledger.name, rule)


async def use_name(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int, name: str) -> Customer:
    """Rename the customer here (the record then syncs again under the new name)."""
    row, customer = await _row(session, conn, ledger_id)
    name = _clean(name)
    if not name:
        raise ConflictError("Enter a name.")
    books = ledgers.name_of(conn.provider)
    if len(name) > MAX_NAME:
        raise ConflictError(f"{books} takes names of up to {MAX_NAME} characters.")
    if await _taken_here(session, conn.tenant_id, customer.id, name):
        raise ConflictError(f"Another customer here is already called “{name}”.")
    async with ledgers.open_for(env, conn) as ledger:
        holder = await ledger.name_holder(name)
    if holder is not None:
        raise ConflictError(f"{books} already has {holder.a_kind} called “{holder.name}”: choose another name.")
    renamed = await update_customer(session, conn.tenant_id, customer.id, {"display_name": name})
    # update_customer's event marked the row pending again; make it and what waited for it due now.
    await dispatch.retry_record(session, conn.tenant_id, row.id)
    await dispatch.request_sync(session, conn.id, trigger="retry")
    return renamed


async def link(env: OAuthEnv, session: AsyncSession, conn: Connection, ledger_id: int, remote_id: str) -> Party:
    """This customer is that customer in the ledger: record its id; nothing is sent; what waited for it goes."""
    row, customer = await _row(session, conn, ledger_id)
    async with ledgers.open_for(env, conn) as ledger:
        holder = await ledger.name_holder(customer.display_name.strip())
        books = ledger.name
    if holder is None or holder.kind != "customer" or holder.remote_id != str(remote_id):
        raise ConflictError(f"That {books} customer no longer carries this name: reload the page.")
    taken = await session.scalar(
        select(LedgerRow.id).where(
            LedgerRow.connection_id == conn.id,
            LedgerRow.entity == "customer",
            LedgerRow.remote_id == holder.remote_id,
            LedgerRow.id != row.id,
        )
    )
    if taken is not None:
        raise ConflictError(f"That {books} customer is already linked to another customer here.")
    now = utcnow()
    row.remote_id = holder.remote_id
    row.remote_version = holder.version or None
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
            summary=f"linked customer #{customer.id} to the existing {books} customer {holder.remote_id}",
            received=history_body({"Id": holder.remote_id, "Name": holder.name, "Version": holder.version}),
        )
    )
    await dispatch.request_sync(session, conn.id, trigger="retry")
    return holder
