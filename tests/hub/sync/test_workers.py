"""Two `fieldhub worker` OS processes on one PostgreSQL never sync the same connection at once.

Six businesses each connect their own QuickBooks company (a realm each) on one emulator served on a
real port, and each has pending work. Two worker processes race for it. The emulator's request log
says how many requests each realm had open at any moment: one connection's run is sequential, so a
second worker on the same connection would show as two. Everything must also land exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bench import _faultkit as kit
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.engine import BATCHES_IN_FLIGHT
from fieldhub.settings import ProviderCredentials

CONNECTIONS = 6
CUSTOMERS = 4  # per business: 3 items + 4 × (customer, invoice, payment) = 15 records


@pytest.fixture
def qbo_port():
    with kit.emulator_on_port() as served:
        yield served


@pytest.mark.slow
async def test_two_worker_processes_never_sync_one_connection_at_once(app, db_url, qbo_port, tmp_path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out workers run on PostgreSQL; SQLite serves one process (embedded workers)")
    emulator, url = qbo_port
    app.state.settings.providers["quickbooks"] = ProviderCredentials(base_url=url)
    realms = kit.add_companies(emulator, CONNECTIONS)
    connections: dict[int, str] = {}
    owners = []
    for n, realm in enumerate(realms):
        async with app.state.sessionmaker() as session:
            tenant_id, email = await kit.make_owner(session, f"w{n}")
        connections[await kit.connect_quickbooks(app, email, account=realm)] = realm
        owners.append(tenant_id)
    env = kit.process_env(app.state.settings, FIELDHUB_LOG_LEVEL="INFO")
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = []
    for path in logs:
        with path.open("wb") as out:
            workers.append(
                await asyncio.create_subprocess_exec(
                    *kit.fieldhub_command("worker", "--concurrency", "2"), cwd=kit.ROOT, env=env, stdout=out, stderr=out
                )
            )
    # The race is only real once both are polling: the work appears after both said so. Each request
    # takes 20 ms, so a run outlasts a poll and neither worker (2 connections at a time) can take all six.
    await _started(logs, workers)
    emulator.faults.append(FaultRule(kind="latency", delay=0.02))
    made = 0
    for n, tenant_id in enumerate(owners):
        async with app.state.sessionmaker() as session:
            made += await kit.make_records(session, tenant_id, 3 + 3 * CUSTOMERS, tag=f"W{n} ")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            left = sum([await kit._unsynced(app.state.sessionmaker, cid) for cid in connections])
            if left == 0 or any(w.returncode is not None for w in workers):
                break
            await asyncio.sleep(0.5)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
    text = [p.read_text(errors="replace") for p in logs]
    assert all(w.returncode == -9 for w in workers), [t[-2000:] for t in text]  # both were still serving

    # Per realm, requests from one process at a time: a worker has up to BATCHES_IN_FLIGHT of its own out.
    requests = list(emulator.requests)
    agents = {kit.user_agent(r) for r in requests if kit.realm_of(r.path)}
    assert len({a for a in agents if a.startswith("fieldhub/")}) == 2, agents  # both workers sent some
    senders = kit.max_in_flight(requests, by=kit.user_agent)
    assert {realm: senders.get(realm) for realm in realms} == dict.fromkeys(realms, 1), senders
    peaks = kit.max_in_flight(requests)
    assert all(1 <= peaks[realm] <= BATCHES_IN_FLIGHT for realm in realms), peaks
    # Both processes did part of the work: the race was real.
    runs = [t.count("sync.run.finished") for t in text]
    assert all(runs), (runs, [t[-2000:] for t in text])
    total = 0
    for cid, realm in connections.items():
        found = await kit.audit(app.state.sessionmaker, emulator, cid, realm)
        assert found.clean, (realm, found.figures(), found.details[:10])
        total += found.records
    assert total == made


def test_the_log_check_tells_two_senders_on_one_realm_from_two_batches_of_one() -> None:
    from fieldhub.hub.emulator.core import LoggedRequest

    one, two = {"user-agent": "fieldhub/0 (process 1)"}, {"user-agent": "fieldhub/0 (process 2)"}
    batch = "/v3/company/123/batch"
    log = [
        LoggedRequest(1, "POST", batch, "", one, "", status=200, started=1.0, finished=2.0),
        LoggedRequest(2, "POST", batch, "", one, "", status=200, started=1.5, finished=2.5),  # its own second
        LoggedRequest(3, "POST", batch, "", two, "", status=200, started=2.5, finished=3.0),  # after: touching
        LoggedRequest(4, "POST", "/v3/company/456/batch", "", two, "", status=200, started=1.0, finished=3.0),
    ]
    assert kit.max_in_flight(log, by=kit.user_agent) == {"123": 1, "456": 1}
    assert kit.max_in_flight(log) == {"123": 2, "456": 1}
    log.append(LoggedRequest(5, "POST", batch, "", two, "", status=200, started=2.4, finished=2.6))
    assert kit.max_in_flight(log, by=kit.user_agent)["123"] == 2


async def _started(logs, workers, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all("sync.worker.started" in p.read_text(errors="replace") for p in logs):
            return
        assert all(w.returncode is None for w in workers), [p.read_text(errors="replace")[-2000:] for p in logs]
        await asyncio.sleep(0.1)
    raise AssertionError("the workers did not start")


@pytest.mark.slow
async def test_sigterm_stops_a_worker_mid_run_within_its_grace(app, db_url, qbo_port, tmp_path) -> None:
    """A deploy's SIGTERM: the worker gives its running job SHUTDOWN_SECONDS, then cancels it and exits,
    rather than waiting out a run stuck on a slow provider. The next run closes the cut run's row."""
    import signal

    from sqlalchemy import select

    from fieldhub.hub.oauth.env import env_for
    from fieldhub.hub.sync.engine import sync_connection
    from fieldhub.hub.sync.models import RunStatus, SyncRun
    from fieldhub.hub.sync.queue import SHUTDOWN_SECONDS

    if not db_url.startswith("postgresql"):
        pytest.skip("`fieldhub worker` runs on PostgreSQL")
    emulator, url = qbo_port
    app.state.settings.providers["quickbooks"] = ProviderCredentials(base_url=url)
    async with app.state.sessionmaker() as session:
        tenant_id, email = await kit.make_owner(session, "term")
    connection_id = await kit.connect_quickbooks(app, email)
    emulator.faults.append(FaultRule(kind="latency", delay=120.0, path="/batch$"))  # QuickBooks hangs
    async with app.state.sessionmaker() as session:
        await kit.make_records(session, tenant_id, 6, tag="T ")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            *kit.fieldhub_command("worker"),
            cwd=kit.ROOT,
            env=kit.process_env(app.state.settings, FIELDHUB_LOG_LEVEL="INFO"),
            stdout=out,
            stderr=out,
        )
    try:
        running = select(SyncRun.id).where(SyncRun.connection_id == connection_id, SyncRun.status == RunStatus.RUNNING)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the sweep finds the work and a run starts, then hangs on QuickBooks
            async with app.state.sessionmaker() as session:
                if await session.scalar(running) is not None:
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(log.read_text(errors="replace")[-2000:])
        await asyncio.sleep(1.0)
        worker.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        await asyncio.wait_for(worker.wait(), SHUTDOWN_SECONDS + 20)
        took = time.monotonic() - stopped
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert SHUTDOWN_SECONDS - 1 <= took <= SHUTDOWN_SECONDS + 15, (took, log.read_text(errors="replace")[-2000:])
    # QuickBooks answers again: the next run sends everything and closes the cut run's row.
    emulator.faults.clear()
    run = await sync_connection(env_for(app), connection_id, trigger="manual")
    assert run.status == RunStatus.SUCCESS, run.errors
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(SyncRun.status, SyncRun.errors).order_by(SyncRun.id))).all()
    assert [(r.status, [e["code"] for e in r.errors]) for r in rows] == [("failed", ["interrupted"]), ("success", [])]
    assert await kit._unsynced(app.state.sessionmaker, connection_id) == 0
