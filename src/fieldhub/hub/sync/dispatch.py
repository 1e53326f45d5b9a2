"""Who runs sync and when: one task (`run_connection`), driven in-process (embedded) or by `fieldhub worker`.

Embedded (SQLite, `fieldhub serve`): a background Dispatcher inside the app. Commits that leave
pending ledger rows wake it through an in-process queue (an SQLAlchemy after_commit hook collects
the connection ids a transaction touched); a sweep every few seconds finds due work whose wake-up
was lost (a crash, a retry whose back-off ran out, a write from another process). Wake-ups for a
connection already queued coalesce.

Scale-out (PostgreSQL, `fieldhub worker` on any number of machines): the same task in a loop over
connections with due work. It is a plain loop rather than procrastinate jobs because the guarantee
that matters — never two workers on one connection — already lives in the database lease every run
takes (engine.acquire_lease), which holds across processes and machines and frees itself when a
worker dies; a job queue would add its own schema and migrations for no extra safety. Triggers
coalesce the same way: a worker that finds the lease taken simply moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.engine import LeaseHeld, sync_connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState, SyncRun
from fieldhub.log import get_logger

log = get_logger("fieldhub.sync.dispatch")
HOLDER = f"{socket.gethostname()[:100]}:{os.getpid()}"
WAKE_KEY = "fieldhub.sync.wake"
SWEEP_SECONDS = 5.0
STOP_SECONDS = 10.0  # how long stop() waits for runners to finish cancelling

_dispatcher: Dispatcher | None = None


# ----------------------------------------------------------------------------- the task


async def run_connection(
    env: OAuthEnv, connection_id: int, trigger: str = "realtime", entity: str | None = None, **options: Any
) -> SyncRun | None:
    """Sync one connection now; None when another worker holds it (it will pick up this work too)."""
    try:
        return await sync_connection(env, connection_id, trigger=trigger, entity=entity, **options)
    except LeaseHeld:
        log.info("sync.run.busy", connection_id=connection_id)
        return None


async def due_connections(env: OAuthEnv, *, auto_only: bool = True) -> list[int]:
    """Connections with pending rows due now (the sweep's one query, served by ix_sync_ledger_sweep)."""
    async with env.sessionmaker() as session:
        stmt = (
            select(LedgerRow.connection_id)
            .join(Connection, Connection.id == LedgerRow.connection_id)
            .where(
                LedgerRow.state == LedgerState.PENDING,
                LedgerRow.next_attempt_at <= utcnow(),
                Connection.status == ConnectionStatus.CONNECTED,
            )
            .distinct()
        )
        if auto_only:
            stmt = stmt.where(Connection.auto_sync.is_(True))
        return list(await session.scalars(stmt))


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
    if wakes and _dispatcher is not None:
        for connection_id, trigger, entity in wakes:
            _dispatcher.wake(connection_id, trigger, entity)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(WAKE_KEY, None)


# ----------------------------------------------------------------------------- embedded


class Dispatcher:
    """Background sync inside one process: a queue of connections, N runners and a sweep."""

    def __init__(self, env: OAuthEnv, *, workers: int = 1, sweep_seconds: float = SWEEP_SECONDS, **options: Any):
        self.env = env
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
        global _dispatcher
        _dispatcher = self
        self.tasks = [asyncio.create_task(self._runner()) for _ in range(self.workers)]
        self.tasks.append(asyncio.create_task(self._sweeper()))
        log.info("sync.dispatch.started", workers=self.workers)

    async def stop(self) -> None:
        global _dispatcher
        if _dispatcher is self:
            _dispatcher = None
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


# ----------------------------------------------------------------------------- scale-out


async def worker_loop(
    env: OAuthEnv,
    *,
    concurrency: int = 4,
    poll_seconds: float = 1.0,
    refresh_every: float = 60.0,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """`fieldhub worker`: sync every connection with due work, refresh tokens ahead, forever (or until `stop`)."""
    from fieldhub.hub.oauth.tokens import refresh_due

    stop = stop or asyncio.Event()
    running: dict[int, asyncio.Task[Any]] = {}
    last_refresh = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if loop.time() - last_refresh >= refresh_every:
            last_refresh = loop.time()
            try:
                await refresh_due(env)
            except Exception:  # noqa: BLE001
                log.exception("oauth.refresh_ahead.failed")
        for cid in [c for c, t in running.items() if t.done()]:
            running.pop(cid)
        try:
            due = await due_connections(env)
        except Exception:  # noqa: BLE001 — the database may be restarting; try again next round
            log.exception("sync.worker.poll_failed")
            due = []
        for cid in _fair(due, running):
            if len(running) >= concurrency:
                break
            running[cid] = asyncio.create_task(run_connection(env, cid, "schedule", None, **options))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_seconds)
    await asyncio.gather(*running.values(), return_exceptions=True)


def _fair(due: Iterable[int], running: dict[int, Any]) -> list[int]:
    return [c for c in due if c not in running]
