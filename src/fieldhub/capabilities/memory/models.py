"""The vectors of billing memory and the queue of records waiting to be embedded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class MemoryVector(IdMixin, Base):
    """One record's embedding under one model: `vector` is `dims` little-endian float32s, unit length.

    A re-embed deletes the row and writes a new one (a new id), so a process's cached matrix can tell what
    changed from (count, max id) alone (store.py)."""

    __tablename__ = "memory_vectors"
    __table_args__ = (
        UniqueConstraint("tenant_id", "entity", "record_id", "model", name="uq_memory_vectors_record_model"),
        Index("ix_memory_vectors_tenant_model_id", "tenant_id", "model", "id"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(20))  # invoice | estimate
    record_id: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(60))
    dims: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    text: Mapped[str] = mapped_column(Text, default="")  # what was embedded: the record as the model read it
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    record_version: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(20), default="")  # sent | paid | backfill
    embedded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MemoryJobState:
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up after MAX_ATTEMPTS; shown, and retried by hand


class MemoryJob(IdMixin, Base):
    """A record to embed, written in the transaction of its status change (so it is never lost nor ahead of it)
    and taken by the embed task after the commit: a failure stays here with its error and is retried."""

    __tablename__ = "memory_jobs"
    __table_args__ = (Index("ix_memory_jobs_due", "state", "next_attempt_at"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(10), default=MemoryJobState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
