"""Domain events: every core write records one in the same transaction, and listeners run there too.

Core does not know who listens. The sync engine registers a listener at start that marks its ledger
rows pending inside the same transaction, so a write and its sync work commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class DomainEventRow(IdMixin, Base):
    __tablename__ = "domain_events"
    __table_args__ = (Index("ix_domain_events_tenant_entity", "tenant_id", "entity", "record_id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))  # created | updated | deleted | status names
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class DomainEvent:
    tenant_id: int
    entity: str  # customer | item | tax_rate | invoice | payment | refund | estimate | job | time_block
    record_id: int
    version: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[AsyncSession, DomainEvent], Awaitable[None]]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


async def emit(session: AsyncSession, event: DomainEvent) -> None:
    """Record the event and let listeners act, all inside the caller's transaction."""
    session.add(
        DomainEventRow(
            tenant_id=event.tenant_id,
            entity=event.entity,
            record_id=event.record_id,
            version=event.version,
            kind=event.kind,
            data=event.data,
        )
    )
    for listener in list(_listeners):
        await listener(session, event)


async def record_event(session: AsyncSession, entity: str, record: Any, kind: str, data: dict[str, Any]) -> None:
    """Emit the event of a write to a tenant record (TenantRecord: tenant_id, id, version)."""
    await emit(
        session,
        DomainEvent(
            tenant_id=record.tenant_id,
            entity=entity,
            record_id=record.id,
            version=record.version,
            kind=kind,
            data=data,
        ),
    )
