"""Who runs sync and when: one task (`run_connection`), driven in-process (embedded) or by procrastinate.

Embedded (SQLite, `fieldhub serve`): a background Dispatcher inside the app. Commits that leave
pending ledger rows wake it through an in-process queue (an SQLAlchemy after_commit hook collects
the connection ids a transaction touched); a sweep every few seconds finds due work whose wake-up
was lost (a crash, a retry whose back-off ran out, a write from another process). Wake-ups for a
connection already queued coalesce.

Scale-out (PostgreSQL, `fieldhub worker` on any number of machines): the same task as procrastinate
jobs, one per connection run with a lock per connection and a queueing lock per trigger; the same
after-commit hook defers them, and a periodic sweep re-finds lost wake-ups (hub/sync/queue.py).
Either way the engine's database lease (engine.acquire_lease) is what finally keeps two runs of one
connection apart, across processes and machines, and frees itself when a worker dies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from fieldhub.db import utcnow
from fieldhub.hub import processes, registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.engine import LeaseHeld, acquire_lease, close_interrupted_runs, release_lease, sync_connection
from fieldhub.hub.sync.models import (
    LedgerRow,
    LedgerState,
    PeriodicLease,
    RunStatus,
    SyncCursor,
    SyncLease,
    SyncRun,
)
from fieldhub.log import get_logger

log = get_logger("fieldhub.sync.dispatch")
HOLDER = processes.PROCESS
WAKE_KEY = "fieldhub.sync.wake"
SWEEP_SECONDS = 5.0
BUSY_RETRY_SECONDS = 0.25  # a wake-up that found the connection busy tries again this soon
PERIODIC_TICK = 5.0  # seconds between looks at the periodic tasks (each keeps its own interval)
HEALTH_LOOK_SECONDS = 60.0  # how often the health check looks for connections gone quiet
STOP_SECONDS = 10.0  # how long stop() waits for runners to finish cancelling


class Waker(Protocol):
    def wake(self, connection_id: int, trigger: str = "realtime", entity: str | None = None) -> None: ...


_waker: Waker | None = None  # the embedded Dispatcher, or queue.JobQueue where procrastinate's workers sync


def set_waker(waker: Waker | None, *, only: Waker | None = None) -> None:
    """Where this process's wake-ups go; with `only`, cleared only if it is still that one."""
    global _waker
    if only is None or _waker is only:
        _waker = waker


# ----------------------------------------------------------------------------- the task


async def run_connection(
    env: OAuthEnv, connection_id: int, trigger: str = "realtime", entity: str | None = None, **options: Any
) -> SyncRun | None:
    """Sync one connection now; None when another worker holds it (it will pick up this work too), or
    when the wake-up came from a commit and the owner turned Auto-Sync off (the work waits for Sync Now)."""
    if trigger == "realtime" and not await _auto_sync_on(env, connection_id):
        return None
    try:
        return await sync_connection(env, connection_id, trigger=trigger, entity=entity, **options)
    except LeaseHeld:
        log.info("sync.run.busy", connection_id=connection_id)
        if _waker is not None:
            # Held by another run or by a periodic task (an inbound poll takes the same lease): look
            # again shortly rather than leaving a real-time change to the next sweep, seconds away.
            asyncio.get_running_loop().call_later(BUSY_RETRY_SECONDS, _waker.wake, connection_id, trigger, entity)
        return None


async def _auto_sync_on(env: OAuthEnv, connection_id: int) -> bool:
    async with env.sessionmaker() as session:
        return bool(await session.scalar(select(Connection.auto_sync).where(Connection.id == connection_id)))


def due_query(*, auto_only: bool = True) -> Any:
    """Connections with pending rows due now that no live worker holds (served by ix_sync_ledger_sweep).

    A connection another worker is running is left out until that run lets go (rows it did not reach
    show up again then), so this worker takes the next connection instead of knocking on a held lease
    each round. The lease is still what guarantees one worker per connection; this only spreads the work.
    """
    held = select(SyncLease.connection_id).where(
        SyncLease.connection_id == LedgerRow.connection_id, SyncLease.expires_at > utcnow()
    )
    stmt = (
        select(LedgerRow.connection_id)
        .join(Connection, Connection.id == LedgerRow.connection_id)
        .where(
            LedgerRow.state == LedgerState.PENDING,
            LedgerRow.next_attempt_at <= utcnow(),
            Connection.status == ConnectionStatus.CONNECTED,
            ~held.exists(),
        )
        .distinct()
    )
    if auto_only:
        stmt = stmt.where(Connection.auto_sync.is_(True))
    return stmt


async def due_connections(env: OAuthEnv, *, auto_only: bool = True) -> list[int]:
    """The ids `due_query` finds, in one round trip: run on an autocommit connection, the read is sent
    without a BEGIN before it and a ROLLBACK after it (three round trips in a session; bench/pending.py
    times it)."""
    async with env.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return list(await autocommit.scalars(due_query(auto_only=auto_only)))


# ----------------------------------------------------------------------------- start-up


RESUME = "resume"  # the trigger of a run that takes up the work of one a crash cut


async def recover(env: OAuthEnv, waker: Waker | None = None) -> list[int]:
    """At start-up of a process that syncs: close the runs a crash left "running" and take their work up again.

    A run cut by kill -9 (or OOM, or a power cut) stays "running" in the history until the next run of its
    connection closes it, and with Auto-Sync off nothing starts that run until someone presses Sync Now: the
    page said "running" for ever and the records waited. Here every connection with a run still "running"
    whose lease no live process holds (free, lapsed, or its holder found gone: acquire_lease) has those runs
    closed as interrupted, and an export run's work is started again at once, as a run of its own (trigger
    "resume"), whatever Auto-Sync says: the owner (or Auto-Sync) asked for that run, and a crash is not the owner
    changing their mind. A connection whose lease a live process holds is left alone: its run is going.
    Then every connection with work due and Auto-Sync on is woken at once, not at the first sweep.

    An import run's work needs no wake: its cursor moves only with what it applied, so the next catch-up
    re-reads the rest. Returns the connections whose cut runs were resumed.
    """
    waker = waker or _waker
    async with env.sessionmaker() as session:
        running = (
            await session.execute(
                select(SyncRun.connection_id, SyncRun.direction, SyncRun.entity).where(
                    SyncRun.status == RunStatus.RUNNING
                )
            )
        ).all()
        await session.commit()
    cut: dict[int, set[str | None]] = {}
    for connection_id, direction, entity in running:
        wanted = cut.setdefault(connection_id, set())
        if direction == "export":
            wanted.add(entity or None)
    holder = f"{HOLDER}:recover"
    resumed: list[int] = []
    for connection_id, entities in sorted(cut.items()):
        async with env.sessionmaker() as session:
            if not await acquire_lease(session, connection_id, holder):
                continue  # a live process holds it: its run is going, and closes what it finds when it ends
            try:
                closed = await close_interrupted_runs(session, connection_id)
                await session.commit()
            finally:
                await release_lease(session, connection_id, holder)
        if not closed:
            continue  # it ended between the look and the lease
        log.warning("sync.recover.closed", connection_id=connection_id, runs=closed)
        if not entities or waker is None:
            continue
        resumed.append(connection_id)
        # A run of every entity covers the entity-only ones.
        scopes: list[str | None] = [None] if None in entities else [e for e in sorted(e for e in entities if e)]
        for scope in scopes:
            waker.wake(connection_id, RESUME, scope)
    if waker is not None:
        for connection_id in await due_connections(env):
            waker.wake(connection_id, "schedule")
    return resumed


# ----------------------------------------------------------------------------- what pages call


def _wake_after_commit(session: AsyncSession, connection_id: int, trigger: str, entity: str | None) -> None:
    session.sync_session.info.setdefault(WAKE_KEY, set()).add((connection_id, trigger, entity))


async def request_sync(
    session: AsyncSession, connection_id: int, *, entity: str | None = None, trigger: str = "manual"
) -> int:
    """ "Sync Now": make the connection's pending rows (of one entity, or all) due now and wake a worker.

    Returns how many rows were made due. The caller commits; the wake-up fires after that commit.
    """
    stmt = update(LedgerRow).where(LedgerRow.connection_id == connection_id, LedgerRow.state == LedgerState.PENDING)
    if entity:
        stmt = stmt.where(LedgerRow.entity == entity)
    result = await session.execute(stmt.values(next_attempt_at=utcnow()))
    _wake_after_commit(session, connection_id, trigger, entity)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def retry_record(session: AsyncSession, tenant_id: int, ledger_id: int) -> LedgerRow | None:
    """Retry of a failed (or skipped) record: back to pending, due now. None if it isn't this tenant's."""
    row = await session.scalar(select(LedgerRow).where(LedgerRow.id == ledger_id, LedgerRow.tenant_id == tenant_id))
    if row is None:
        return None
    if row.state in (LedgerState.FAILED, LedgerState.SKIPPED, LedgerState.PENDING):
        row.state = LedgerState.PENDING
        row.attempts = 0
        row.next_attempt_at = utcnow()
        row.error_code = row.error_reason = row.error_fix = ""
        await session.flush()
        _wake_after_commit(session, row.connection_id, "retry", None)
    return row


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context: Any) -> None:
    """Remember which connections got pending ledger rows in this transaction (ledger.mark's writes)."""
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, LedgerRow) and obj.state == LedgerState.PENDING:
            session.info.setdefault(WAKE_KEY, set()).add((obj.connection_id, "realtime", None))


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    wakes = session.info.pop(WAKE_KEY, None)
    if wakes and _waker is not None:
        for connection_id, trigger, entity in wakes:
            _waker.wake(connection_id, trigger, entity)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(WAKE_KEY, None)


# ----------------------------------------------------------------------------- embedded


class Dispatcher:
    """Background sync inside one process: a queue of connections, N runners and a sweep."""

    def __init__(
        self,
        env: OAuthEnv,
        *,
        workers: int = 1,
        sweep_seconds: float = SWEEP_SECONDS,
        periodic_seconds: float = PERIODIC_TICK,
        **options: Any,
    ):
        self.env = env
        self.periodic_seconds = periodic_seconds
        self.workers = max(1, workers)
        self.sweep_seconds = sweep_seconds
        self.options = options
        self.queue: asyncio.Queue[tuple[int, str, str | None]] = asyncio.Queue()
        self.queued: set[int] = set()
        self.locks: dict[int, asyncio.Lock] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.runs = 0

    def wake(self, connection_id: int, trigger: str = "realtime", entity: str | None = None) -> None:
        if connection_id in self.queued:
            return  # coalesce: the queued run will see this work too
        self.queued.add(connection_id)
        self.queue.put_nowait((connection_id, trigger, entity))

    async def start(self) -> None:
        set_waker(self)
        self.tasks = [asyncio.create_task(self._runner()) for _ in range(self.workers)]
        self.tasks.append(asyncio.create_task(self._sweeper()))
        self.tasks.append(asyncio.create_task(periodic_loop(self.env, every=self.periodic_seconds)))
        self.tasks.append(asyncio.create_task(self._recover()))
        log.info("sync.dispatch.started", workers=self.workers)

    async def _recover(self) -> None:
        try:
            await recover(self.env, self)
        except Exception:  # noqa: BLE001 - the sweep and the next runs close and find the same work later
            log.exception("sync.recover.failed")

    async def stop(self) -> None:
        set_waker(None, only=self)
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks, timeout=STOP_SECONDS)
            if stuck:
                log.error("sync.dispatch.stop_timed_out", tasks=len(stuck))
        self.tasks = []

    async def idle(self, within: float = 30.0) -> None:
        """Wait until nothing is queued or running (tests and CLI)."""
        async with asyncio.timeout(within):
            while self.queued or any(lock.locked() for lock in self.locks.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    async def _runner(self) -> None:
        while True:
            connection_id, trigger, entity = await self.queue.get()
            self.queued.discard(connection_id)
            lock = self.locks.setdefault(connection_id, asyncio.Lock())
            async with lock:
                try:
                    await run_connection(self.env, connection_id, trigger, entity, **self.options)
                    self.runs += 1
                except Exception:  # noqa: BLE001 — a worker that dies stops all sync; log and keep going
                    log.exception("sync.run.crashed", connection_id=connection_id)
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise asyncio.CancelledError from None  # a stop asked for must never be swallowed

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                for connection_id in await due_connections(self.env):
                    if not self.locks.get(connection_id, asyncio.Lock()).locked():
                        self.wake(connection_id, "schedule")
            except Exception:  # noqa: BLE001
                log.exception("sync.sweep.failed")


# ----------------------------------------------------------------------------- periodic tasks
#
# Run by the embedded Dispatcher (`fieldhub serve`) and by `fieldhub worker`s (queue.py's `fieldhub.periodic`).
# Each task has a row in periodic_leases: a process runs it only when one conditional UPDATE moves the row's next_run_at
# forward and takes its lease, so with any number of workers each round runs once, two never run one
# task at the same time, and a process that dies mid-run frees it when the lease expires. A look at a
# task that is not due is one primary-key read.

PERIODIC_LEASE = timedelta(minutes=10)  # longest a holder keeps a task it stopped renewing


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every: float  # seconds between runs, across all workers
    run: Callable[[OAuthEnv], Awaitable[Any]]


async def _sweep_inbox(env: OAuthEnv) -> int:
    """Webhook events a crash left `received`, and `failed` ones still to retry (issue #6: on a schedule)."""
    from fieldhub.hub.webhooks import inbox

    return await inbox.sweep(env)


async def _refresh_ahead(env: OAuthEnv) -> int:
    from fieldhub.hub.oauth.tokens import refresh_due

    return await refresh_due(env)


def _pollers() -> dict[str, Any]:
    """Providers that catch up on remote changes: `providers/<key>/inbound.py` with `poll(env, connection_id, ...)`."""
    found: dict[str, Any] = {}
    for spec in registry.all():
        module = registry.import_module(spec.key, "inbound")
        if module is not None and hasattr(module, "poll"):
            found[spec.key] = module
    return found


async def poll_inbound(env: OAuthEnv) -> int:
    """Each live connection of a polling provider, when its interval has passed or it was (re)connected since.

    The connection's poll runs under its sync lease and re-checks that it is still due there, so a
    second worker that saw it due too does nothing. Returns how many connections were polled.
    """
    pollers = _pollers()
    if not pollers:
        return 0
    every = timedelta(seconds=env.settings.inbound_poll_seconds)
    now = utcnow()
    async with env.sessionmaker() as session:
        conns = (
            await session.execute(
                select(Connection.id, Connection.provider, Connection.connected_at).where(
                    Connection.status == ConnectionStatus.CONNECTED, Connection.provider.in_(list(pollers))
                )
            )
        ).all()
        polled = dict(
            (
                await session.execute(
                    select(SyncCursor.connection_id, func.max(SyncCursor.polled_at))
                    .where(SyncCursor.connection_id.in_([c.id for c in conns]))
                    .group_by(SyncCursor.connection_id)
                )
            ).all()
        )
    count = 0
    for cid, provider, connected_at in conns:
        last = polled.get(cid)
        fresh = last is None or (connected_at is not None and connected_at > last)
        if not fresh and last is not None and last > now - every:
            continue
        trigger = "connect" if last is None else "reconnect" if fresh else "schedule"
        try:
            if await pollers[provider].poll(env, cid, trigger=trigger, due_before=now - every) is not None:
                count += 1
        except Exception:  # noqa: BLE001 - one connection's failure (recorded in its history) must not stop the rest
            log.warning("sync.inbound.poll_failed", connection_id=cid, exc_info=True)
    return count


async def _check_health(env: OAuthEnv) -> int:
    from fieldhub.hub.connections import probe

    return await probe.check_due(env)


def periodic_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    settings = env.settings
    return [
        PeriodicTask("webhooks.sweep", settings.webhook_sweep_seconds, _sweep_inbox),
        PeriodicTask("oauth.refresh_ahead", settings.refresh_ahead_seconds, _refresh_ahead),
        # Every tick: each connection keeps its own interval (inbound_poll_seconds) and reconnects go at once.
        PeriodicTask("inbound.poll", PERIODIC_TICK, poll_inbound),
        # Each connection is checked once it has gone health_check_seconds without traffic; looking for those
        # is one query, made once a minute (or as often as the interval, when it is shorter).
        PeriodicTask("connections.health", min(HEALTH_LOOK_SECONDS, settings.health_check_seconds), _check_health),
        *capability_tasks(env),
    ]


def capability_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    """Each capability's own periodic work (`capabilities/<kind>/tasks.py`: `periodic_tasks(env)`), found by folder;
    task names start with the capability's name so two kinds never share a lease row."""
    found: list[PeriodicTask] = []
    for capability in registry.capability_names():
        module = registry.capability_module(capability, "tasks")
        if module is None or not hasattr(module, "periodic_tasks"):
            continue
        for task in module.periodic_tasks(env):
            if not task.name.startswith(f"{capability}."):
                raise ValueError(f"capability {capability!r} names a periodic task {task.name!r} outside its own")
            found.append(task)
    return found


async def claim_periodic(env: OAuthEnv, name: str, every: float, holder: str = HOLDER) -> bool:
    """Take the task's round if it is due and no live holder has it; False otherwise.

    A task not due costs one primary-key read and no write lock (SQLite has one for the whole database).
    """
    now = utcnow()
    async with env.sessionmaker() as session:
        row = (
            await session.execute(
                select(PeriodicLease.next_run_at, PeriodicLease.expires_at).where(PeriodicLease.name == name)
            )
        ).first()
        await session.commit()
        if row is not None and (row.next_run_at > now or row.expires_at > now):
            return False
        taken = await session.execute(
            update(PeriodicLease)
            .where(PeriodicLease.name == name, PeriodicLease.next_run_at <= now, PeriodicLease.expires_at <= now)
            .values(holder=holder, expires_at=now + PERIODIC_LEASE, next_run_at=now + timedelta(seconds=every))
        )
        await session.commit()
        if taken.rowcount:  # type: ignore[attr-defined]
            return True
        if row is not None:
            return False  # another worker took this round between the read and the update
        try:
            session.add(
                PeriodicLease(
                    name=name,
                    holder=holder,
                    expires_at=now + PERIODIC_LEASE,
                    next_run_at=now + timedelta(seconds=every),
                )
            )
            await session.commit()
            return True
        except IntegrityError:
            await session.rollback()  # another worker made the row first: its round
            return False


async def release_periodic(env: OAuthEnv, name: str, holder: str = HOLDER) -> None:
    async with env.sessionmaker() as session:
        await session.execute(
            update(PeriodicLease)
            .where(PeriodicLease.name == name, PeriodicLease.holder == holder)
            .values(expires_at=utcnow())
        )
        await session.commit()


async def run_periodic(env: OAuthEnv, tasks: list[PeriodicTask] | None = None, holder: str = HOLDER) -> list[str]:
    """Run every periodic task that is due and free; returns the names run. Failures are logged, never raised."""
    ran = []
    for task in tasks if tasks is not None else periodic_tasks(env):
        try:
            if not await claim_periodic(env, task.name, task.every, holder):
                continue
        except Exception:  # noqa: BLE001 - the database may be restarting; the next tick tries again
            log.exception("sync.periodic.claim_failed", task=task.name)
            continue
        try:
            await task.run(env)
            ran.append(task.name)
        except Exception:  # noqa: BLE001
            log.exception("sync.periodic.failed", task=task.name)
        finally:
            with contextlib.suppress(Exception):
                await release_periodic(env, task.name, holder)
    return ran


async def periodic_loop(env: OAuthEnv, *, every: float = PERIODIC_TICK) -> None:
    """The embedded Dispatcher's periodic tasks (procrastinate's workers run run_periodic as a periodic job)."""
    while True:
        await run_periodic(env)
        await asyncio.sleep(every)
