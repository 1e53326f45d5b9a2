"""The export run: push one connection's due ledger rows to its provider, in dependency order, never twice.

Every step that matters is committed before the next one starts:

1. A create's idempotency key (and `sent_at`) is committed to its ledger row BEFORE the request goes
   out. If the process dies after the provider committed but before we heard back, the next run
   finds the key still on the row and sends the same key again (QBO `requestid`, `Idempotency-Key`):
   the provider answers with the original object. Providers without replay get `find_existing`.
2. The reply is committed in one transaction: remote id and version, synced version, state, cleared
   key, and a RecordEvent with what was sent and received.

A row whose record changed again while it was being pushed (local_version > synced_version) stays
pending and goes out again. Rows are read in id order per entity and the cursor only moves forward,
so one run never loops on a record that keeps failing. Counting: a create is `created`, an update
`updated`, a void or delete `deleted` (it takes the amount out of the books), a rejection `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Select, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload, selectinload

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.jobs.models import Job
from fieldhub.core.payments.models import Deposit, Payment, Refund
from fieldhub.db import utcnow
from fieldhub.hub import metrics, processes, registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth, NotEntitled, ProviderError, Rejected, RetryLater
from fieldhub.hub.notify import notify
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import Capability
from fieldhub.hub.sync.adapter import Adapter, PushItem, PushResult, create_adapter
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.ledger import exports as ledger_exports
from fieldhub.hub.sync.ledger import idempotency_key
from fieldhub.hub.sync.models import (
    LedgerRow,
    LedgerState,
    Operation,
    RecordEvent,
    RunStatus,
    SyncLease,
    SyncRun,
    history_body,
)
from fieldhub.hub.sync.runs import RunCounts, kind_of
from fieldhub.hub.sync.status import WAITING, record_labels, waiting_reason
from fieldhub.hub.webhooks.models import RemoteLink
from fieldhub.log import get_logger

log = get_logger("fieldhub.sync")

# Customers and items before invoices, invoices before payments, payments before refunds; deposits last (a
# payout's deposit links the payments and refunds it carries). Jobs go to calendars and depend on nothing.
ORDER = ("customer", "item", "invoice", "payment", "refund", "deposit", "job")
MODELS: dict[str, Any] = {
    "customer": Customer,
    "item": Item,
    "invoice": Invoice,
    "payment": Payment,
    "refund": Refund,
    "deposit": Deposit,
    "job": Job,
}
CHUNK = 100
# Batches left on their way while the engine settles a reply and prepares the next chunk. Two keep the
# provider busy while the engine works (a QBO batch of 30 takes about as long there as its outcomes take
# here); four and eight measured no faster (docs/performance.md, backfill), and would put more requests
# at stake when a reply says "wait" (they were sent already).
BATCHES_IN_FLIGHT = 2
BACKOFF_BASE = 2.0
BACKOFF_CAP = 3600.0
WAIT_FOR_DEPENDENCY = timedelta(seconds=30)
# A connection nothing of which can sync until a person fixes it (its accounts not mapped) waits this long
# before a sweep tries it again; saving the fix makes its rows due at once (dispatch.request_sync).
WAIT_FOR_FIX = timedelta(minutes=15)
LEASE_SECONDS = 60.0
ACTIONS = {Operation.VOID: "voided", Operation.DELETE: "deleted"}
ALERT_LINES = 5  # records named in a failed-sync alert; the link lists them all


# The engine's hot statements, built once (building a statement per call costs more CPU than running it):
# a chunk's due rows, the remote ids its records point at and what preparing it writes; the rows of one
# reply, locked, and their new state. Writes are one executemany per kind of change. Core, not ORM
# objects: the session holds no ledger row between chunks (Engine._pass), so nothing it holds goes stale.
_LEDGER = cast(Table, LedgerRow.__table__)
_SETTLED_COLUMNS = (
    "remote_id",
    "remote_version",
    "remote_updated_at",
    "synced_version",
    "state",
    "attempts",
    "next_attempt_at",
    "idempotency_key",
    "sent_at",
    "error_code",
    "error_reason",
    "error_fix",
    "synced_at",
)
_DUE_ROWS = (
    select(
        *(
            _LEDGER.c[name]
            for name in (
                "id",
                "tenant_id",
                "connection_id",
                "local_id",
                "local_version",
                "remote_id",
                "remote_version",
                "operation",
                "attempts",
                "idempotency_key",
                "sent_at",
                "next_attempt_at",
                "created_at",
            )
        )
    )
    .where(
        _LEDGER.c.connection_id == bindparam("v_connection"),
        _LEDGER.c.entity == bindparam("v_entity"),
        _LEDGER.c.state == LedgerState.PENDING,
        _LEDGER.c.next_attempt_at <= bindparam("v_now"),
        _LEDGER.c.id > bindparam("v_after"),
    )
    .order_by(_LEDGER.c.id)
    .limit(bindparam("v_limit"))
)
_LOCK_ROWS = (
    select(_LEDGER.c.id, _LEDGER.c.local_version, *(_LEDGER.c[name] for name in _SETTLED_COLUMNS))
    .where(_LEDGER.c.id.in_(bindparam("v_ids", expanding=True)))
    .with_for_update()
)
_UPDATES: dict[tuple[str, ...], Any] = {}


def _update_rows(columns: tuple[str, ...]) -> Any:
    """UPDATE of these ledger columns by id, for an executemany of {"v_id": …, "v_<column>": …}; built once."""
    if columns not in _UPDATES:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        _UPDATES[columns] = update(_LEDGER).where(_LEDGER.c.id == bindparam("v_id")).values(values)
    return _UPDATES[columns]


_WRITE_ROWS = _update_rows(_SETTLED_COLUMNS)
# What preparing a chunk writes: a vanished record's row, a row waiting for its dependencies, a create's key.
_SKIPPED = ("state", "error_reason")
_WAITING = ("error_code", "error_reason", "error_fix", "next_attempt_at")
_KEYED = ("idempotency_key", "sent_at")
_REMOTE_IDS = select(_LEDGER.c.local_id, _LEDGER.c.remote_id).where(
    _LEDGER.c.connection_id == bindparam("v_connection"),
    _LEDGER.c.entity == bindparam("v_entity"),
    _LEDGER.c.local_id.in_(bindparam("v_ids", expanding=True)),
)
_ADD_EVENTS = insert(cast(Table, RecordEvent.__table__))
# Objects a write changed as a side effect (a payment's invoice): their rows learn when, never moving back.
_TOUCHED = (
    update(_LEDGER)
    .where(
        _LEDGER.c.connection_id == bindparam("v_connection"),
        _LEDGER.c.entity == bindparam("v_entity"),
        _LEDGER.c.remote_id == bindparam("v_remote_id"),
        (_LEDGER.c.remote_updated_at.is_(None)) | (_LEDGER.c.remote_updated_at < bindparam("v_at")),
    )
    .values(remote_updated_at=bindparam("v_at"))
)


class LeaseHeld(Exception):
    """Another worker is syncing this connection right now."""


class Throttled(Exception):
    """The provider said when to come back (Retry-After) and the client could not wait it out inline."""


@dataclass
class Progress:
    total: int = 0
    done: int = 0


@dataclass
class _Tally:
    counts: RunCounts = field(default_factory=RunCounts)  # per entity: each entity card shows its own
    errors: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)  # ledger ids of the records refused in this run

    @property
    def succeeded(self) -> int:
        return self.counts.changed


def dependencies(entity: str, record: Any, related: dict[str, Any] | None = None) -> list[tuple[str, int]]:
    """The records that must exist at the provider before this one can point at them."""
    if entity == "invoice":
        items = sorted({line.item_id for line in record.lines if line.item_id is not None})
        return [("customer", record.customer_id)] + [("item", i) for i in items]
    if entity == "payment":
        return [("customer", record.customer_id), ("invoice", record.invoice_id)]
    if entity == "refund":
        invoice = (related or {}).get("invoice")
        customer = [("customer", invoice.customer_id)] if invoice is not None else []
        return customer + [("invoice", record.invoice_id), ("payment", record.payment_id)]
    if entity == "deposit":
        payments = sorted({ln.payment_id for ln in record.lines if ln.payment_id is not None})
        refunds = sorted({ln.refund_id for ln in record.lines if ln.refund_id is not None})
        return [("payment", p) for p in payments] + [("refund", r) for r in refunds]
    return []


async def related(session: AsyncSession, entity: str, records: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """What an adapter needs besides each record to describe it, by record id: one query per kind per chunk.

    A payment or refund carries its invoice (a refund also its payment) and the payments provider's
    link when one reported it (its payout carries it to the bank); an invoice its tax rate.
    """
    if entity == "invoice":
        rate_ids = {r.tax_rate_id for r in records if r.tax_rate_id is not None}
        rates = await _by_id(session, TaxRate, rate_ids)
        return {r.id: {"tax_rate": rates.get(r.tax_rate_id)} if r.tax_rate_id is not None else {} for r in records}
    if entity == "job":  # a calendar writes its times in the business's zone
        chosen = select(Tenant.id, Tenant.timezone).where(Tenant.id.in_({r.tenant_id for r in records}))
        zones = {tenant_id: zone for tenant_id, zone in (await session.execute(chosen)).all()}
        return {r.id: {"time_zone": zones.get(r.tenant_id, "UTC")} for r in records}
    if entity not in ("payment", "refund"):
        return {r.id: {} for r in records}
    invoices = await _by_id(session, Invoice, {r.invoice_id for r in records})
    payments = await _by_id(session, Payment, {r.payment_id for r in records}) if entity == "refund" else {}
    processors = [spec.key for spec in registry.all() if spec.category == Capability.PAYMENTS]
    links: dict[tuple[int, int], RemoteLink] = {}
    for link in await session.scalars(
        select(RemoteLink).where(
            RemoteLink.tenant_id.in_({r.tenant_id for r in records}),
            RemoteLink.local_entity == entity,
            RemoteLink.local_id.in_([r.id for r in records]),
            RemoteLink.provider.in_(processors),
        )
    ):
        links.setdefault((link.tenant_id, link.local_id), link)
    found: dict[int, dict[str, Any]] = {}
    for r in records:
        context = {"invoice": invoices.get(r.invoice_id), "processor": links.get((r.tenant_id, r.id))}
        if entity == "refund":
            context["payment"] = payments.get(r.payment_id)
        found[r.id] = context
    return found


async def _by_id(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {obj.id: obj for obj in await session.scalars(select(model).where(model.id.in_(ids)))}


async def due_counts(session: AsyncSession, connection_id: int, entities: Sequence[str]) -> dict[str, int]:
    """How many rows of each entity are due on one connection: the one query a run starts with.

    Served by ix_sync_ledger_due (connection, state, entity, id): only pending rows are read, however
    many synced rows the ledger holds. bench/pending.py times it.
    """
    result = await session.execute(due_counts_query(connection_id, entities))
    return {str(entity): int(count) for entity, count in result.all()}


def due_counts_query(connection_id: int, entities: Sequence[str]) -> Select[str, int]:
    return (
        select(LedgerRow.entity, func.count())
        .where(
            LedgerRow.connection_id == connection_id,
            LedgerRow.state == LedgerState.PENDING,
            LedgerRow.entity.in_(entities),
            LedgerRow.next_attempt_at <= utcnow(),
        )
        .group_by(LedgerRow.entity)
    )


async def due_rows(
    session: AsyncSession, connection_id: int, entity: str, *, after_id: int = 0, limit: int = CHUNK
) -> list[Row[Any]]:
    """The engine's hot query: one connection's due rows of one entity, in id order, as plain rows.

    Served by ix_sync_ledger_due (connection, state, entity, id): synced rows, the vast majority, are
    never read.
    """
    params = {"v_connection": connection_id, "v_entity": entity, "v_now": utcnow(), "v_after": after_id}
    return list(await session.execute(_DUE_ROWS, {**params, "v_limit": limit}))


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter over an exponential ceiling (capped at an hour), never sooner than the provider asked."""
    jitter = rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempts - 1, 0)))
    return max(jitter, retry_after or 0.0)


# ----------------------------------------------------------------------------- leases


async def acquire_lease(session: AsyncSession, connection_id: int, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Take (or renew) the connection's lease; False when another live holder has it."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    try:
        await session.execute(insert(SyncLease).values(connection_id=connection_id, holder=holder, expires_at=until))
        await session.commit()
        return True
    except IntegrityError:
        await session.rollback()
    free = (SyncLease.expires_at < now) | (SyncLease.holder == holder)
    current = await session.scalar(select(SyncLease.holder).where(SyncLease.connection_id == connection_id))
    if current is not None and current != holder and processes.gone(current):
        # Compare-and-set on the dead holder's name: of two restarted workers, only one takes it.
        free = free | (SyncLease.holder == current)
        log.warning("sync.lease.holder_gone", connection_id=connection_id, holder=current)
    taken = await session.execute(
        update(SyncLease).where(SyncLease.connection_id == connection_id, free).values(holder=holder, expires_at=until)
    )
    await session.commit()
    return bool(taken.rowcount)  # type: ignore[attr-defined]


async def renew_lease(session: AsyncSession, connection_id: int, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Move the holder's lease forward; False when it is no longer this holder's (it lapsed and was taken)."""
    renewed = await session.execute(
        update(SyncLease)
        .where(SyncLease.connection_id == connection_id, SyncLease.holder == holder)
        .values(expires_at=utcnow() + timedelta(seconds=seconds))
    )
    await session.commit()
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


class LeaseKeeper:
    """Keeps a lease its holder took alive for as long as the holder works: renewed every third of its life by
    a task of its own, on a session of its own.

    A holder that renews only between steps of its work loses the lease whenever one step outlasts it: an
    export run's chunk waiting on the provider's rate budget (a minute's worth of batches is 40, and echoes of
    our own writes read from the same budget) went past the 60 s lease, the process's own webhook handler,
    which asks for the lease every 100 ms, took it, and the run ended `lease_lost` with a single worker. The
    keeper renews while the holder waits, so a live process never loses its lease; a dead one stops renewing,
    and its lease lapses (or is taken at once from a holder found gone, see acquire_lease). `check()` raises
    LeaseHeld at the holder's next step if a renewal found the lease taken after all (the database was
    unreachable for longer than the lease).
    """

    def __init__(self, sessionmaker: Any, connection_id: int, holder: str, seconds: float = LEASE_SECONDS) -> None:
        self.sessionmaker = sessionmaker
        self.connection_id = connection_id
        self.holder = holder
        self.seconds = seconds
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._keep(), name=f"lease:{self.connection_id}:{self.holder}")
        return self

    def check(self) -> None:
        if self.lost:
            raise LeaseHeld("the lease was taken during the run (not renewed in time); another worker took over")

    async def _keep(self) -> None:
        every = self.seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                async with self.sessionmaker() as session:
                    if not await renew_lease(session, self.connection_id, self.holder, self.seconds):
                        self.lost = True
                        log.warning("sync.lease.lost", connection_id=self.connection_id, holder=self.holder)
                        return
            except Exception:  # noqa: BLE001 - the database may be restarting: try again next round
                log.warning("sync.lease.renew_failed", connection_id=self.connection_id, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None


async def release_lease(session: AsyncSession, connection_id: int, holder: str) -> None:
    await session.execute(delete(SyncLease).where(SyncLease.connection_id == connection_id, SyncLease.holder == holder))
    await session.commit()


INTERRUPTED = {
    "code": "interrupted",
    "reason": "The worker running this sync stopped before it finished (a crash or a restart).",
    "fix": "Nothing to do: what it had not confirmed stayed pending, and the next run took it up.",
}


async def close_interrupted_runs(session: AsyncSession, connection_id: int) -> int:
    """Mark failed the connection's runs still "running" (the caller holds its lease and commits).

    Every run, export or import, is made under the connection's lease, so one found running by a new
    lease holder can only be a run whose process died (kill -9, OOM) or lost the lease: without this it
    would show as running in the history forever. Its records lose nothing: the ledger kept them.
    """
    result = await session.execute(
        update(SyncRun)
        .where(SyncRun.connection_id == connection_id, SyncRun.status == RunStatus.RUNNING)
        .values(status=RunStatus.FAILED, finished_at=utcnow(), errors=[INTERRUPTED])
        .execution_options(synchronize_session=False)
    )
    closed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if closed:
        log.warning("sync.run.interrupted", connection_id=connection_id, runs=closed)
    return closed


# ----------------------------------------------------------------------------- work no provider can take


def unsendable_reason(provider: str, entity: str) -> str:
    spec = registry.get(provider)
    return f"{spec.name} does not take {entity.replace('_', ' ')} records from fieldhub, so this one is not sent there."


async def skip_unsendable(session: AsyncSession, connection: Connection) -> int:
    """Pending rows of entities the provider doesn't take (its toml no longer exports them, or it ships no
    adapter) are skipped with the reason, not retried: such work can never succeed, and a run per sweep
    would fail on it forever. Rows of this kind are no longer collected (ledger.exports); these are left
    from before. Returns how many were skipped."""
    sendable = [e for e in ORDER if ledger_exports(connection.provider, e)]
    if registry.import_module(connection.provider, "sync") is None:
        sendable = []
    pending = (
        (LedgerRow.connection_id == connection.id)
        & (LedgerRow.state == LedgerState.PENDING)
        & LedgerRow.entity.not_in(sendable)
    )
    entities = list(await session.scalars(select(LedgerRow.entity).where(pending).distinct()))
    skipped = 0
    for entity in entities:
        result = await session.execute(
            update(LedgerRow)
            .where(pending, LedgerRow.entity == entity)
            .values(
                state=LedgerState.SKIPPED,
                error_code="not_exported",
                error_reason=unsendable_reason(connection.provider, entity),
                error_fix="",
            )
        )
        skipped += int(result.rowcount or 0)  # type: ignore[attr-defined]
    if skipped:
        log.info("sync.rows.unsendable", connection_id=connection.id, skipped=skipped)
    return skipped


# ----------------------------------------------------------------------------- the run


@dataclass
class Engine:
    env: OAuthEnv
    connection_id: int
    trigger: str
    entity: str | None
    holder: str
    progress: Callable[[Progress], Any] | None = None
    client_options: dict[str, Any] = field(default_factory=dict)
    lease_seconds: float = LEASE_SECONDS
    rng: random.Random = field(default_factory=random.Random)
    # Batches on their way while a reply is settled; 0, one step at a time (bench/phases times each step).
    in_flight: int = BATCHES_IN_FLIGHT

    def __post_init__(self) -> None:
        self.sessionmaker = self.env.sessionmaker
        self.tally = _Tally()
        self.state = Progress()
        self.provider = ""
        self._latency: Any = None  # the provider's commit-to-provider histogram series, once run() knows it
        self.requeued = False
        self.run_id = 0
        self.keeper: LeaseKeeper | None = None  # renews the lease while the run works (see LeaseKeeper)
        self._settles_current: set[int] = set()  # ledger ids of unconfirmed creates keyed for the current version
        # The batches on their way to the provider, oldest first, with their items (see _send_batch).
        self._inflight: deque[
            tuple[asyncio.Task[list[PushResult | ProviderError]], list[tuple[PushItem, datetime]]]
        ] = deque()

    async def run(self) -> SyncRun | None:
        """The run's history row; None when nothing was tried (nothing due, the connection paused, or all that
        was due is work the provider can't take): no history row is written for work that was never tried."""
        started = time.monotonic()
        async with self.sessionmaker() as session:
            if not await acquire_lease(session, self.connection_id, self.holder, self.lease_seconds):
                raise LeaseHeld(f"connection {self.connection_id} is being synced by another worker")
            self.keeper = LeaseKeeper(self.sessionmaker, self.connection_id, self.holder, self.lease_seconds).start()
            try:
                connection = await session.get(Connection, self.connection_id)
                assert connection is not None, f"no connection {self.connection_id}"
                self.provider = connection.provider
                # The provider's latency series, looked up once: labels() per record cost 1.8 µs (timeit).
                self._latency = metrics.SYNC_LATENCY.labels(self.provider)
                await close_interrupted_runs(session, self.connection_id)
                await skip_unsendable(session, connection)
                due = await self._due(session, connection)
                await session.commit()
                if due is None:
                    return None
                run = SyncRun(
                    tenant_id=connection.tenant_id,
                    connection_id=connection.id,
                    trigger=self.trigger,
                    direction="export",
                    entity=self.entity or "",
                    status=RunStatus.RUNNING,
                )
                session.add(run)
                await session.commit()
                self.run_id = run.id
                fatal = await self._run(session, connection, due)
                fresh = await session.get(SyncRun, self.run_id, populate_existing=True)
                assert fresh is not None
                run = fresh
                t = self.tally
                t.counts.write(session, run)
                run.errors = t.errors[:200]
                if fatal is not None:
                    run.status = RunStatus.FAILED
                elif t.errors:
                    run.status = RunStatus.PARTIAL if t.succeeded else RunStatus.FAILED
                else:
                    run.status = RunStatus.SUCCESS
                run.finished_at = utcnow()
                run.duration_ms = int((time.monotonic() - started) * 1000)
                if t.rejected:
                    await self._alert(session, run)
                await session.commit()
                log.info(
                    "sync.run.finished",
                    connection_id=self.connection_id,
                    status=run.status,
                    created=run.created,
                    updated=run.updated,
                    deleted=run.deleted,
                    failed=run.failed,
                    ms=run.duration_ms,
                )
                return run
            finally:
                await self._release()

    async def _release(self) -> None:
        """Give the lease back, on a fresh session: the run's own may be mid-commit if the run was cancelled.

        A failure here is logged, never raised: it would replace the exception in flight (a cancellation
        swallowed this way leaves a worker that can't be stopped), and the lease expires by itself anyway.
        """
        if self.keeper is not None:
            await self.keeper.stop()
        try:
            async with self.sessionmaker() as session:
                await release_lease(session, self.connection_id, self.holder)
        except Exception:  # noqa: BLE001
            log.warning("sync.lease.release_failed", connection_id=self.connection_id, exc_info=True)

    async def _due(self, session: AsyncSession, connection: Connection) -> dict[str, int] | None:
        """How many rows of each entity this run would send; None when it would send nothing.

        A run is history of work tried, so none is written when nothing is due (skip_unsendable has set aside
        what the provider can't take) or when the connection is paused: its rows wait for Reconnect, and
        nothing can be sent.
        """
        entities = [e for e in ORDER if self.entity in (None, e)]
        counts = await due_counts(session, self.connection_id, entities)
        self.state.total = sum(counts.values())
        self._report()
        if not self.state.total:
            return None
        if connection.status != ConnectionStatus.CONNECTED:
            log.info("sync.run.paused", connection_id=self.connection_id, status=connection.status)
            return None
        return counts

    async def _run(self, session: AsyncSession, connection: Connection, counts: dict[str, int]) -> ProviderError | None:
        entities = [e for e in ORDER if self.entity in (None, e)]
        async with client_for(self.env, connection, **self.client_options) as client:
            adapter = create_adapter(connection, client, self.env.settings)
            assert adapter is not None, "skip_unsendable leaves nothing due for a provider without sync.py"
            try:
                await adapter.prepare()
                # A dependency found missing mid-run gets a row; a second pass sends it and what waited for it.
                # The first pass visits only the entities found due; later passes every one.
                walk = [e for e in entities if counts.get(e)]
                for _ in range(3):
                    self.requeued = False
                    if not await self._pass(session, adapter, walk) and not self.requeued:
                        break
                    walk = entities
            except NeedsReauth as e:
                await session.rollback()
                conn = await session.get(Connection, self.connection_id, populate_existing=True)
                assert conn is not None
                await connections.mark_needs_reauth(
                    session, conn, e.reason or connections.reauth_message(conn.provider)
                )
                await session.commit()
                self.tally.errors.append({"code": "needs_reauth", "reason": e.reason, "fix": "Click Reconnect."})
                return e
            except Rejected as e:  # the whole connection can't sync (e.g. accounts not mapped)
                await session.rollback()
                # Not again every sweep, each run failing the same way into the history, until someone acts.
                await self._defer_pending(session, utcnow() + WAIT_FOR_FIX)
                self.tally.errors.append({"code": e.code, "reason": e.reason, "fix": e.fix})
                return e
            except LeaseHeld as e:
                self.tally.errors.append({"code": "lease_lost", "reason": str(e), "fix": ""})
                return RetryLater(str(e))
            except Throttled as e:  # the rest of the run is due again once the provider's wait is over
                self.tally.errors.append({"code": "throttled", "reason": str(e), "fix": "fieldhub resumes by itself."})
        return None

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.state)

    async def _pass(self, session: AsyncSession, adapter: Adapter, entities: Sequence[str]) -> bool:
        """One walk over due rows in dependency order; True when new dependency rows were added."""
        added = False
        # Whole batches per chunk: 100 rows in batches of 30 would send a fourth request for 10 of them.
        size = max(adapter.batch_size, 1)
        chunk = max(CHUNK // size, 1) * size
        try:
            for entity in entities:
                model = MODELS.get(entity)
                if model is None:
                    continue  # no local records of this kind (deposits come from payouts, not rows here)
                last_id = 0
                while True:
                    rows = await due_rows(session, self.connection_id, entity, after_id=last_id, limit=chunk)
                    if not rows:
                        await session.commit()
                        break
                    last_id = rows[-1].id
                    last_chunk = len(rows) < chunk  # a row that becomes due after this read wakes a run of its own
                    # Prepared while the previous chunk's last batch is still on its way (see _send_batch).
                    items, new_rows = await self._prepare_items(session, entity, model, rows)
                    added = added or new_rows
                    await session.commit()
                    # Settle writes ledger rows with Core statements, so the session keeps no copy to go stale;
                    # the records go to the adapter detached, as loaded.
                    session.expunge_all()
                    # The keeper renews the lease while the run works; it only says here if it was lost.
                    if self.keeper is not None:
                        self.keeper.check()
                    await self._send(session, adapter, items)
                    if last_chunk:
                        break
                # The next entity points at this one's remote ids: every reply is in the ledger before it starts.
                await self._drain(session)
        finally:
            await self._abandon()
        return added

    async def _prepare_items(
        self, session: AsyncSession, entity: str, model: Any, rows: list[Row[Any]]
    ) -> tuple[list[tuple[PushItem, datetime]], bool]:
        """Load records, resolve dependencies and write idempotency keys (the caller commits them before
        anything is sent); what can go now, in order."""
        # An invoice goes with its lines; its customer (joined by default) is not read: adapters refer to it by
        # customer_id through the ledger's remote ids (refs). raiseload: an adapter that reached for it would fail
        # loudly in the tests, not load one row at a time.
        options = [selectinload(Invoice.lines), raiseload(Invoice.customer)] if model is Invoice else []
        records: dict[int, Any] = {
            r.id: r
            for r in await session.scalars(
                select(model).where(model.id.in_([row.local_id for row in rows])).options(*options)
            )
        }
        now = utcnow()
        ready: list[tuple[PushItem, datetime]] = []
        new_rows = False
        # What the chunk points at is read in one query per kind (the records a payment or refund
        # describes, then the remote ids of every dependency), and what the loop below decides is
        # written with one executemany per kind of change at its end.
        mine = [r for r in rows if (rec := records.get(r.local_id)) is not None and rec.tenant_id == r.tenant_id]
        described = await related(session, entity, [records[r.local_id] for r in mine])
        contexts = {row.id: described[row.local_id] for row in mine}
        wanted = {
            dep
            for row in rows
            if row.id in contexts
            for dep in dependencies(entity, records[row.local_id], contexts[row.id])
        }
        known = await self._remote_ids(session, wanted)
        writes: dict[tuple[str, ...], list[dict[str, Any]]] = {_SKIPPED: [], _WAITING: [], _KEYED: []}
        for row in rows:
            record = records.get(row.local_id)
            if row.id not in contexts:
                gone = "The record no longer exists in fieldhub."
                writes[_SKIPPED].append({"v_id": row.id, "v_state": LedgerState.SKIPPED, "v_error_reason": gone})
                self._tick()
                continue
            refs: dict[tuple[str, int], str] = {}
            waiting: list[tuple[str, int]] = []
            context = contexts[row.id]
            for dep in dependencies(entity, record, context):
                remote_id = known.get(dep)
                if remote_id:
                    refs[dep] = remote_id
                    continue
                if dep not in known:  # no ledger row yet: one, pending, and this record waits for it
                    new_rows = True
                    dep_record = await session.get(MODELS[dep[0]], dep[1])
                    session.add(
                        LedgerRow(
                            tenant_id=row.tenant_id,
                            connection_id=self.connection_id,
                            entity=dep[0],
                            local_id=dep[1],
                            local_version=getattr(dep_record, "version", 1) or 1,
                            state=LedgerState.PENDING,
                            operation=Operation.UPSERT,
                            next_attempt_at=now,
                        )
                    )
                    known[dep] = None
                    self.state.total += 1
                waiting.append(dep)
            if waiting:
                writes[_WAITING].append(
                    {
                        "v_id": row.id,
                        "v_error_code": WAITING,
                        "v_error_reason": waiting_reason(waiting),
                        "v_error_fix": "",
                        "v_next_attempt_at": now if new_rows else now + WAIT_FOR_DEPENDENCY,
                    }
                )
                self._tick()
                continue
            key, sent_at = row.idempotency_key, row.sent_at
            settling = bool(key)
            is_create = row.operation == Operation.UPSERT and not row.remote_id
            # The row's own creation time is part of a create's key: a record deleted here and its id reused
            # (SQLite does) is a new record, and must not get the key QuickBooks remembers for the old one.
            op = f"create-{row.attempts}-{row.id}-{row.created_at.timestamp():.6f}"
            if is_create and not settling:
                # Committed before anything is sent: the one thing a crash must not lose.
                key = idempotency_key(row.connection_id, entity, row.local_id, row.local_version, op)
                sent_at = now
                writes[_KEYED].append({"v_id": row.id, "v_idempotency_key": key, "v_sent_at": now})
            elif is_create and key == idempotency_key(row.connection_id, entity, row.local_id, row.local_version, op):
                # The key was made for the record's version as it is now, so what the provider made from it (or
                # replays) is this version: once settled, nothing is left to send. (An update after every settled
                # create re-sent each record a crash cut, and, the provider having moved the object on since, as
                # QuickBooks does an invoice a payment touches, met a stale version: three more requests each.)
                self._settles_current.add(row.id)
            item = PushItem(
                ledger_id=row.id,
                entity=entity,
                local_id=row.local_id,
                operation=Operation(row.operation),
                record=record,
                local_version=row.local_version,
                remote_id=row.remote_id,
                remote_version=row.remote_version,
                idempotency_key=key if is_create else None,
                settling=settling and is_create,
                sent_at=sent_at,
                refs=refs,
                related=context,
            )
            ready.append((item, row.next_attempt_at))
        for columns, params in writes.items():
            if params:  # one executemany per kind of change
                await session.execute(_update_rows(columns), params)
        return ready, new_rows

    async def _remote_ids(
        self, session: AsyncSession, wanted: set[tuple[str, int]]
    ) -> dict[tuple[str, int], str | None]:
        """The remote id (None while not synced) of each of these (entity, local id) pairs that has a ledger
        row on this connection: one query per entity, for two columns (not rows as objects)."""
        found: dict[tuple[str, int], str | None] = {}
        by_entity: dict[str, list[int]] = {}
        for dep_entity, local_id in wanted:
            by_entity.setdefault(dep_entity, []).append(local_id)
        for dep_entity, ids in by_entity.items():
            params = {"v_connection": self.connection_id, "v_entity": dep_entity, "v_ids": ids}
            for local_id, remote_id in await session.execute(_REMOTE_IDS, params):
                found[(dep_entity, local_id)] = remote_id
        return found

    def _tick(self) -> None:
        self.state.done += 1
        self._report()

    async def _send(self, session: AsyncSession, adapter: Adapter, items: list[tuple[PushItem, datetime]]) -> None:
        """Send one chunk's items: in batches where the adapter has them, else one by one.

        The chunk's last batches may still be on their way when this returns (unless `in_flight` is 0): the
        caller prepares the next chunk meanwhile, and the next _send_batch or _drain settles them.
        """
        batchable = [(i, due) for i, due in items if not i.settling]
        single = [(i, due) for i, due in items if i.settling]
        if adapter.batch_size > 1 and len(batchable) > 1:
            size = adapter.batch_size
            for start in range(0, len(batchable), size):
                await self._send_batch(session, adapter, batchable[start : start + size])
        else:
            single = items
        if single:
            await self._drain(session)  # the adapter never runs two requests at once
        for item, due in single:
            outcome: PushResult | ProviderError
            try:
                found = await adapter.find_existing(item) if item.settling else None
                outcome = found if found is not None else await adapter.push(item)
            except (RetryLater, Rejected, NotEntitled) as e:
                outcome = e
            except NeedsReauth:
                raise
            except Exception as e:  # noqa: BLE001 — one record's surprise must not stop the run
                log.exception("sync.push.crashed", connection_id=self.connection_id, ledger_id=item.ledger_id)
                outcome = RetryLater(f"Unexpected error while sending: {type(e).__name__}")
            await self._settle_batch(session, [(item, due)], [outcome])

    async def _send_batch(
        self, session: AsyncSession, adapter: Adapter, batch: list[tuple[PushItem, datetime]]
    ) -> None:
        """Put one batch on its way. With `in_flight` batches travelling already, the oldest is awaited first,
        this one goes, and the oldest's outcomes are written while the others travel: the provider's time on
        them overlaps ours on the ledger (and on preparing the next chunk). This one goes before that write only
        after a reply that asked for no wait: a Retry-After or lost access holds everything back. Each request
        takes its own slot from the shared limiter, within the provider's concurrency and rates.
        """
        if len(self._inflight) >= max(self.in_flight, 1):
            task, previous = self._inflight.popleft()
            outcomes = await task
            go = self.in_flight > 0 and not any(_holds_back(o) for o in outcomes)
            if go:
                self._launch(adapter, batch)
            # One commit for the whole reply: every outcome in it is known, so nothing is lost between them.
            await self._settle_batch(session, previous, outcomes)
            if go:
                return
        self._launch(adapter, batch)
        if not self.in_flight:
            await self._drain(session)

    def _launch(self, adapter: Adapter, batch: list[tuple[PushItem, datetime]]) -> None:
        self._inflight.append((asyncio.create_task(self._push_batch(adapter, batch)), batch))

    async def _drain(self, session: AsyncSession) -> None:
        """Await the batches in flight, oldest first, and write their outcomes."""
        while self._inflight:
            task, batch = self._inflight.popleft()
            await self._settle_batch(session, batch, await task)

    async def _settle_batch(
        self, session: AsyncSession, batch: list[tuple[PushItem, datetime]], outcomes: list[PushResult | ProviderError]
    ) -> None:
        """Write the outcomes of one request (a batch, or a single record) in one commit, then obey its wait."""
        await self._settle_many(
            session, [(item, due, result) for (item, due), result in zip(batch, outcomes, strict=True)]
        )
        await self._obey_retry_after(session, outcomes)

    async def _abandon(self) -> None:
        """The run stops with batches in flight: cancel them. Their keys are in the ledger, so a reply the
        ledger never hears of is settled by the next run (the provider replays the key, or find_existing)."""
        tasks = [task for task, _ in self._inflight]
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    @staticmethod
    async def _push_batch(adapter: Adapter, chunk: list[tuple[PushItem, datetime]]) -> list[PushResult | ProviderError]:
        try:
            return await adapter.push_batch([i for i, _ in chunk])
        except (RetryLater, Rejected, NotEntitled) as e:
            return [e] * len(chunk)

    async def _obey_retry_after(self, session: AsyncSession, outcomes: Sequence[PushResult | ProviderError]) -> None:
        """A Retry-After the client gave up waiting for holds for the whole connection, not just this record.

        The provider throttles the account (a QBO realm), so sending the next record at once would break
        its wait. Every pending row of the connection becomes due no sooner than the wait's end (in the
        ledger, so any worker obeys it), and the run stops here.
        """
        wait = max((o.retry_after or 0.0 for o in outcomes if isinstance(o, RetryLater)), default=0.0)
        if wait <= 0:
            return
        await self._defer_pending(session, utcnow() + timedelta(seconds=wait))
        raise Throttled(f"{self.provider} asked fieldhub to wait {wait:g} s; the rest follows after that")

    async def _defer_pending(self, session: AsyncSession, until: datetime) -> None:
        """Every pending row of the connection due no sooner than `until` (in the ledger: any worker obeys)."""
        await session.execute(
            update(LedgerRow)
            .where(
                LedgerRow.connection_id == self.connection_id,
                LedgerRow.state == LedgerState.PENDING,
                LedgerRow.next_attempt_at < until,
            )
            .values(next_attempt_at=until)
        )
        await session.commit()

    async def _settle_many(
        self, session: AsyncSession, results: list[tuple[PushItem, datetime, PushResult | ProviderError]]
    ) -> None:
        """Write several records' outcomes (one batch reply), each with its history event, in one commit.

        A NeedsReauth outcome stops there: the outcomes before it are committed, then it is raised.
        """
        reauth = next((n for n, (_, _, outcome) in enumerate(results) if isinstance(outcome, NeedsReauth)), None)
        settled = results if reauth is None else results[:reauth]
        if settled:
            ids = [item.ledger_id for item, _, _ in settled]
            rows = {row.id: row._asdict() for row in await session.execute(_LOCK_ROWS, {"v_ids": ids})}
            now = utcnow()
            events: list[dict[str, Any]] = []
            for item, due, outcome in settled:
                self._apply(rows[item.ledger_id], item, due, outcome, now, events)
            written = [{"v_id": row["id"], **{f"v_{k}": row[k] for k in _SETTLED_COLUMNS}} for row in rows.values()]
            await session.execute(_WRITE_ROWS, written)
            touched = [
                {"v_connection": self.connection_id, "v_entity": entity, "v_remote_id": remote_id, "v_at": at}
                for _, _, outcome in settled
                if isinstance(outcome, PushResult) and (at := outcome.remote_updated_at) is not None
                for entity, remote_id in outcome.touched
            ]
            if touched:  # one executemany
                await session.execute(_TOUCHED, touched)
            if events:  # one executemany
                await session.execute(_ADD_EVENTS, events)
            await session.commit()
            for _ in settled:
                self._tick()
        if reauth is not None:
            error = results[reauth][2]
            assert isinstance(error, NeedsReauth)
            raise error

    def _apply(
        self,
        row: dict[str, Any],
        item: PushItem,
        due: datetime,
        outcome: PushResult | ProviderError,
        now: datetime,
        events: list[dict[str, Any]],
    ) -> None:
        """One record's outcome on its ledger row's columns (its history event appended to `events`)."""
        if isinstance(outcome, PushResult):
            row["remote_id"] = outcome.remote_id
            row["remote_version"] = outcome.remote_version
            if outcome.remote_updated_at is not None:
                known = row["remote_updated_at"]
                row["remote_updated_at"] = max(known, outcome.remote_updated_at) if known else outcome.remote_updated_at
            # A settled create may have been the provider replaying an older version's body: an update follows,
            # unless its key says it was made for this version (_prepare_items). Never backwards: a change applied
            # from the provider meanwhile may have moved it further.
            older = item.settling and item.ledger_id not in self._settles_current
            row["synced_version"] = row["synced_version"] if older else max(row["synced_version"], item.local_version)
            row["idempotency_key"] = None
            row["sent_at"] = None
            row["attempts"] = 0
            row["error_code"] = row["error_reason"] = row["error_fix"] = ""
            row["synced_at"] = now
            if row["local_version"] > row["synced_version"]:
                self.requeued = True
                row["state"] = LedgerState.PENDING
                row["next_attempt_at"] = now
            else:
                row["state"] = LedgerState.SYNCED
            if item.operation in (Operation.VOID, Operation.DELETE) and row["state"] == LedgerState.PENDING:
                row["state"] = LedgerState.SYNCED  # nothing more to send for a voided or deleted record
            events.append(
                {
                    "ledger_id": row["id"],
                    "run_id": self.run_id,
                    "action": outcome.action,
                    "summary": f"{outcome.action} {item.entity} #{item.local_id} as {outcome.remote_id}",
                    "sent": history_body(outcome.sent),
                    "received": history_body(outcome.received),
                }
            )
            self.tally.counts.add(item.entity, kind_of(outcome.action))
            self._latency.observe(max((now - due).total_seconds(), 0.0))
        elif isinstance(outcome, RetryLater):
            row["attempts"] += 1
            row["next_attempt_at"] = now + timedelta(seconds=backoff(row["attempts"], outcome.retry_after, self.rng))
            row["error_code"] = "retry_later"
            row["error_reason"] = outcome.reason
            row["error_fix"] = "fieldhub will try again by itself."
            self.tally.errors.append(_error(item, "retry_later", outcome.reason, row["error_fix"]))
        elif isinstance(outcome, Rejected):
            row["attempts"] += 1
            row["state"] = LedgerState.FAILED
            # Nothing was created (the provider refused it); a retry after the fix sends under a new key.
            row["idempotency_key"] = None
            row["sent_at"] = None
            row["error_code"], row["error_reason"], row["error_fix"] = outcome.code[:40], outcome.reason, outcome.fix
            events.append(
                {
                    "ledger_id": row["id"],
                    "run_id": self.run_id,
                    "action": "failed",
                    "summary": outcome.reason,
                    "sent": None,
                    "received": None,
                }
            )
            self.tally.counts.add(item.entity, "failed")
            self.tally.rejected.append(row["id"])
            self.tally.errors.append(_error(item, outcome.code, outcome.reason, outcome.fix))
        elif isinstance(outcome, NotEntitled):
            row["state"] = LedgerState.SKIPPED
            row["idempotency_key"] = None
            row["error_code"], row["error_reason"], row["error_fix"] = "not_entitled", outcome.reason, ""
            self.tally.errors.append(_error(item, "not_entitled", outcome.reason, ""))

    async def _alert(self, session: AsyncSession, run: SyncRun) -> None:
        """One "sync.failed" alert per run that had records refused: how many, which and why, where to fix them.

        Per run, not per record: a backfill that meets forty name conflicts sends one email, not forty. A
        refused record is never retried by back-off (it waits for a person), so there is no retry storm to
        repeat the alert; the record alerts again only if it fails anew after someone edits or retries it.
        """
        rows = list(
            await session.scalars(
                select(LedgerRow).where(LedgerRow.id.in_(self.tally.rejected)).execution_options(populate_existing=True)
            )
        )
        labels = await record_labels(session, run.tenant_id, rows)
        spec = registry.get(self.provider)
        count = len(rows)
        title = f"{count} record{'s' if count != 1 else ''} failed to sync to {spec.name}"
        lines = [
            f"• {labels[r.id]}: {r.error_reason}" + (f" Fix: {r.error_fix}" if r.error_fix else "")
            for r in rows[:ALERT_LINES]
        ]
        if count > ALERT_LINES:
            lines.append(f"…and {count - ALERT_LINES} more.")
        link = f"/settings/integrations/{spec.card or spec.key}/{self.connection_id}/records?state=failed"
        await notify(session, run.tenant_id, "sync.failed", title, "\n".join(lines), link)


def _holds_back(outcome: PushResult | ProviderError) -> bool:
    """An outcome after which nothing more may be sent until the run has dealt with it."""
    return isinstance(outcome, NeedsReauth) or (isinstance(outcome, RetryLater) and bool(outcome.retry_after))


def _error(item: PushItem, code: str, reason: str, fix: str) -> dict[str, Any]:
    return {"entity": item.entity, "local_id": item.local_id, "code": code, "reason": reason, "fix": fix}


async def sync_connection(
    env: OAuthEnv,
    connection_id: int,
    *,
    trigger: str,
    entity: str | None = None,
    progress: Callable[[Progress], Any] | None = None,
    holder: str | None = None,
    client_options: dict[str, Any] | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> SyncRun | None:
    """Push the connection's due rows; returns the run's history row, or None when nothing could be tried
    (nothing due, or the connection paused). Raises LeaseHeld if another worker has it."""
    # A holder per run: two runs of one connection in the same process must exclude each other too.
    engine = Engine(
        env,
        connection_id,
        trigger,
        entity,
        holder or f"{processes.PROCESS}:{uuid.uuid4().hex[:8]}",
        progress,
        dict(client_options or {}),
        lease_seconds,
    )
    return await engine.run()
