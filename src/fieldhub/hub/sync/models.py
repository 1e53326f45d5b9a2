"""The sync ledger (one row per connection, entity and local record), run history and per-record history."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub import exactjson
from fieldhub.db import Base, IdMixin, JSONText, UTCDateTime, utcnow
from fieldhub.log import scrub_json


class LedgerState(StrEnum):
    PENDING = "pending"  # work to do: local_version is ahead of synced_version, or an operation is due
    SYNCED = "synced"
    FAILED = "failed"  # Rejected: waits for a person to fix the cause and press Retry
    SKIPPED = "skipped"  # nothing to send (a DRAFT invoice voided before it was ever synced)


class Operation(StrEnum):
    UPSERT = "upsert"  # create when remote_id is empty, else update
    VOID = "void"
    DELETE = "delete"


class LedgerRow(IdMixin, Base):
    __tablename__ = "sync_ledger"
    __table_args__ = (
        UniqueConstraint("connection_id", "entity", "local_id"),
        # The engine's hot query (engine.due_rows): one connection's pending rows of one entity in id
        # order. Synced rows are the vast majority; with state second the index jumps past all of them.
        Index("ix_sync_ledger_due", "connection_id", "state", "entity", "id"),
        # The sweep's query across every connection: pending rows whose time has come.
        Index("ix_sync_ledger_sweep", "state", "next_attempt_at"),
        Index("ix_sync_ledger_remote", "connection_id", "entity", "remote_id"),
        # The stats bar's "Synced today" (status.synced_since) reads today's rows only.
        Index("ix_sync_ledger_synced", "connection_id", "state", "synced_at"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(30))
    local_id: Mapped[int] = mapped_column(Integer)
    remote_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    remote_version: Mapped[str | None] = mapped_column(String(100), nullable=True)  # QBO SyncToken, Xero date, ...
    # When the provider last changed the object through fieldhub (our write's reply, a side effect of one such
    # as a payment touching its invoice, or a change of theirs applied here): a notification about a change no
    # newer than this only echoes what the ledger knows, and costs no read (hub/sync/echoes.py).
    remote_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    local_version: Mapped[int] = mapped_column(Integer, default=0)  # newest version of the local record seen
    synced_version: Mapped[int] = mapped_column(Integer, default=0)  # version last confirmed at the provider
    state: Mapped[LedgerState] = mapped_column(String(10), default=LedgerState.PENDING)
    operation: Mapped[Operation] = mapped_column(String(10), default=Operation.UPSERT)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Written and committed BEFORE a create is sent; a crash after the provider committed is settled by
    # replaying the same key (QBO requestid, Idempotency-Key) or finding the marker in the remote record.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error_code: Mapped[str] = mapped_column(String(40), default="")
    error_reason: Mapped[str] = mapped_column(Text, default="")  # plain words, for the business owner
    error_fix: Mapped[str] = mapped_column(Text, default="")
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


class SyncRun(IdMixin, Base):
    __tablename__ = "sync_runs"
    # Sync History pages newest first by (started_at, id), filtered by status or entity or neither: an
    # index per filter, each ending in the sort, so a page reads its rows and stops (bench/history.py).
    __table_args__ = (
        Index("ix_sync_runs_connection_started", "connection_id", "started_at", "id"),
        Index("ix_sync_runs_connection_status", "connection_id", "status", "started_at", "id"),
        Index("ix_sync_runs_connection_entity", "connection_id", "entity", "started_at", "id"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20))  # realtime | manual | retry | backfill | schedule | webhook
    direction: Mapped[str] = mapped_column(String(10))  # export | import
    entity: Mapped[str] = mapped_column(String(30), default="")  # empty: every entity
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[RunStatus] = mapped_column(String(10), default=RunStatus.RUNNING)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class SyncRunEntity(Base):
    """One entity's share of one run (only entities the run did something to): what that entity's card
    on the sync page counts, and the history's Records column. Written by hub/sync/runs.RunCounts.

    A run over every entity (entity "") changes customers, items and invoices at once; its totals alone
    can't say which card a failure belongs to.
    """

    __tablename__ = "sync_run_entities"
    # An entity card reads its newest row: (connection, entity) newest run first, one index range.
    __table_args__ = (Index("ix_sync_run_entities_latest", "connection_id", "entity", "run_id"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(30), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Found on both sides already and linked in the ledger (a backfill's matches): nothing created or changed.
    linked: Mapped[int] = mapped_column(Integer, default=0)


class SyncRunDay(Base):
    """One connection's finished runs on one UTC day that is over, by status: the sync page's chart, kept.

    Written by status.runs_per_day the first time a chart shows an ended day with no run of it still
    running, and read from then on: a run is finished once and keeps its start time, so such a day's
    counts never change. Counting them from sync_runs on every view read tens of thousands of rows
    (bench/history.py). Today's runs are always counted live.
    """

    __tablename__ = "sync_run_days"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    success: Mapped[int] = mapped_column(Integer, default=0)
    partial: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)


def history_body(body: Any) -> JSONText | None:
    """What a RecordEvent keeps of a body sent or received: JSON with amounts as exact strings and every
    secret scrubbed. Written once (exactjson.text) and scrubbed as text: a walk in Python over every
    value, then json.dumps again at insert, cost about 0.1 ms a record in a backfill."""
    if body is None:
        return None
    return JSONText(scrub_json(exactjson.text(body)))


class RecordEvent(IdMixin, Base):
    """What was sent and received for one ledger row, so any record's sync can be explained."""

    __tablename__ = "sync_record_events"
    __table_args__ = (Index("ix_sync_record_events_ledger", "ledger_id", "created_at"),)

    ledger_id: Mapped[int] = mapped_column(ForeignKey("sync_ledger.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(20))  # created | updated | voided | failed | conflict | imported
    summary: Mapped[str] = mapped_column(Text, default="")
    sent: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # redacted of secrets
    received: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SyncLease(Base):
    """Who is syncing a connection right now: one row per connection, held by one worker until it expires.

    Every process (embedded or `fieldhub worker`, on any machine) takes the lease before it runs a
    connection, so two never push the same records at once. A worker that dies stops renewing and the
    lease expires by itself.
    """

    __tablename__ = "sync_leases"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncCursor(Base):
    """Where a connection's inbound catch-up got to (QBO CDC `changedSince`, a delta token), and when it last polled.

    The value moves only in the transaction that commits the changes read up to it, so a crash re-reads
    rather than skips. `polled_at` older than the connection's `connected_at` means a reconnect happened
    since: the next periodic round polls at once.
    """

    __tablename__ = "sync_cursors"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), default="")
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class PeriodicLease(Base):
    """One periodic task across every worker process: who runs it now and when it is due next.

    A worker runs the task only if it moves `next_run_at` forward in one conditional UPDATE, so with
    any number of workers each round runs once; a holder that dies frees it when `expires_at` passes.
    """

    __tablename__ = "periodic_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
