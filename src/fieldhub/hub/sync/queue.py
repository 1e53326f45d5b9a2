"""Scale-out dispatch on PostgreSQL: procrastinate jobs that run the embedded Dispatcher's task.

`fieldhub worker` processes, on any number of machines, run procrastinate workers on the `sync` queue:

- **A job per connection run** (task `fieldhub.sync`, the same `dispatch.run_connection` the embedded
  Dispatcher calls). Its lock, `connection:<id>`, means procrastinate never starts it while another job
  of that connection is running; its queueing lock, one per (connection, trigger, entity), makes a burst
  of triggers coalesce into the one job already waiting. The engine's database lease still guards the
  run itself, so a `fieldhub sync now` from a shell can't overlap a worker's run either.
- **Wake-ups:** a commit that leaves pending ledger rows defers a job (dispatch's after-commit hook,
  through `JobQueue.wake`, in `fieldhub serve` when it runs no embedded workers), and procrastinate's
  LISTEN/NOTIFY hands it to a waiting worker at once.
- **Periodic tasks**, each deferred once per tick whatever the number of workers:
  - `fieldhub.sync.sweep`, every second: a job for every connection with due work whose wake-up was
    lost (a crash, a back-off that ran out, a write from a process with no queue), and the jobs of a
    worker that died mid-run (kill -9: no heartbeat for STALLED_SECONDS) are closed so their connection's
    lock is free again. Its work is still pending in the ledger, and this same sweep defers it again.
  - `fieldhub.periodic`, every 5 s: `dispatch.run_periodic` (token refresh-ahead, the webhook inbox
    sweep, inbound polls, connection health checks). Each keeps its own interval in `periodic_leases`, as embedded.
  - `fieldhub.jobs.prune`, hourly: failed jobs older than KEEP_FAILED_HOURS are deleted.

procrastinate's tables live beside fieldhub's in PostgreSQL; the Alembic migration `20261122b1` creates
them from procrastinate's own schema SQL (`schema_sql` gives the tests' template the same). On SQLite
there is no queue: the embedded Dispatcher is the only dispatch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate import jobs
from procrastinate.schema import SchemaManager

from fieldhub.db import libpq_url
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync import dispatch
from fieldhub.log import get_logger

log = get_logger("fieldhub.sync.queue")
QUEUE = "sync"
SYNC_TASK = "fieldhub.sync"
HEARTBEAT_SECONDS = 2.0  # a worker's heartbeat; one silent STALLED_SECONDS is taken for dead
STALLED_SECONDS = 10.0
SHUTDOWN_SECONDS = 10.0  # on SIGTERM, running jobs get this long to end, then are cancelled (they lose nothing)
KEEP_FAILED_HOURS = 72  # a failed job (a crashed run, a dead worker's) stays this long for a look, then goes


def schema_sql() -> str:
    """procrastinate's schema, as its own `procrastinate schema --apply` would run it."""
    return str(SchemaManager.get_schema())


def lock(connection_id: int) -> str:
    return f"connection:{connection_id}"


def make_app(env: OAuthEnv) -> procrastinate.App:
    """The procrastinate App with fieldhub's tasks, bound to `env` (its database, its provider settings)."""
    # A worker keeps one connection for LISTEN; its jobs, heartbeat and periodic deferrer borrow the rest briefly.
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(env.settings.database_url), min_size=1, max_size=8)
    app = procrastinate.App(connector=connector)

    @app.task(name=SYNC_TASK, queue=QUEUE)
    async def sync(connection_id: int, trigger: str, entity: str | None = None) -> None:
        await dispatch.run_connection(env, connection_id, trigger, entity)

    @app.periodic(cron="* * * * * *", periodic_id="sweep")  # croniter's sixth field: every second
    @app.task(name="fieldhub.sync.sweep", queue=QUEUE, queueing_lock="fieldhub.sync.sweep")
    async def sweep(timestamp: int) -> None:
        await close_stalled_jobs(app)
        for connection_id in await dispatch.due_connections(env):
            await defer_sync(app, connection_id, "schedule")

    @app.periodic(cron="17 * * * *", periodic_id="prune")  # hourly
    @app.task(name="fieldhub.jobs.prune", queue=QUEUE, queueing_lock="fieldhub.jobs.prune")
    async def prune(timestamp: int) -> None:
        # Successful jobs are deleted as they end; failed ones would otherwise pile up.
        await app.job_manager.delete_old_jobs(nb_hours=KEEP_FAILED_HOURS, include_failed=True)

    @app.periodic(cron=f"* * * * * */{int(dispatch.PERIODIC_TICK)}", periodic_id="periodic")  # as embedded
    @app.task(name="fieldhub.periodic", queue=QUEUE, queueing_lock="fieldhub.periodic")
    async def periodic(timestamp: int) -> None:
        await dispatch.run_periodic(env)

    return app


async def defer_sync(app: procrastinate.App, connection_id: int, trigger: str, entity: str | None = None) -> bool:
    """A job for this connection; False when one for the same trigger already waits (it covers this one)."""
    task = app.tasks[SYNC_TASK].configure(
        lock=lock(connection_id), queueing_lock=f"{lock(connection_id)}:{trigger}:{entity or ''}"
    )
    try:
        await task.defer_async(connection_id=connection_id, trigger=trigger, entity=entity)
    except pexc.AlreadyEnqueued:
        return False
    return True


async def close_stalled_jobs(app: procrastinate.App) -> int:
    """Mark failed the jobs of workers with no heartbeat for STALLED_SECONDS, freeing their locks.

    Nothing is lost by it: the job's work is pending rows in the ledger, which the sweep defers again.
    """
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_SECONDS))
    for job in stalled:
        log.warning("sync.job.stalled", job_id=job.id, task=job.task_name, lock=job.lock)
        await app.job_manager.finish_job(job, status=jobs.Status.FAILED, delete_job=False)
    return len(stalled)


async def run_worker(env: OAuthEnv, *, concurrency: int = 4, **options: Any) -> None:
    """`fieldhub worker`: a procrastinate worker on the sync queue until SIGINT/SIGTERM (or cancelled).

    Its own commits wake through the same queue: a run that leaves work behind (a record changed while
    it was sent) defers the follow-up job at once.
    """
    queue = JobQueue(env)
    await queue.start()
    try:
        log.info("sync.worker.started", holder=dispatch.HOLDER, concurrency=concurrency)
        try:  # runs a crash cut: closed, and their work deferred as jobs (dispatch.recover)
            await dispatch.recover(env, queue)
        except Exception:  # noqa: BLE001 - the sweep and the next runs close and find the same work later
            log.exception("sync.recover.failed")
        await queue.app.run_worker_async(
            queues=[QUEUE],
            concurrency=concurrency,
            delete_jobs="successful",  # a sweep a second would otherwise grow the jobs table forever
            update_heartbeat_interval=HEARTBEAT_SECONDS,
            stalled_worker_timeout=STALLED_SECONDS,
            # Not procrastinate's default (wait for ever): a backfill would hold a deploy until SIGKILL. A cancelled
            # run leaves its unconfirmed records pending, and the next run closes its row as interrupted.
            shutdown_graceful_timeout=SHUTDOWN_SECONDS,
            **options,
        )
    finally:
        await queue.stop()


class JobQueue:
    """The procrastinate App of a process, and its wake-ups: each defers a job (`fieldhub serve` with no
    embedded workers, and every `fieldhub worker`)."""

    def __init__(self, env: OAuthEnv) -> None:
        self.app = make_app(env)
        self._pending: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.app.open_async()
        dispatch.set_waker(self)

    async def stop(self) -> None:
        dispatch.set_waker(None, only=self)
        if self._pending:
            await asyncio.wait(self._pending, timeout=dispatch.STOP_SECONDS)
        await self.app.close_async()

    def wake(self, connection_id: int, trigger: str = "realtime", entity: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self._defer(connection_id, trigger, entity))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _defer(self, connection_id: int, trigger: str, entity: str | None) -> None:
        try:
            await defer_sync(self.app, connection_id, trigger, entity)
        except Exception:  # noqa: BLE001 — the ledger keeps the work; the workers' sweep finds it within a second
            log.warning("sync.job.defer_failed", connection_id=connection_id, exc_info=True)
