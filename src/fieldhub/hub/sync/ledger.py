"""The ledger's write side: core domain events mark rows pending inside the writing transaction.

`on_domain_event` is subscribed to core events at start (serve and worker). For every connection of
the tenant that exports the entity, it upserts the (connection, entity, record) row: the new local
version, state pending, due now. Because it runs in the same transaction as the write, a crash
loses nothing — either both the change and its sync work commit, or neither does. The engine
derives all its work from these rows, so duplicate wake-ups do nothing.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.events import DomainEvent
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.spec import Direction
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.hub.sync.rules import operation_for

# A connection that needs re-authorisation still collects work, so nothing is lost while it waits
# for Reconnect; a disconnected one does not (the guide: un-synced records don't backfill on reconnect).
COLLECTING = (ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_REAUTH)


def exports(provider: str, entity: str) -> bool:
    """Whether the provider takes this entity from fieldhub today; only then is its work collected."""
    return registry.get(provider).syncs(entity, Direction.EXPORT)


async def exporting_connections(session: AsyncSession, tenant_id: int, entity: str) -> list[Connection]:
    rows = await session.scalars(
        select(Connection).where(Connection.tenant_id == tenant_id, Connection.status.in_(COLLECTING))
    )
    return [c for c in rows if exports(c.provider, entity)]


def idempotency_key(connection_id: int, entity: str, local_id: int, version: int, operation: str) -> str:
    """Deterministic per (connection, entity, record, version, operation): ≤ 50 chars for QBO's requestid."""
    raw = f"{connection_id}:{entity}:{local_id}:{version}:{operation}"
    return "fh-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def on_domain_event(session: AsyncSession, event: DomainEvent) -> None:
    connections = await exporting_connections(session, event.tenant_id, event.entity)
    for connection in connections:
        await mark(session, connection, event)


async def mark(session: AsyncSession, connection: Connection, event: DomainEvent) -> LedgerRow | None:
    row = await session.scalar(
        select(LedgerRow).where(
            LedgerRow.connection_id == connection.id,
            LedgerRow.entity == event.entity,
            LedgerRow.local_id == event.record_id,
        )
    )
    operation = operation_for(event, already_synced=bool(row and row.remote_id))
    if operation is None:
        if row is not None and not row.remote_id and row.state == LedgerState.PENDING:
            # e.g. an invoice voided before it ever reached the books: nothing will be sent.
            row.state = LedgerState.SKIPPED
            row.local_version = event.version
        return row
    if row is None:
        row = LedgerRow(
            tenant_id=event.tenant_id,
            connection_id=connection.id,
            entity=event.entity,
            local_id=event.record_id,
            local_version=0,
        )
        session.add(row)
    if row.local_version > event.version:
        return row  # an older event arriving late changes nothing
    row.local_version = event.version
    row.operation = operation
    row.state = LedgerState.PENDING
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.error_code = row.error_reason = row.error_fix = ""
    # The idempotency key is never touched here: a create that was sent but not confirmed keeps its
    # key, so the engine settles it by replaying that key before sending the newer version.
    await session.flush()
    return row
