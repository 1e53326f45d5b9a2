"""The webhook inbox (every verified event, raw, once) and the links from provider object ids to local records."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class InboxState(StrEnum):
    RECEIVED = "received"  # stored, not yet processed (or processing crashed before it finished)
    PROCESSED = "processed"
    IGNORED = "ignored"  # verified but nothing to do: an event type we don't act on, an unknown account
    FAILED = "failed"  # processing raised; the sweep retries it a few times


class WebhookInbox(IdMixin, Base):
    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_webhook_inbox_state", "state", "received_at"),
    )

    provider: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(120), default="")
    # Known when the event names an account we have a connection to; None until then (or never).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), nullable=True, index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The body exactly as it arrived (the signature covers these bytes), and the few headers worth keeping.
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[InboxState] = mapped_column(String(12), default=InboxState.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RemoteLink(IdMixin, Base):
    """A provider's object (a payment intent, a refund) ↔ the local record it became.

    Unique on (provider, kind, remote id): whatever order and however often a provider reports an
    object, it maps to one local record — the guard that makes webhook handlers idempotent. Kept here
    rather than as a unique payment `reference`, so hand-typed references (check numbers) stay free.
    """

    __tablename__ = "remote_links"
    __table_args__ = (
        UniqueConstraint("provider", "kind", "remote_id"),
        Index("ix_remote_links_local", "tenant_id", "local_entity", "local_id"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))  # the provider's object type
    remote_id: Mapped[str] = mapped_column(String(200))
    local_entity: Mapped[str] = mapped_column(String(40))  # payment | refund | deposit
    local_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
