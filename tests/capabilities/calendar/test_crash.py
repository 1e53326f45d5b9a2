"""kill -9 during an export of jobs: exactly one event per job at the emulator (issue 17; 500 in bench/calendar.py).

`fieldhub sync now` runs in its own OS process against the Google Calendar emulator on a real port (a thread of
this process, so its state outlives the kills), and is SIGKILLed after a random number of its requests, four
times (three here); fresh processes then finish from the ledger alone.
"""

from __future__ import annotations

import asyncio
import random
import signal

import pytest
from sqlalchemy import func, select

from bench import _calendar as cal
from bench import _faultkit as kit
from fieldhub.capabilities.calendar import service
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.settings import ProviderCredentials

JOBS = 120  # the full 500: `fieldhub bench calendar --json --set crash_jobs=500`
KILLS = 3


@pytest.fixture
def gcal_port():
    with cal.gcal_on_port() as served:
        yield served


async def _unsynced(sessionmaker, connection_id: int) -> int:
    async with sessionmaker() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(LedgerRow)
                .where(LedgerRow.connection_id == connection_id, LedgerRow.state != LedgerState.SYNCED)
            )
            or 0
        )


@pytest.mark.slow
async def test_issue17_kill_9_during_an_export_of_jobs_leaves_one_event_per_job(
    app, session, biz, gcal_port, tmp_path, db_url
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("one backend is enough for a crash of the process; the ledger's writes are the same SQL")
    emulator, url = gcal_port
    app.state.settings.providers["google_calendar"] = ProviderCredentials(base_url=url)
    connection_id = await cal.connect_google(app, biz.owner.email)
    await cal.make_jobs(session, biz.tenant.id, biz.tech.id, JOBS)
    conn = await session.get(Connection, connection_id)
    await service.choose_calendar(session, env_for(app), conn, "", new=True)  # puts the 500 jobs in the ledger
    await session.commit()
    await session.close()
    assert await _unsynced(app.state.sessionmaker, connection_id) == JOBS

    env = kit.process_env(app.state.settings, FIELDHUB_PROVIDERS__GOOGLE_CALENDAR__BASE_URL=url)
    command = kit.fieldhub_command("sync", "now", "--connection", str(connection_id))
    rng = random.Random(1717)
    kills = 0
    with (tmp_path / "sync.log").open("ab") as out:
        for _ in range(KILLS):
            target = (emulator.requests[-1].seq if emulator.requests else 0) + rng.randint(5, 30)
            proc = await asyncio.create_subprocess_exec(*command, cwd=kit.ROOT, env=env, stdout=out, stderr=out)
            while (emulator.requests[-1].seq if emulator.requests else 0) < target and proc.returncode is None:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, 0.02))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
        for _ in range(5):
            proc = await asyncio.create_subprocess_exec(*command, cwd=kit.ROOT, env=env, stdout=out, stderr=out)
            await asyncio.wait_for(proc.wait(), timeout=600)
            if await _unsynced(app.state.sessionmaker, connection_id) == 0:
                break
    log = (tmp_path / "sync.log").read_text(errors="replace")
    assert kills >= KILLS - 1, log[-3000:]
    per_job = cal.events_by_job(emulator)
    assert len(per_job) == JOBS and set(per_job.values()) == {1}, log[-3000:]
    assert await _unsynced(app.state.sessionmaker, connection_id) == 0
    duplicates = [r for r in emulator.requests if r.status == 409]
    assert duplicates or kills, "a kill after Google committed shows as a replayed id (409)"
