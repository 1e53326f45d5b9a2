"""Scale-out dispatch through procrastinate (PostgreSQL): jobs per connection, coalescing, periodic tasks,
a dead worker's job closed, commits deferring jobs. The OS-process race is tests/hub/sync/test_workers.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.db import libpq_url
from fieldhub.hub.sync import dispatch, queue
from fieldhub.hub.sync.models import PeriodicLease
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup
from tests.hub.sync.test_dispatch import unsynced


@pytest.fixture(autouse=True)
def _postgresql_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("procrastinate's queue is PostgreSQL's; SQLite runs sync in the embedded Dispatcher")


def jobs(db_url: str, task: str = queue.SYNC_TASK) -> list[tuple[str, str, str]]:
    """(status, lock, queueing lock) of the task's jobs."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute(
            "SELECT status::text, lock, queueing_lock FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
            (task,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


@contextlib.asynccontextmanager
async def worker(qbo: QBOSetup, concurrency: int = 2) -> AsyncIterator[None]:
    """A `fieldhub worker` in this process (its signal handlers left to pytest)."""
    task = asyncio.create_task(queue.run_worker(qbo.env, concurrency=concurrency, install_signal_handlers=False))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


async def wait_until(check, within: float = 30.0) -> None:  # noqa: ANN001
    for _ in range(int(within / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def test_triggers_coalesce_into_one_waiting_job_per_connection_and_trigger(db_url, qbo: QBOSetup):
    q = queue.JobQueue(qbo.env)
    await q.app.open_async()
    try:
        cid = qbo.connection_id
        assert await queue.defer_sync(q.app, cid, "realtime")
        assert not await queue.defer_sync(q.app, cid, "realtime")  # the waiting job covers it
        assert await queue.defer_sync(q.app, cid, "manual", "invoice")  # Sync Now must not be lost to Auto-Sync off
    finally:
        await q.app.close_async()
    lock = f"connection:{cid}"
    assert jobs(db_url) == [("todo", lock, f"{lock}:realtime:"), ("todo", lock, f"{lock}:manual:invoice")]


async def test_a_commit_defers_a_job_for_its_connection(db_url, session, biz: Business, qbo: QBOSetup):
    q = queue.JobQueue(qbo.env)
    await q.start()
    try:
        await create_customer(session, biz.tenant.id, {"display_name": "Queued Quinn"})
        await session.commit()
        await wait_until(lambda: asyncio.sleep(0, bool(jobs(db_url))))
    finally:
        await q.stop()
    lock = f"connection:{qbo.connection_id}"
    assert jobs(db_url) == [("todo", lock, f"{lock}:realtime:")]
    assert dispatch._waker is None  # stop gave the process's wake-ups back


async def test_a_worker_syncs_through_jobs_and_runs_the_periodic_tasks(
    app, db_url, session, biz: Business, qbo: QBOSetup
):
    for n in range(5):
        await create_customer(session, biz.tenant.id, {"display_name": f"Jobbed {n}"})
    await session.commit()  # no queue in this process: the worker's sweep finds the work

    async def periodic_ran() -> bool:
        async with app.state.sessionmaker() as s:
            names = set((await s.scalars(select(PeriodicLease.name))).all())
        return {"webhooks.sweep", "oauth.refresh_ahead", "inbound.poll"} <= names

    async with worker(qbo):
        await wait_until(lambda: _none_left(session, qbo))
        await wait_until(periodic_ran)
    names = [c["DisplayName"] for c in qbo.objects("Customer").values() if c["DisplayName"].startswith("Jobbed ")]
    assert sorted(names) == [f"Jobbed {n}" for n in range(5)]
    assert not [j for j in jobs(db_url) if j[0] == "succeeded"]  # finished jobs are deleted, sweeps and all


async def test_a_dead_workers_job_is_closed_and_its_connection_synced(db_url, session, biz: Business, qbo: QBOSetup):
    # A worker killed mid-run: its row's heartbeat went stale, its job still says "doing" and holds the lock
    # every job of this connection needs. Left so, the connection would never sync again.
    lock = f"connection:{qbo.connection_id}"
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        dead = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 minute') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status, worker_id)"
            " VALUES (%s, %s, %s, %s, 'doing', %s)",
            (
                queue.QUEUE,
                queue.SYNC_TASK,
                lock,
                json.dumps({"connection_id": qbo.connection_id, "trigger": "schedule"}),
                dead,
            ),
        )
    await create_customer(session, biz.tenant.id, {"display_name": "Revived Rhea"})
    await session.commit()
    async with worker(qbo):
        await wait_until(lambda: _none_left(session, qbo))
    assert ("failed", lock, None) in jobs(db_url)  # closed, not run again: the ledger had the work
    assert [c for c in qbo.objects("Customer").values() if c["DisplayName"] == "Revived Rhea"]


async def _none_left(session, qbo: QBOSetup) -> bool:  # noqa: ANN001
    return await unsynced(session, qbo) == 0


async def test_failed_jobs_are_pruned_after_three_days(db_url, qbo: QBOSetup):
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        ids = []
        for _ in range(2):
            ids.append(
                conn.execute(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args)"
                    " VALUES (%s, %s, 'connection:0', '{}') RETURNING id",
                    (queue.QUEUE, queue.SYNC_TASK),
                ).fetchone()[0]
            )
            conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (ids[-1],))
            conn.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (ids[-1],))
        # Every job's events say when it changed; the first failed four days ago, the second just now.
        conn.execute("UPDATE procrastinate_events SET at = now() - interval '4 days' WHERE job_id = %s", (ids[0],))
    q = queue.JobQueue(qbo.env)
    async with q.app.open_async():
        await q.app.tasks["fieldhub.jobs.prune"].func(timestamp=0)
    with psycopg.connect(libpq_url(db_url)) as conn:
        left = [r[0] for r in conn.execute("SELECT id FROM procrastinate_jobs ORDER BY id").fetchall()]
    assert left == [ids[1]]
