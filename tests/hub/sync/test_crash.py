"""kill -9 during a backfill: a real `fieldhub sync now` process, killed at random moments and restarted.

The QuickBooks emulator runs on a real port in a thread of the test process, so it keeps its state
across every kill. In the end it must hold exactly one object per local record with every amount
equal to the cent, and the ledger must say everything is synced. bench/crash.py is the full size.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from bench import _faultkit as kit
from fieldhub.hub.sync.models import RunStatus, SyncRun
from fieldhub.settings import ProviderCredentials
from tests.conftest import Business

RECORDS = 180  # 3 items + 59 × (customer, invoice, payment)
KILLS = 4


@pytest.fixture
def qbo_port():
    with kit.emulator_on_port() as served:
        yield served


@pytest.mark.slow
async def test_kill_9_at_random_points_then_restart_ends_exactly_once(
    app, session, biz: Business, qbo_port, tmp_path
) -> None:
    emulator, url = qbo_port
    app.state.settings.providers["quickbooks"] = ProviderCredentials(base_url=url)
    connection_id = await kit.connect_quickbooks(app, biz.owner.email)
    made = await kit.make_records(session, biz.tenant.id, RECORDS)
    await session.close()  # nothing of this process may hold the database while the workers write

    rng = random.Random(4411)
    report = await kit.kill_and_restart(
        app.state.settings,
        app.state.sessionmaker,
        emulator,
        connection_id,
        kills=KILLS,
        max_requests=6,  # a whole run is about ten requests (batches of 30)
        rng=rng,
        log_path=tmp_path / "sync.log",
    )
    log = (tmp_path / "sync.log").read_text(errors="replace")
    assert report.kills >= KILLS - 1, (report, log[-3000:])  # the kills landed while a process was running
    found = await kit.audit(app.state.sessionmaker, emulator, connection_id, kit.US_REALM)
    assert found.records == made
    assert found.clean, (found.figures(), found.details[:20], report, log[-3000:])
    # Every process killed mid-run left its run "running"; the runs after it closed them as failed: the history
    # tells the truth. (A kill can also land after a run committed its success, while the process exits.)
    async with app.state.sessionmaker() as s:
        statuses = list(
            await s.scalars(select(SyncRun.status).where(SyncRun.connection_id == connection_id).order_by(SyncRun.id))
        )
    assert RunStatus.RUNNING not in statuses, statuses
    assert report.runs_cut >= 1, report  # some kill cut a run, so the next line checks something
    assert statuses.count(RunStatus.FAILED) >= report.runs_cut and statuses[-1] == RunStatus.SUCCESS


async def test_a_killed_holders_lease_is_taken_at_once_a_live_or_foreign_one_is_not(session, qbo) -> None:
    import asyncio
    import sys

    from fieldhub.hub.processes import MACHINE, PROCESS
    from fieldhub.hub.sync.engine import acquire_lease

    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # reaped: what a supervisor sees after kill -9 and before the restart
    cid = qbo.connection_id
    assert await acquire_lease(session, cid, f"{MACHINE}:{gone.pid}:run1", seconds=600)
    assert await acquire_lease(session, cid, f"{PROCESS}:run2", seconds=600)  # the dead holder's lease: taken
    assert not await acquire_lease(session, cid, f"{PROCESS}:run3", seconds=600)  # a live holder (this process)
    sleeper = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    try:
        assert await acquire_lease(session, cid, f"{PROCESS}:run2", seconds=-1)  # run2 lets it lapse
        assert await acquire_lease(session, cid, f"{MACHINE}:{sleeper.pid}:run4", seconds=600)
        assert not await acquire_lease(session, cid, f"{PROCESS}:run5", seconds=600)  # alive elsewhere here
    finally:
        sleeper.kill()
        await sleeper.wait()
    assert await acquire_lease(session, cid, f"{PROCESS}:run5", seconds=600)  # and once it is gone, taken
    # Another machine (or PID namespace) can't be judged from here: its lease is left to expire.
    assert await acquire_lease(session, cid, f"{PROCESS}:run5", seconds=-1)
    assert await acquire_lease(session, cid, f"other-host:4026531836:{gone.pid}:run6", seconds=600)
    assert not await acquire_lease(session, cid, f"{PROCESS}:run7", seconds=600)
