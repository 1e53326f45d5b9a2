"""Calendar changes in: busy events block technicians' time, and a job's event moved or deleted there moves or
unschedules the job. Written once; a provider's inbound.py `poll` and its push handler call `sync_in`.

One run per connection under its sync lease (the export engine's too, so the two never interleave). For each
calendar the connection reads (its own and the technicians'), the provider's changes since the stored cursor
are applied and the cursor moves in the same transaction, so a crash re-reads, never skips. An expired cursor
(Google's 410, Graph's delta reset) starts a full read: blocks are keyed by event, so nothing doubles, and
blocks whose events the full read no longer has are freed. Events not from fieldhub never become jobs.

Two-way, newest edit wins: a job's event that changed there later than the job changed here moves the job (or,
deleted, cancels it), written to the job's history with where it came from; the ledger row is set to what the
calendar already holds, so the move is not sent back as an echo. A job changed here since wins: the export
puts its time back on the calendar.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.calendar import service
from fieldhub.capabilities.calendar.protocol import CalendarEvent, Changes, CursorExpired
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.events import record_event
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock
from fieldhub.core.jobs.service import (
    MAX_JOB_LENGTH,
    list_technicians,
    reschedule_job,
    set_external_blocks,
    set_job_status,
)
from fieldhub.db import utcnow
from fieldhub.hub import processes, registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth, ProviderError
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.engine import LeaseKeeper, acquire_lease, release_lease
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus, SyncCursor, SyncRun
from fieldhub.hub.sync.runs import RunCounts
from fieldhub.log import get_logger

log = get_logger("fieldhub.calendar.inbound")
IMPORTS = ("time_block", "job")
BUSY = "Busy"


def cursor_name(calendar_id: str) -> str:
    return "cal:" + hashlib.sha256(calendar_id.encode()).hexdigest()[:32]


def block_key(connection_id: int, event_key: str) -> str:
    return f"{connection_id}:{event_key}"[:200]


@dataclass
class Imported:
    run: SyncRun | None
    full_reads: int = 0


async def sync_in(
    env: OAuthEnv,
    connection_id: int,
    *,
    trigger: str = "schedule",
    due_before: datetime | None = None,
    client_options: dict[str, Any] | None = None,
    wait: float = 0.0,
) -> Imported | None:
    """Read the connection's calendars' changes and apply them; None when it is busy, not due or not importing.

    `wait`: how long to keep asking for a lease another run holds (a push arriving mid-export waits its turn)."""
    holder = f"{processes.PROCESS}:cal:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    async with env.sessionmaker() as session:
        while not await acquire_lease(session, connection_id, holder):
            if time.monotonic() >= deadline:
                return None
            import asyncio

            await asyncio.sleep(0.05)
        keeper = LeaseKeeper(env.sessionmaker, connection_id, holder).start()
        try:
            conn = await session.get(Connection, connection_id)
            if conn is None or conn.status != ConnectionStatus.CONNECTED:
                return None
            settings = CalendarSettings.of(conn)
            if not settings.calendar_id or not (settings.imports or settings.two_way):
                return None
            if trigger == "schedule" and not settings.auto_sync:
                return None  # Auto Sync off: only Sync Now (and a push) read the calendar
            if due_before is not None:
                polled = await session.scalar(
                    select(SyncCursor.polled_at).where(
                        SyncCursor.connection_id == connection_id,
                        SyncCursor.name == cursor_name(settings.calendar_id),
                    )
                )
                # Each connection keeps the Sync Interval its owner chose (5, 15, 30 or 60 minutes).
                mine = utcnow() - timedelta(minutes=settings.interval_minutes)
                if polled is not None and polled > mine and trigger == "schedule":
                    return None
            return await _Run(env, session, conn, settings, trigger, dict(client_options or {})).go()
        finally:
            await keeper.stop()
            try:
                async with env.sessionmaker() as fresh:
                    await release_lease(fresh, connection_id, holder)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("calendar.inbound.release_failed", connection_id=connection_id)


class _Run:
    def __init__(
        self,
        env: OAuthEnv,
        session: AsyncSession,
        conn: Connection,
        settings: CalendarSettings,
        trigger: str,
        client_options: dict[str, Any],
    ) -> None:
        self.env, self.session, self.conn, self.settings = env, session, conn, settings
        self.trigger, self.client_options = trigger, client_options
        self.counts = RunCounts()
        self.errors: list[dict[str, Any]] = []
        self.full_reads = 0

    async def go(self) -> Imported:
        session, conn = self.session, self.conn
        started = time.monotonic()
        connection_id, tenant_id = conn.id, conn.tenant_id
        run = SyncRun(
            tenant_id=tenant_id, connection_id=connection_id, trigger=self.trigger, direction="import", entity=""
        )
        session.add(run)
        await session.commit()
        run_id = run.id
        technicians = {u.id: u for u in await list_technicians(session, tenant_id)}
        own = {int(t): c for t, c in self.settings.technician_calendars.items() if c and int(t) in technicians}
        calendars: dict[str, list[int]] = {self.settings.calendar_id: [t for t in technicians if t not in own]}
        for tech, cal in own.items():
            calendars.setdefault(cal, []).append(tech)
        fatal: ProviderError | None = None
        try:
            async with service.open_api(self.env, conn, **self.client_options) as api:
                for calendar_id, users in calendars.items():
                    name = cursor_name(calendar_id)
                    cursor = await session.get(SyncCursor, (connection_id, name))
                    try:
                        changes = await api.changes(calendar_id, cursor.value if cursor else "")
                    except CursorExpired:
                        self.full_reads += 1
                        log.info("calendar.inbound.full_resync", connection_id=connection_id)
                        changes = await api.changes(calendar_id, "")
                    await self._apply(calendar_id, users, changes)
                    if cursor is None:
                        cursor = SyncCursor(connection_id=connection_id, name=name)
                        session.add(cursor)
                    cursor.value = changes.cursor[:200]
                    cursor.polled_at = utcnow()
                    await session.commit()  # the changes and the cursor that covers them, together
        except NeedsReauth as e:
            await session.rollback()
            from fieldhub.hub.connections import service as connections

            fresh = await session.get(Connection, connection_id, populate_existing=True)
            assert fresh is not None
            await connections.mark_needs_reauth(session, fresh, e.reason or connections.reauth_message(fresh.provider))
            self.errors.append({"code": "needs_reauth", "reason": e.reason, "fix": "Click Reconnect."})
            fatal = e
        except ProviderError as e:
            await session.rollback()
            self.errors.append({"code": e.kind, "reason": str(e), "fix": "fieldhub tries again at the next sync."})
            fatal = e
        done = await session.get(SyncRun, run_id, populate_existing=True)
        assert done is not None
        self.counts.write(session, done)
        done.errors = self.errors[:200]
        done.status = (
            RunStatus.FAILED
            if fatal is not None and not self.counts.created + self.counts.updated + self.counts.deleted
            else RunStatus.PARTIAL
            if self.errors
            else RunStatus.SUCCESS
        )
        done.finished_at = utcnow()
        done.duration_ms = int((time.monotonic() - started) * 1000)
        await session.commit()
        return Imported(done, self.full_reads)

    async def _apply(self, calendar_id: str, users: list[int], changes: Changes) -> None:
        seen: set[str] = set()
        for event in changes.events:
            seen.add(block_key(self.conn.id, event.key))
            # A job's event is known by the ledger (its remote id), whatever marker the provider keeps.
            row = await self.session.scalar(
                select(LedgerRow.id).where(
                    LedgerRow.connection_id == self.conn.id, LedgerRow.entity == "job", LedgerRow.remote_id == event.key
                )
            )
            if row is not None or event.job_id is not None:
                await self._job_event(event)
            else:
                await self._busy_event(event, users)
        if changes.full:
            # Whatever this calendar's blocks stood for and the full read no longer has is gone from it.
            prefix = f"{self.conn.id}:"
            stale = await self.session.scalars(
                select(TimeBlock.external_key).where(
                    TimeBlock.tenant_id == self.conn.tenant_id,
                    TimeBlock.source == self.conn.provider,
                    TimeBlock.external_key.like(prefix + "%"),
                    TimeBlock.user_id.in_(users or [-1]),
                )
            )
            for key in {k for k in stale if k} - seen:
                if await set_external_blocks(self.session, self.conn.tenant_id, key, [], None, None, "", ""):
                    self.counts.add("time_block", "deleted")

    async def _busy_event(self, event: CalendarEvent, users: list[int]) -> None:
        key = block_key(self.conn.id, event.key)
        blocks = self.settings.block_time_slots and self.settings.imports and event.busy and not event.cancelled
        end = min(event.end, event.start + MAX_JOB_LENGTH)
        reason = BUSY if event.private or not event.summary else event.summary
        outcome = await set_external_blocks(
            self.session,
            self.conn.tenant_id,
            key,
            users if blocks else [],
            event.start if blocks else None,
            end if blocks else None,
            reason,
            self.conn.provider,
        )
        if outcome:
            self.counts.add("time_block", outcome)

    async def _job_event(self, event: CalendarEvent) -> None:
        """A job's own event, changed at the provider: two-way only, newest edit wins."""
        if not self.settings.two_way:
            return
        row = await self.session.scalar(
            select(LedgerRow).where(
                LedgerRow.connection_id == self.conn.id, LedgerRow.entity == "job", LedgerRow.remote_id == event.key
            )
        )
        job = await self.session.get(Job, row.local_id) if row is not None else None
        if row is None or job is None or job.tenant_id != self.conn.tenant_id or row.local_id != job.id:
            return  # not ours (a copy on another account), or the job is gone
        if event.updated is not None and job.updated_at is not None and event.updated <= job.updated_at:
            return  # changed here since: the export puts our time back
        name = registry.get(self.conn.provider).name
        if event.cancelled:
            if job.status not in (JobStatus.SCHEDULED, JobStatus.IN_PROGRESS):
                return
            job = await set_job_status(self.session, self.conn.tenant_id, job.id, JobStatus.CANCELLED)
            await record_event(
                self.session,
                "job",
                job,
                "calendar_unscheduled",
                {"provider": self.conn.provider, "event": event.key, "note": f"Its event was deleted in {name}."},
            )
            kind = "deleted"
        else:
            if (event.start, event.end) == (job.scheduled_start, job.scheduled_end):
                return  # our own write coming back, or a change to something we don't own
            before = (job.scheduled_start.isoformat(), job.scheduled_end.isoformat())
            job = await reschedule_job(self.session, self.conn.tenant_id, job.id, event.start, event.end)
            await record_event(
                self.session,
                "job",
                job,
                "calendar_moved",
                {
                    "provider": self.conn.provider,
                    "event": event.key,
                    "from": list(before),
                    "to": [event.start.isoformat(), event.end.isoformat()],
                    "note": f"Moved in {name}.",
                },
            )
            kind = "updated"
        await self.session.flush()
        # The calendar holds this already: nothing to send back to it.
        fresh = await self.session.get(LedgerRow, row.id, populate_existing=True)
        assert fresh is not None
        fresh.local_version = fresh.synced_version = job.version
        fresh.state = LedgerState.SYNCED
        fresh.synced_at = utcnow()
        self.counts.add("job", kind)
