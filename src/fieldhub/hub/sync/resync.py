"""Resync on an invoice: send the invoice again, and any payment recorded after its first sync, to one connection.

The everyday case it fixes: an invoice went to the books, a payment was recorded later and didn't
make it (it failed, or auto-sync was off). Resync marks the invoice's ledger row and those payments'
rows pending and due now, through the same `ledger.mark` the domain events use, so the status rules
hold (a DRAFT invoice stays out; a never-synced VOID or an ACH payment still in flight is not sent).
The commit wakes a worker (dispatch's after-flush hook sees the pending rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.events import DomainEvent
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.payments.models import Payment
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.sync.ledger import exporting_connections, mark
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent


class ResyncRefused(Exception):
    """Resync can't run for this invoice and connection; the message says why in plain words."""


@dataclass
class InvoiceSync:
    """What the invoice page shows for one connection that syncs invoices."""

    connection: Connection
    row: LedgerRow | None
    synced_once: bool

    @property
    def name(self) -> str:
        return registry.get(self.connection.provider).name

    @property
    def label(self) -> str:
        return f"{'Resync' if self.synced_once else 'Sync'} to {self.name}"


@dataclass
class Resynced:
    invoice: bool = False
    payments: list[int] = field(default_factory=list)


async def connections_for(session: AsyncSession, tenant_id: int, invoice_id: int) -> list[InvoiceSync]:
    """The tenant's connected providers that export invoices, each with this invoice's ledger row."""
    found = []
    for connection in await exporting_connections(session, tenant_id, "invoice"):
        if connection.status != ConnectionStatus.CONNECTED:
            continue
        row = await _row(session, connection.id, "invoice", invoice_id)
        found.append(InvoiceSync(connection, row, bool(row and row.remote_id)))
    return found


async def _row(session: AsyncSession, connection_id: int, entity: str, local_id: int) -> LedgerRow | None:
    return await session.scalar(
        select(LedgerRow).where(
            LedgerRow.connection_id == connection_id, LedgerRow.entity == entity, LedgerRow.local_id == local_id
        )
    )


async def first_synced_at(session: AsyncSession, row: LedgerRow | None) -> datetime | None:
    """When the invoice first reached the provider: its ledger row's first successful event."""
    if row is None or not row.remote_id:
        return None
    first = await session.scalar(
        select(func.min(RecordEvent.created_at)).where(
            RecordEvent.ledger_id == row.id, RecordEvent.action.in_(("created", "updated", "imported"))
        )
    )
    return first or row.synced_at or row.created_at


async def resync_invoice(session: AsyncSession, tenant_id: int, invoice_id: int, connection_id: int) -> Resynced:
    """Mark the invoice and its payments recorded since its first sync pending for this connection.

    Raises ResyncRefused when the connection isn't this tenant's syncing one or the invoice is a draft.
    The caller looks the invoice up by tenant first (another business's invoice is a 404) and commits.
    """
    invoice = await session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id))
    if invoice is None:
        raise ResyncRefused("That invoice was not found.")
    choices = {c.connection.id: c for c in await connections_for(session, tenant_id, invoice_id)}
    chosen = choices.get(connection_id)
    if chosen is None:
        raise ResyncRefused("That connection doesn't sync invoices, or it isn't connected.")
    if invoice.status == InvoiceStatus.DRAFT:
        raise ResyncRefused("A draft invoice isn't sent to the books. Send the invoice first.")
    since = await first_synced_at(session, chosen.row)
    done = Resynced()
    row = await mark(session, chosen.connection, _event(invoice, "invoice", {"status": str(invoice.status)}))
    done.invoice = row is not None and row.state == LedgerState.PENDING
    payments = await session.scalars(
        select(Payment).where(Payment.tenant_id == tenant_id, Payment.invoice_id == invoice.id).order_by(Payment.id)
    )
    for payment in list(payments):
        current = await _row(session, connection_id, "payment", payment.id)
        synced = current is not None and current.state == LedgerState.SYNCED
        if synced and since is not None and payment.created_at < since:
            continue  # at the provider since before the invoice's first sync: nothing new to say
        row = await mark(session, chosen.connection, _event(payment, "payment", {"status": str(payment.status)}))
        if row is not None and row.state == LedgerState.PENDING:
            done.payments.append(payment.id)
    return done


def _event(record: Invoice | Payment, entity: str, data: dict[str, str]) -> DomainEvent:
    return DomainEvent(
        tenant_id=record.tenant_id,
        entity=entity,
        record_id=record.id,
        version=record.version,
        kind="resync",
        data=data,
    )
