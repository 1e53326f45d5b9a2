"""Recovery after a crash (issue 14 item 5): a run keeps its own lease however long a request takes, a run a kill
cut is closed and resumed at start-up, and QuickBooks' echoes of fieldhub's own writes cost no request."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.engine import acquire_lease
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus, SyncLease
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup


async def test_issue14_item5_single_worker_keeps_its_lease_through_slow_batches(
    session, biz: Business, qbo: QBOSetup
) -> None:
    """Each batch takes longer than the whole lease: the run must renew it while it waits, not only between
    chunks. Before, the lease lapsed mid-chunk, the process's own webhook handler (polling for the lease) took
    it, and the run ended `lease_lost` with a single worker."""
    for n in range(35):  # two batches (30, then 5), each slower than the whole lease
        await create_customer(session, biz.tenant.id, {"display_name": f"Slow {n:03d}"})
    await session.commit()
    # A 4 s lease renewed every third of its life leaves 2.7 s of slack for a renewal on a loaded CI machine (with
    # a 2 s lease a renewal starved by the load let the poller in: flaky, not wrong).
    qbo.emulator.faults.append(FaultRule(kind="latency", path="/batch", probability=1.0, delay=4.2))

    taken: list[str] = []
    stop = asyncio.Event()

    async def webhook_polling_for_the_lease() -> None:
        """What the process's webhook handler did: ask for the lease every 50 ms once the run has it."""
        while not stop.is_set():
            async with qbo.env.sessionmaker() as s:
                held = await s.scalar(select(SyncLease.holder).where(SyncLease.connection_id == qbo.connection_id))
                if held is not None and await acquire_lease(s, qbo.connection_id, "webhook", seconds=0.05):
                    taken.append(held)
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(webhook_polling_for_the_lease())
    try:
        run = await qbo.sync(lease_seconds=4.0, client_options={"timeout": 8.0})
    finally:
        stop.set()
        await poller
    assert taken == []
    assert run is not None
    assert [e["code"] for e in run.errors] == [], run.errors
    assert run.status == RunStatus.SUCCESS and run.created == 35
    rows = list(await session.scalars(select(LedgerRow.state).where(LedgerRow.connection_id == qbo.connection_id)))
    assert rows.count(LedgerState.SYNCED) == 35


async def test_issue14_item5_a_cut_run_is_closed_and_resumed_at_start_up_with_auto_sync_off(
    session, biz: Business, qbo: QBOSetup
) -> None:
    """A Sync Now that kill -9 cut: its run row says "running" and its lease names the dead process. With
    Auto-Sync off nothing ran it again until someone pressed Sync Now; now the next start-up closes the run as
    interrupted and runs its work."""
    import sys

    from fieldhub.hub.connections.models import Connection
    from fieldhub.hub.processes import MACHINE
    from fieldhub.hub.sync.dispatch import Dispatcher
    from fieldhub.hub.sync.models import SyncRun

    connection = await session.get(Connection, qbo.connection_id)
    connection.auto_sync = False
    for n in range(3):
        await create_customer(session, biz.tenant.id, {"display_name": f"Cut {n}"})
    await session.commit()
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()  # the killed `fieldhub serve`, reaped by its supervisor before the restart
    assert await acquire_lease(session, qbo.connection_id, f"{MACHINE}:{dead.pid}:run", seconds=600)
    cut = SyncRun(
        tenant_id=biz.tenant.id, connection_id=qbo.connection_id, trigger="manual", direction="export", entity=""
    )
    session.add(cut)
    await session.commit()
    cut_id = cut.id

    dispatcher = Dispatcher(qbo.env, sweep_seconds=0.1, client_options={"timeout": 5.0})
    await dispatcher.start()  # the restart
    try:
        for _ in range(200):
            states = list(
                await session.scalars(select(LedgerRow.state).where(LedgerRow.connection_id == qbo.connection_id))
            )
            await session.commit()
            if states and set(states) == {LedgerState.SYNCED}:
                break
            await asyncio.sleep(0.05)
        await dispatcher.idle()
    finally:
        await dispatcher.stop()
    runs = list(
        await session.scalars(
            select(SyncRun)
            .where(SyncRun.connection_id == qbo.connection_id)
            .order_by(SyncRun.id)
            .execution_options(populate_existing=True)
        )
    )
    assert runs[0].id == cut_id and runs[0].status == RunStatus.FAILED and runs[0].finished_at is not None
    assert [e["code"] for e in runs[0].errors] == ["interrupted"]
    assert [(r.trigger, r.status, r.created) for r in runs[1:]] == [("resume", RunStatus.SUCCESS, 3)]
    assert sorted(c["DisplayName"] for c in qbo.objects("Customer").values() if c["DisplayName"].startswith("Cut")) == [
        "Cut 0",
        "Cut 1",
        "Cut 2",
    ]


@pytest.fixture
def qbo_delivering():
    """The QuickBooks emulator on a port, delivering its webhooks to a hub that will serve on `port`."""
    from bench import _faultkit as kit

    port = kit.free_port()
    with kit.emulator_on_port(hub_url=f"http://127.0.0.1:{port}", deliver_webhooks=True) as (emulator, url):
        yield emulator, url, port


@pytest.mark.slow
async def test_issue14_item5_kill_9_during_an_auto_sync_backlog_then_every_record_once_and_no_echo_read(
    app, session, biz: Business, qbo_delivering, tmp_path
) -> None:
    """bench/recovery.py at a fast size: `fieldhub serve` (Auto-Sync on, one embedded worker) SIGKILLed during the
    backlog and started again. After the last start every record reaches the emulator exactly once, within 30 s,
    no run is left "running", and no webhook echo of fieldhub's own writes cost a read."""
    import random

    from bench import _faultkit as kit
    from bench import recovery
    from fieldhub.settings import ProviderCredentials

    emulator, url, port = qbo_delivering
    app.state.settings.providers["quickbooks"] = ProviderCredentials(base_url=url)
    emulator.oauth.rules.redirect_uris.append(app.state.settings.base_url + "/oauth/callback")
    connection_id = await kit.connect_quickbooks(app, biz.owner.email)
    made = await kit.make_records(session, biz.tenant.id, 60)
    await session.close()  # nothing of this process may hold the database while the hub writes
    # A tenth of a second a batch, so a run outlasts the wait for its kill point on a busy machine.
    emulator.faults.append(FaultRule(kind="latency", path="/batch", probability=1.0, delay=0.1))

    report = await recovery.kill_during_backlog(
        app.state.settings,
        app.state.sessionmaker,
        emulator,
        connection_id,
        biz.tenant.id,
        port=port,
        kills=3,
        max_requests=4,  # the whole backlog is about six batches
        rng=random.Random(1405),
        log_path=tmp_path / "serve.log",
        emulator_url=url,
        deadline=60,
        inbox_wait=8,
    )
    log = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
    assert report["kills"] == 3 and report["runs_cut"] >= 1, (report, log)
    assert report["catch_up_seconds"] is not None and report["catch_up_seconds"] < 30, (report, log)
    assert report["runs_left_running"] == 0, report
    found = await kit.audit(app.state.sessionmaker, emulator, connection_id, kit.US_REALM)
    assert found.records == made and found.clean, (found.figures(), found.details[:10], log)
    counts = recovery.echo_counts(emulator)
    delivered = [d for d in emulator.webhooks.deliveries if d.status == "delivered"]
    assert delivered, (report, [d.responses for d in emulator.webhooks.deliveries])
    assert counts["echo_gets"] == 0 and counts["stale_token_rereads"] == 0, (counts, report)


async def test_issue14_item5_with_the_batch_budget_spent_records_go_one_by_one_not_a_minute_later(
    session, biz: Business, qbo: QBOSetup
) -> None:
    """A catch-up after kills re-sends what they cut, and the company's 40 batches a minute run out: the rest
    waited up to a minute for a batch slot (the recovery benchmark's catch-up took 113 s in one run). Its 500
    requests a minute were not spent, so the records go one by one, creates under their own requestid."""
    from fieldhub.hub.ratelimit import RateLimiter

    for n in range(4):
        await create_customer(session, biz.tenant.id, {"display_name": f"Budget {n}"})
    await session.commit()
    limiter = RateLimiter(qbo.env.sessionmaker)
    for _ in range(40):  # the minute's batch slots, spent by runs before a crash
        lease = await limiter.acquire("quickbooks", f"{qbo.realm}:batch", per_minute=40, concurrency=None)
        await limiter.release(lease)
    mark = qbo.emulator.requests[-1].seq
    started = asyncio.get_running_loop().time()
    run = await qbo.sync()
    assert run.status == RunStatus.SUCCESS and run.created == 4, run.errors
    assert asyncio.get_running_loop().time() - started < 10
    sent = [(r.method, r.path.rsplit("/", 1)[-1]) for r in qbo.api_requests(mark) if r.method == "POST"]
    assert sent == [("POST", "customer")] * 4
    names = sorted(c["DisplayName"] for c in qbo.objects("Customer").values() if c["DisplayName"].startswith("Budget"))
    assert names == ["Budget 0", "Budget 1", "Budget 2", "Budget 3"]
