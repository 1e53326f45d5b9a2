"""calendar: job change → event at the Google Calendar emulator, and event change there → job moved here.

The hub app is built as `fieldhub serve` builds it, with the Google Calendar emulator mounted in-process and its
watch channels' POSTs delivered into the app (ASGI, no socket), and the embedded dispatcher started. Google
Calendar is connected through the consent page, a new "fieldhub jobs" calendar picked (which opens the watch
channel) and the connection set two-way.

- job → event: a job is created or rescheduled and committed; the commit wakes the dispatcher, whose run sends
  the event. From just before the commit to the emulator storing the event at the job's time.
- event → job (push): the event is moved at the emulator as its user would; Google's notice reaches
  /calendar/push, which wakes the incremental read that moves the job. From the move at the emulator to the
  job's move committed here (its "calendar_moved" history event).
- crash (with --set crash_jobs=500): 500 jobs exported by `fieldhub sync now` processes SIGKILLed four times at
  random points, then finished; events per job counted at the emulator (the test is the small version).

Targets: p99 ≤ 2 s both ways (with push).
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench import _calendar as cal  # noqa: E402
from bench import _faultkit as kit  # noqa: E402
from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.capabilities.calendar import push, service  # noqa: E402
from fieldhub.capabilities.calendar.settings import CalendarSettings  # noqa: E402
from fieldhub.core import events as domain  # noqa: E402
from fieldhub.core.accounts import service as accounts  # noqa: E402
from fieldhub.core.accounts.models import Role  # noqa: E402
from fieldhub.core.jobs.models import Job  # noqa: E402
from fieldhub.core.jobs.service import reschedule_job  # noqa: E402
from fieldhub.hub.connections.models import Connection  # noqa: E402
from fieldhub.hub.oauth.env import env_for  # noqa: E402
from fieldhub.hub.sync.dispatch import Dispatcher  # noqa: E402
from fieldhub.providers.google_calendar.calendar import MARK  # noqa: E402
from fieldhub.settings import Settings  # noqa: E402


async def _business(env: Any) -> tuple[int, str, int]:
    async with env.sessionmaker() as session:
        tenant = await accounts.create_tenant(session, name="Bench Calendar", slug="bench-calendar")
        owner = await accounts.create_user(
            session,
            tenant=tenant,
            email="owner@bench-calendar.test",
            name="Owner",
            role=Role.OWNER,
            password=kit.PASSWORD,
        )
        tech = await accounts.create_user(
            session,
            tenant=tenant,
            email="tech@bench-calendar.test",
            name="Tess Tech",
            role=Role.TECHNICIAN,
            password=kit.PASSWORD,
        )
        await session.commit()
        return tenant.id, owner.email, tech.id


async def _latency(db: str, changes: int, moves: int) -> dict[str, Any]:
    from fieldhub.main import create_app

    settings = Settings(
        mode="test",
        database_url=db,
        encryption_keys=_qbo.new_key(),
        public_url="http://testserver",
        log_level="ERROR",
        embedded_workers=0,
    )
    app = create_app(settings)
    env = env_for(app)
    emulator = app.state.endpoints.emulators["google_calendar"]
    emulator.rate_rules.clear()
    emulator.webhook_transport = httpx.ASGITransport(app=app)
    stored: dict[tuple[str, str], float] = {}
    original = emulator._store

    def store(cid: str, event_id: str, body: dict[str, Any], *, existing: dict[str, Any] | None) -> dict[str, Any]:
        event = original(cid, event_id, body, existing=existing)
        job = ((event.get("extendedProperties") or {}).get("private") or {}).get(MARK)
        if job:
            stored[(job, event["start"]["dateTime"])] = time.perf_counter()
        return event

    emulator._store = store  # type: ignore[method-assign]
    moved: dict[int, float] = {}

    async def on_event(session: Any, event: domain.DomainEvent) -> None:
        if event.entity == "job" and event.kind == "calendar_moved":
            # Committed right after: the listener runs inside the read's transaction, which commits at once.
            moved[event.record_id] = time.perf_counter()

    domain.subscribe(on_event)
    tenant_id, email, tech_id = await _business(env)
    connection_id = await cal.connect_google(app, email)
    job_ids = await _make(env, tenant_id, tech_id, 1)
    async with env.sessionmaker() as session:
        conn = await session.get(Connection, connection_id)
        assert conn is not None
        s = CalendarSettings.of(conn)
        s.direction, s.interval_minutes = "two_way", 60  # the poll stays out of the way: push is timed
        s.save(conn)
        await service.choose_calendar(session, env, conn, "", new=True)
        await session.commit()
    await push.ensure_watching(env, connection_id)
    dispatcher = Dispatcher(env, workers=1)
    await dispatcher.start()
    out: list[float] = []
    back: list[float] = []
    started = time.perf_counter()
    try:
        await dispatcher.idle(60)
        # job → event
        async with env.sessionmaker() as session:
            for n in range(changes):
                if n % 2 == 0:
                    job_id = (await _make(env, tenant_id, tech_id, 1, offset=n))[0]
                    job = await session.get(Job, job_id)
                else:
                    job = await session.get(Job, job_ids[0])
                    assert job is not None
                    await reschedule_job(
                        session,
                        tenant_id,
                        job.id,
                        job.scheduled_start + timedelta(hours=1),
                        job.scheduled_end + timedelta(hours=1),
                    )
                assert job is not None
                want = (str(job.id), job.scheduled_start.astimezone(UTC))
                t0 = time.perf_counter()
                await session.commit()
                out.append(await _arrival(stored, want, t0))
                session.expunge_all()
        await dispatcher.idle(60)
        # event → job, pushed
        control = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://gcal")
        calendar = CalendarSettings.of(await _conn(env, connection_id)).calendar_id
        async with env.sessionmaker() as session:
            rows = list((await session.execute(_ledger_ids(connection_id))).all())
        rng = random.Random(7)
        for n in range(moves):
            job_id, event_id = rows[n % len(rows)]
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30 + n, hours=rng.randint(0, 8))
            moved.pop(job_id, None)
            t0 = time.perf_counter()
            reply = await control.patch(
                f"/_emulator/calendar/calendars/{calendar}/events/{event_id}",
                json={
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                },
            )
            assert reply.status_code == 200, reply.text
            deadline = time.perf_counter() + 30
            while job_id not in moved and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            back.append((moved.get(job_id, float("inf")) - t0) * 1000)
            await push.idle(30)
            await dispatcher.idle(30)
        await control.aclose()
    finally:
        await dispatcher.stop()
        domain.unsubscribe(on_event)
        await env.engine.dispose()
    per_job = cal.events_by_job(emulator)
    return {
        "job_to_event_ms_p50": round(statistics.median(out), 1),
        "job_to_event_ms_p99": round(_qbo.percentile(out, 0.99), 1),
        "job_to_event_ms_max": round(max(out), 1),
        "event_to_job_ms_p50": round(statistics.median(back), 1),
        "event_to_job_ms_p99": round(_qbo.percentile(back, 0.99), 1),
        "event_to_job_ms_max": round(max(back), 1),
        "job_changes": changes,
        "event_moves": moves,
        "jobs_with_more_than_one_event": sum(1 for v in per_job.values() if v > 1),
        "push_notices": sum(1 for d in emulator.deliveries if d["state"] == "exists"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ledger_ids(connection_id: int) -> Any:
    from sqlalchemy import select

    from fieldhub.hub.sync.models import LedgerRow

    return (
        select(LedgerRow.local_id, LedgerRow.remote_id)
        .where(LedgerRow.connection_id == connection_id, LedgerRow.remote_id.is_not(None))
        .order_by(LedgerRow.id)
    )


async def _conn(env: Any, connection_id: int) -> Connection:
    async with env.sessionmaker() as session:
        conn = await session.get(Connection, connection_id)
        assert conn is not None
        return conn


async def _make(env: Any, tenant_id: int, tech_id: int, count: int, offset: int = 0) -> list[int]:
    async with env.sessionmaker() as session:
        from fieldhub.core.customers.service import create_customer
        from fieldhub.core.jobs.service import create_job

        customer = await create_customer(session, tenant_id, {"display_name": f"Customer {offset}"})
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1, hours=3 * offset)
        ids = []
        for n in range(count):
            job = await create_job(
                session,
                tenant_id,
                {
                    "customer_id": customer.id,
                    "title": f"Job {offset}.{n}",
                    "scheduled_start": base + timedelta(hours=n),
                    "scheduled_end": base + timedelta(hours=n + 1),
                    "technician_ids": [tech_id],
                },
            )
            ids.append(job.id)
        await session.commit()
        return ids


async def _arrival(stored: dict[tuple[str, str], float], want: tuple[str, datetime], t0: float) -> float:
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        for (job, start), at in stored.items():
            if job == want[0] and at >= t0 and datetime.fromisoformat(start).astimezone(UTC) == want[1]:
                return (at - t0) * 1000
        await asyncio.sleep(0.002)
    return float("inf")


async def _crash(db: str, jobs: int, kills: int) -> dict[str, Any]:
    """The test's kill -9 run at full size (tests/capabilities/calendar/test_crash.py)."""
    from sqlalchemy import func, select

    from fieldhub.hub.sync.models import LedgerRow, LedgerState
    from fieldhub.main import create_app
    from fieldhub.settings import ProviderCredentials

    with cal.gcal_on_port() as (emulator, url):
        settings = Settings(
            mode="test",
            database_url=db,
            encryption_keys=_qbo.new_key(),
            public_url="http://testserver",
            log_level="ERROR",
            embedded_workers=0,
            providers={"google_calendar": ProviderCredentials(base_url=url)},
        )
        app = create_app(settings)
        env = env_for(app)
        tenant_id, email, tech_id = await _business(env)
        connection_id = await cal.connect_google(app, email)
        async with env.sessionmaker() as session:
            await cal.make_jobs(session, tenant_id, tech_id, jobs)
            conn = await session.get(Connection, connection_id)
            assert conn is not None
            await service.choose_calendar(session, env, conn, "", new=True)
            await session.commit()

        async def unsynced() -> int:
            async with env.sessionmaker() as s:
                query = (
                    select(func.count())
                    .select_from(LedgerRow)
                    .where(LedgerRow.connection_id == connection_id, LedgerRow.state != LedgerState.SYNCED)
                )
                return int(await s.scalar(query) or 0)

        proc_env = kit.process_env(settings, FIELDHUB_PROVIDERS__GOOGLE_CALENDAR__BASE_URL=url)
        command = kit.fieldhub_command("sync", "now", "--connection", str(connection_id))
        rng = random.Random(1717)
        killed = 0
        started = time.perf_counter()
        for _ in range(kills):
            target = (emulator.requests[-1].seq if emulator.requests else 0) + rng.randint(
                20, max(21, jobs // (kills + 1))
            )
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=kit.ROOT,
                env=proc_env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            while (emulator.requests[-1].seq if emulator.requests else 0) < target and proc.returncode is None:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, 0.02))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                killed += 1
        finals = 0
        while await unsynced() and finals < 5:
            proc = await asyncio.create_subprocess_exec(
                *command,
                cwd=kit.ROOT,
                env=proc_env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()
            finals += 1
        per_job = cal.events_by_job(emulator)
        left = await unsynced()
        await env.engine.dispose()
        return {
            "crash_jobs": jobs,
            "crash_kills": killed,
            "crash_final_runs": finals,
            "crash_jobs_with_one_event": sum(1 for v in per_job.values() if v == 1),
            "crash_jobs_with_more_than_one_event": sum(1 for v in per_job.values() if v > 1),
            "crash_jobs_without_event": jobs - len(per_job),
            "crash_replayed_ids_409": sum(1 for r in emulator.requests if r.status == 409),
            "crash_unsynced_after": left,
            "crash_seconds": round(time.perf_counter() - started, 1),
        }


def run(args: dict[str, Any]) -> dict[str, Any]:
    changes = int(args.get("changes", 200))
    moves = int(args.get("moves", 100))
    crash_jobs = int(args.get("crash_jobs", 0))
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "calendar") as db:
        figures = runtime.run(_latency(db, changes, moves))
    if crash_jobs:
        with _qbo.scratch_database(args.get("database_url", ""), "calendar_crash") as db:
            figures |= runtime.run(_crash(db, crash_jobs, int(args.get("kills", 4))))
    return {
        "benchmark": "calendar",
        "database": _qbo.backend(db),
        "emulator": "Google Calendar, in-process, rate rules off; watch notices delivered into the app (ASGI)",
        "trigger_out": "commit wakes the embedded dispatcher (after_commit hook)",
        "trigger_in": "Google watch notice -> /calendar/push -> incremental events.list (syncToken)",
        **figures,
        "target_ms_p99": 2000,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
