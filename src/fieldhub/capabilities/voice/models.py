"""The call log: each call the assistant took, and each tool call it made during one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class VoiceCall(IdMixin, Base):
    __tablename__ = "voice_calls"
    __table_args__ = (
        UniqueConstraint("provider", "remote_id"),
        Index("ix_voice_calls_tenant_started", "tenant_id", "started_at"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"), nullable=True)
    provider: Mapped[str] = mapped_column(String(40))
    remote_id: Mapped[str] = mapped_column(String(120))
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    from_number: Mapped[str] = mapped_column(String(40), default="")
    to_number: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[str] = mapped_column(String(20), default="ongoing")  # ongoing | ended
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    # booked | message | balance | no_action: what the call's tool calls did, decided when it ends.
    outcome: Mapped[str] = mapped_column(String(20), default="no_action")
    transcript: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    recording_url: Mapped[str] = mapped_column(String(500), default="")
    disconnection_reason: Mapped[str] = mapped_column(String(80), default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)


class VoiceToolCall(IdMixin, Base):
    """One tool request the provider made during a call, with what fieldhub answered.

    `signature` is unique: a signed request seen once is refused if it comes again (a replay). `request_key` (the
    call, the tool and its arguments) makes the provider's own retry of a request whose answer it lost get the
    same answer instead of a second booking.
    """

    __tablename__ = "voice_tool_calls"
    __table_args__ = (
        UniqueConstraint("signature"),
        Index("ix_voice_tool_calls_request", "tenant_id", "request_key"),
        Index("ix_voice_tool_calls_call", "tenant_id", "call_remote_id"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    call_remote_id: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(60))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signature: Mapped[str] = mapped_column(String(128))
    request_key: Mapped[str] = mapped_column(String(64))
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
