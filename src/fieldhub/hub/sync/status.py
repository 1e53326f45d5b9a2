"""Sync figures read from the ledger and run history: what the pages show and what the health score grades.

Every number here is one indexed query per connection; nothing counts the whole history table, so a
connection with a million runs renders as fast as one with ten.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.items.models import Item
from fieldhub.core.money import format_money
from fieldhub.core.payments.models import Deposit, Payment, Refund
from fieldhub.db import utcnow
from fieldhub.hub.sync.models import (
    LedgerRow,
    LedgerState,
    RecordEvent,
    RunStatus,
    SyncRun,
    SyncRunDay,
    SyncRunEntity,
)

# How many of the newest finished runs the failure ratio and success rate look at.
RECENT_RUNS = 50
# The sparkline: runs per day over this many days.
CHART_DAYS = 14
FINISHED = (RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED)
HISTORY_PAGE = 50


@dataclass(frozen=True)
class DayRuns:
    day: datetime
    success: int = 0
    partial: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.success + self.partial + self.failed


@dataclass
class EntityStatus:
    entity: str
    counts: dict[str, int] = field(default_factory=dict)  # ledger state -> rows
    last_run: SyncRun | None = None  # the newest finished run that covered this entity, with work or without
    # This entity's counts in the newest finished run that did something to it, and that run.
    changes: SyncRunEntity | None = None
    changed_in: SyncRun | None = None

    @property
    def pending(self) -> int:
        return self.counts.get(LedgerState.PENDING, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(LedgerState.FAILED, 0)

    @property
    def synced(self) -> int:
        return self.counts.get(LedgerState.SYNCED, 0)


@dataclass
class SyncStatus:
    """One connection's sync state, from the ledger (records) and the run history (runs)."""

    entities: dict[str, EntityStatus]
    oldest_pending_at: datetime | None
    last_success_at: datetime | None
    recent_finished: int
    recent_failed: int
    synced_today: int
    chart: list[DayRuns]

    @property
    def pending(self) -> int:
        return sum(e.pending for e in self.entities.values())

    @property
    def failed(self) -> int:
        return sum(e.failed for e in self.entities.values())

    @property
    def synced(self) -> int:
        return sum(e.synced for e in self.entities.values())

    @property
    def failure_ratio(self) -> float | None:
        """Share of the recent finished runs that failed outright; None before the first run."""
        return self.recent_failed / self.recent_finished if self.recent_finished else None

    @property
    def success_rate(self) -> float | None:
        ratio = self.failure_ratio
        return None if ratio is None else 1 - ratio

    def entity(self, name: str) -> EntityStatus:
        return self.entities.get(name) or EntityStatus(name)

    def ages(self, now: datetime | None = None) -> tuple[timedelta | None, timedelta | None]:
        """(oldest pending record's wait, time since the last successful run) for the health score."""
        now = now or utcnow()
        pending = now - self.oldest_pending_at if self.oldest_pending_at else None
        success = now - self.last_success_at if self.last_success_at else None
        return pending, success


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def counts_by_entity(session: AsyncSession, connection_id: int) -> dict[str, dict[str, int]]:
    rows = await session.execute(
        select(LedgerRow.entity, LedgerRow.state, func.count())
        .where(LedgerRow.connection_id == connection_id)
        .group_by(LedgerRow.entity, LedgerRow.state)
    )
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for entity, state, count in rows:
        found[entity][str(state)] = count
    return dict(found)


async def oldest_pending(session: AsyncSession, connection_id: int) -> datetime | None:
    """When the longest-waiting pending record became due (the (connection, state, due) index answers it)."""
    return await session.scalar(
        select(func.min(LedgerRow.next_attempt_at)).where(
            LedgerRow.connection_id == connection_id, LedgerRow.state == LedgerState.PENDING
        )
    )


async def last_success(session: AsyncSession, connection_id: int, since: datetime | None = None) -> datetime | None:
    query = select(SyncRun.started_at).where(
        SyncRun.connection_id == connection_id, SyncRun.status == RunStatus.SUCCESS
    )
    if since is not None:
        query = query.where(SyncRun.started_at >= since)
    return await session.scalar(query.order_by(SyncRun.started_at.desc()).limit(1))


async def recent_run_statuses(
    session: AsyncSession, connection_id: int, limit: int = RECENT_RUNS, since: datetime | None = None
) -> list[str]:
    query = select(SyncRun.status).where(SyncRun.connection_id == connection_id, SyncRun.status != RunStatus.RUNNING)
    if since is not None:
        query = query.where(SyncRun.started_at >= since)
    rows = await session.scalars(query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit))
    return [str(s) for s in rows]


async def synced_since(session: AsyncSession, connection_id: int, since: datetime) -> int:
    return (
        await session.scalar(
            select(func.count()).where(
                LedgerRow.connection_id == connection_id,
                LedgerRow.state == LedgerState.SYNCED,
                LedgerRow.synced_at >= since,
            )
        )
        or 0
    )


async def runs_per_day(
    session: AsyncSession, connection_id: int, days: int = CHART_DAYS, now: datetime | None = None
) -> list[DayRuns]:
    """Finished runs per UTC day and status over the last `days` days, oldest first, empty days included.

    A day that is over is read from sync_run_days, written here the first time it is shown with no run
    of it still running; today, and any day not kept yet, is counted in the database, one row per day
    and status. The caller commits (a page's request does): until then the counts are only not kept.
    """
    today = _start_of_day(now or utcnow())
    first = today - timedelta(days=days - 1)
    days_shown = [first + timedelta(days=i) for i in range(days)]
    kept = {
        row.day: {"success": row.success, "partial": row.partial, "failed": row.failed}
        for row in await session.scalars(
            select(SyncRunDay).where(SyncRunDay.connection_id == connection_id, SyncRunDay.day >= first.date())
        )
    }
    missing = [day for day in days_shown[:-1] if day.date() not in kept]  # ended days not kept yet
    counted = await _count_runs(session, connection_id, missing[0] if missing else today)
    if missing:
        running = await _days_with_running(session, connection_id, missing[0], today)
        ended = [
            {"connection_id": connection_id, "day": day.date(), **_tally_of(counted.get(day.date()))}
            for day in missing
            if day.date() not in running
        ]
        if ended:
            await session.execute(_insert_ignoring_kept(session), ended)
    return [DayRuns(day, **(kept.get(day.date()) or _tally_of(counted.get(day.date())))) for day in days_shown]


async def _count_runs(session: AsyncSession, connection_id: int, since: datetime) -> dict[date, dict[str, int]]:
    """Finished runs per UTC day and status from `since` on, counted by the database."""
    day = _utc_day(SyncRun.started_at, session.get_bind().dialect.name)
    rows = await session.execute(
        select(day, SyncRun.status, func.count())
        .where(
            SyncRun.connection_id == connection_id,
            SyncRun.status.in_(FINISHED),  # not != RUNNING: an IN reads ix_sync_runs_connection_status alone
            SyncRun.started_at >= since,
        )
        .group_by(day, SyncRun.status)
    )
    tally: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for when, state, count in rows:
        tally[date.fromisoformat(str(when)[:10])][str(state)] += count
    return tally


async def _days_with_running(session: AsyncSession, connection_id: int, since: datetime, until: datetime) -> set[date]:
    """The UTC days in [since, until) on which a run started that is still running: not over yet."""
    started = await session.scalars(
        select(SyncRun.started_at).where(
            SyncRun.connection_id == connection_id,
            SyncRun.status == RunStatus.RUNNING,
            SyncRun.started_at >= since,
            SyncRun.started_at < until,
        )
    )
    return {moment.date() for moment in started}


def _tally_of(counts: dict[str, int] | None) -> dict[str, int]:
    counts = counts or {}
    return {"success": counts.get("success", 0), "partial": counts.get("partial", 0), "failed": counts.get("failed", 0)}


def _insert_ignoring_kept(session: AsyncSession) -> Any:
    """INSERT of sync_run_days rows that leaves a day another request kept meanwhile as it is."""
    dialect = session.get_bind().dialect.name
    table = cast(Table, SyncRunDay.__table__)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a UTCDateTime column, as the database computes it."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.substr(column, 1, 10)  # SQLite keeps UTC as text: 'YYYY-MM-DD HH:MM:SS.ffffff'


async def latest_runs(session: AsyncSession, connection_id: int, entities: list[str]) -> dict[str, SyncRun]:
    """The newest finished run that touched each entity (a run for every entity counts for each)."""
    found: dict[str, SyncRun] = {}
    for entity in entities:
        run = await session.scalar(
            select(SyncRun)
            .where(
                SyncRun.connection_id == connection_id,
                SyncRun.entity.in_((entity, "")),
                SyncRun.status != RunStatus.RUNNING,
            )
            .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
            .limit(1)
        )
        if run is not None:
            found[entity] = run
    return found


async def latest_changes(
    session: AsyncSession, connection_id: int, entities: list[str]
) -> dict[str, tuple[SyncRunEntity, SyncRun]]:
    """Each entity's counts in the newest finished run that did something to it (one index range each)."""
    found: dict[str, tuple[SyncRunEntity, SyncRun]] = {}
    for entity in entities:
        row = (
            await session.execute(
                select(SyncRunEntity, SyncRun)
                .join(SyncRun, SyncRun.id == SyncRunEntity.run_id)
                .where(
                    SyncRunEntity.connection_id == connection_id,
                    SyncRunEntity.entity == entity,
                    SyncRun.status != RunStatus.RUNNING,
                )
                .order_by(SyncRunEntity.run_id.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            found[entity] = (row[0], row[1])
    return found


async def sync_status(
    session: AsyncSession, connection_id: int, entities: list[str] | None = None, now: datetime | None = None
) -> SyncStatus:
    """Everything the connection's page and health score read, for the given entities (default: every one seen)."""
    now = now or utcnow()
    counts = await counts_by_entity(session, connection_id)
    names = list(entities) if entities is not None else sorted(counts)
    runs = await latest_runs(session, connection_id, names)
    changes = await latest_changes(session, connection_id, names)
    statuses = await recent_run_statuses(session, connection_id)
    return SyncStatus(
        entities={
            name: EntityStatus(name, counts.get(name, {}), runs.get(name), *changes.get(name, (None, None)))
            for name in names
        },
        oldest_pending_at=await oldest_pending(session, connection_id),
        last_success_at=await last_success(session, connection_id),
        recent_finished=len(statuses),
        recent_failed=sum(1 for s in statuses if s == RunStatus.FAILED),
        synced_today=await synced_since(session, connection_id, _start_of_day(now)),
        chart=await runs_per_day(session, connection_id, now=now),
    )


async def health_figures(session: AsyncSession, connection_id: int, since: datetime | None = None) -> dict[str, Any]:
    """The sync part of HealthInputs: failure_ratio, oldest_pending_age, last_success_age (None: not measured).

    `since` is when the connection's current grant began (its last connect or reconnect): runs before it
    failed for a sign-in that is gone, and once it is replaced they say nothing about the connection now.
    """
    statuses = await recent_run_statuses(session, connection_id, since=since)
    pending_at = await oldest_pending(session, connection_id)
    success_at = await last_success(session, connection_id, since=since)
    now = utcnow()
    failed = sum(1 for s in statuses if s == RunStatus.FAILED)
    return {
        "failure_ratio": failed / len(statuses) if statuses else None,
        # A record that is not yet due (backing off) has not waited: only count time past its due time.
        "oldest_pending_age": max(now - pending_at, timedelta(0)) if pending_at else None,
        # Graded only while runs fail: after a success nothing has gone wrong, however long nothing needed sending
        # (a quiet connection is proven by the health check, and a record left waiting by oldest_pending_age).
        "last_success_age": (now - success_at)
        if success_at and statuses and statuses[0] != RunStatus.SUCCESS
        else None,
    }


# --- history, keyset-paginated -------------------------------------------------------------------


@dataclass
class HistoryPage:
    runs: list[SyncRun]
    next_cursor: str | None  # "<started_at iso>|<id>" of the last row shown, when more rows follow


def encode_cursor(run: SyncRun) -> str:
    return f"{run.started_at.isoformat()}|{run.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    when, _, ident = cursor.partition("|")
    try:
        return datetime.fromisoformat(when), int(ident)
    except ValueError:
        return None


async def history(
    session: AsyncSession,
    tenant_id: int,
    connection_id: int,
    *,
    status: str = "",
    entity: str = "",
    after: str = "",
    limit: int = HISTORY_PAGE,
) -> HistoryPage:
    """Newest runs first, `limit` at a time, continuing below the cursor on (started_at, id) — never OFFSET."""
    query = select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.connection_id == connection_id)
    if status:
        query = query.where(SyncRun.status == status)
    if entity:
        query = query.where(SyncRun.entity == entity)
    position = decode_cursor(after) if after else None
    if position is not None:
        started, ident = position
        # A row-value comparison: both databases turn it into one range on the index.
        query = query.where(tuple_(SyncRun.started_at, SyncRun.id) < (started, ident))
    rows = list(await session.scalars(query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return HistoryPage(rows, encode_cursor(rows[-1]) if more and rows else None)


async def run_entities(session: AsyncSession, run_ids: list[int]) -> dict[int, list[SyncRunEntity]]:
    """What each of these runs did per entity (runs that did nothing have no rows), in one query."""
    found: dict[int, list[SyncRunEntity]] = defaultdict(list)
    if run_ids:
        rows = await session.scalars(
            select(SyncRunEntity).where(SyncRunEntity.run_id.in_(run_ids)).order_by(SyncRunEntity.run_id)
        )
        for row in rows:
            found[row.run_id].append(row)
    return dict(found)


# --- records --------------------------------------------------------------------------------------

# A record whose dependencies are not at the provider yet waits for them (hub/sync/engine): the reason
# names them as "<entity> #<local id>", which is how the pending list finds and names them again.
WAITING = "waiting"
_WAITING_ON = re.compile(r"\b([a-z_]+) #(\d+)")


def waiting_reason(dependencies: list[tuple[str, int]]) -> str:
    return f"waiting for {', '.join(f'{entity} #{local_id}' for entity, local_id in dependencies)} to sync first"


def waiting_on(reason: str) -> list[tuple[str, int]]:
    return [(entity, int(local_id)) for entity, local_id in _WAITING_ON.findall(reason)]


class Wait(StrEnum):
    """Why a pending record has not gone yet, most binding first."""

    RECONNECT = "reconnect"  # the connection needs re-authorising
    INACTIVE = "inactive"  # disconnected
    MAPPING = "mapping"  # the provider's account mapping is not saved
    SENDING = "sending"  # sent; the reply is being confirmed (its idempotency key is on the row)
    DEPENDENCY = "dependency"  # what it points at (its customer, its invoice) is not at the provider yet
    BACKOFF = "backoff"  # the provider answered "try later" (a 5xx, a timeout): back-off until a time
    RATE_LIMIT = "rate_limit"  # the provider asked the whole connection to wait (429, Retry-After)
    SCHEDULED = "scheduled"  # due at a later time for another reason (the engine held the connection back)
    AUTO_SYNC_OFF = "auto_sync_off"  # due now, but Auto-Sync is off: it goes with Sync Now
    DUE = "due"  # due now: the next run takes it


@dataclass(frozen=True)
class Waiting:
    """A pending record's reason to wait, as the ledger and its connection have it now."""

    wait: Wait
    until: datetime | None = None
    detail: str = ""  # the provider's last answer (back-off), or nothing
    # Its dependencies not synced yet: (ledger row or None, entity, local id).
    on: tuple[tuple[LedgerRow | None, str, int], ...] = ()


async def why_pending(
    session: AsyncSession,
    connection: Any,
    rows: list[LedgerRow],
    *,
    mapped: bool,
    now: datetime | None = None,
) -> dict[int, Waiting]:
    """Why each pending row of `connection` waits, read from the ledger, the connection and its last run.

    `mapped`: whether the connection's account mapping is complete (the caller knows its provider's).
    """
    now = now or utcnow()
    status = str(connection.status)
    throttled = await _last_run_throttled(session, connection.id)
    wanted = {dep for row in rows if row.error_code == WAITING for dep in waiting_on(row.error_reason)}
    deps = await _ledger_rows(session, connection.id, wanted)
    out: dict[int, Waiting] = {}
    for row in rows:
        due = row.next_attempt_at
        later = due > now
        on = tuple(
            (dep_row, *dep)
            for dep in (waiting_on(row.error_reason) if row.error_code == WAITING else [])
            if (dep_row := deps.get(dep)) is None or dep_row.state != LedgerState.SYNCED
        )
        if status == "needs_reauth":
            out[row.id] = Waiting(Wait.RECONNECT)
        elif status != "connected":
            out[row.id] = Waiting(Wait.INACTIVE)
        elif not mapped:
            out[row.id] = Waiting(Wait.MAPPING)
        elif row.idempotency_key and row.sent_at:
            out[row.id] = Waiting(Wait.SENDING, row.sent_at)
        elif on:
            out[row.id] = Waiting(Wait.DEPENDENCY, due if later else None, on=on)
        elif later and row.error_code == "retry_later":
            out[row.id] = Waiting(Wait.BACKOFF, due, row.error_reason)
        elif later and throttled:
            out[row.id] = Waiting(Wait.RATE_LIMIT, due)
        elif later:
            out[row.id] = Waiting(Wait.SCHEDULED, due)
        else:
            out[row.id] = Waiting(Wait.DUE if connection.auto_sync else Wait.AUTO_SYNC_OFF)
    return out


async def _last_run_throttled(session: AsyncSession, connection_id: int) -> bool:
    """Whether the newest finished export run stopped because the provider asked it to wait."""
    errors = await session.scalar(
        select(SyncRun.errors)
        .where(SyncRun.connection_id == connection_id, SyncRun.status.in_(FINISHED), SyncRun.direction == "export")
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(1)
    )
    return any(isinstance(e, dict) and e.get("code") == "throttled" for e in errors or [])


async def _ledger_rows(
    session: AsyncSession, connection_id: int, keys: set[tuple[str, int]]
) -> dict[tuple[str, int], LedgerRow]:
    by_entity: dict[str, set[int]] = defaultdict(set)
    for entity, local_id in keys:
        by_entity[entity].add(local_id)
    found: dict[tuple[str, int], LedgerRow] = {}
    for entity, ids in by_entity.items():
        rows = await session.scalars(
            select(LedgerRow).where(
                LedgerRow.connection_id == connection_id, LedgerRow.entity == entity, LedgerRow.local_id.in_(ids)
            )
        )
        found.update({(r.entity, r.local_id): r for r in rows})
    return found


async def records_in_state(
    session: AsyncSession, tenant_id: int, connection_id: int, state: str, limit: int = 200
) -> list[LedgerRow]:
    rows = await session.scalars(
        select(LedgerRow)
        .where(LedgerRow.tenant_id == tenant_id, LedgerRow.connection_id == connection_id, LedgerRow.state == state)
        .order_by(LedgerRow.next_attempt_at, LedgerRow.id)
        .limit(limit)
    )
    return list(rows)


async def record_events(session: AsyncSession, ledger_id: int, limit: int = 200) -> list[RecordEvent]:
    rows = await session.scalars(
        select(RecordEvent)
        .where(RecordEvent.ledger_id == ledger_id)
        .order_by(RecordEvent.created_at.desc(), RecordEvent.id.desc())
        .limit(limit)
    )
    return list(rows)


async def record_labels(session: AsyncSession, tenant_id: int, rows: list[LedgerRow]) -> dict[int, str]:
    """A name a business owner recognises for each ledger row: customer name, invoice number, item name..."""
    by_entity: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        by_entity[row.entity].add(row.local_id)
    names: dict[tuple[str, int], str] = {}

    async def load(entity: str, model: Any, label: Any) -> None:
        ids = by_entity.get(entity)
        if not ids:
            return
        found = await session.scalars(select(model).where(model.tenant_id == tenant_id, model.id.in_(ids)))
        for record in found:
            names[(entity, record.id)] = label(record)

    await load("customer", Customer, lambda r: r.display_name)
    await load("item", Item, lambda r: r.name)
    await load("invoice", Invoice, lambda r: f"Invoice {r.number}")
    await load("payment", Payment, lambda r: f"Payment of {format_money(r.amount)} on {r.received_on:%b %-d, %Y}")
    await load("refund", Refund, lambda r: f"Refund of {format_money(r.amount)} on {r.refunded_on:%b %-d, %Y}")
    await load(
        "deposit",
        Deposit,
        lambda r: f"{r.source.capitalize()} payout of {format_money(r.net)} on {r.arrival_date:%b %-d, %Y}",
    )

    def fallback(row: LedgerRow) -> str:
        return f"{row.entity.replace('_', ' ').capitalize()} #{row.local_id}"

    return {row.id: names.get((row.entity, row.local_id)) or fallback(row) for row in rows}


async def synced_count(session: AsyncSession, connection_id: int, entities: tuple[str, ...] | None = None) -> int:
    """Records already synced (remapping accounts leaves these on the old ones)."""
    query = select(func.count()).where(LedgerRow.connection_id == connection_id, LedgerRow.state == LedgerState.SYNCED)
    if entities:
        query = query.where(LedgerRow.entity.in_(entities))
    return await session.scalar(query) or 0
