"""Dispatch: commits wake the embedded worker; Sync Now and Retry; two workers never run one connection at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.dispatch import Dispatcher, request_sync
from fieldhub.hub.sync.engine import LeaseHeld, acquire_lease, sync_connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup


async def unsynced(session, qbo: QBOSetup) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(LedgerRow)
        .where(LedgerRow.connection_id == qbo.connection_id, LedgerRow.state != LedgerState.SYNCED)
    )
    await session.commit()
    return int(count)


async def test_a_commit_wakes_the_embedded_worker(session, biz: Business, qbo: QBOSetup):
    dispatcher = Dispatcher(qbo.env, sweep_seconds=0.2)
    await dispatcher.start()
    try:
        await create_customer(session, biz.tenant.id, {"display_name": "Woken Wanda"})
        await session.commit()
        for _ in range(200):
            if await unsynced(session, qbo) == 0 and dispatcher.runs:
                break
            await asyncio.sleep(0.05)
        assert await unsynced(session, qbo) == 0
        assert any(c["DisplayName"] == "Woken Wanda" for c in qbo.objects("Customer").values())
    finally:
        await dispatcher.stop()


async def test_auto_sync_off_leaves_commits_for_sync_now(session, biz: Business, qbo: QBOSetup):
    from fieldhub.hub.connections.models import Connection

    connection = await session.get(Connection, qbo.connection_id)
    connection.auto_sync = False
    await session.commit()
    dispatcher = Dispatcher(qbo.env, sweep_seconds=0.1)
    await dispatcher.start()
    try:
        await create_customer(session, biz.tenant.id, {"display_name": "Quiet Quentin"})
        await session.commit()
        await asyncio.sleep(0.5)  # the commit's wake-up and a few sweeps go by
        await dispatcher.idle()
        assert await unsynced(session, qbo) == 1
        assert not any(c["DisplayName"] == "Quiet Quentin" for c in qbo.objects("Customer").values())

        await request_sync(session, qbo.connection_id)  # Sync Now still works with Auto-Sync off
        await session.commit()
        for _ in range(200):
            if await unsynced(session, qbo) == 0:
                break
            await asyncio.sleep(0.05)
        assert any(c["DisplayName"] == "Quiet Quentin" for c in qbo.objects("Customer").values())
    finally:
        await dispatcher.stop()


async def test_sync_now_makes_backed_off_rows_due(session, biz: Business, qbo: QBOSetup):
    from datetime import timedelta

    from fieldhub.db import utcnow

    await create_customer(session, biz.tenant.id, {"display_name": "Later Larry"})
    await session.commit()
    row = await session.scalar(select(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id))
    row.next_attempt_at = utcnow() + timedelta(hours=1)
    await session.commit()
    assert await qbo.sync() is None  # nothing due: nothing tried, no run written
    assert await request_sync(session, qbo.connection_id, entity="customer") == 1
    await session.commit()
    assert (await qbo.sync()).created == 1


async def test_lease_excludes_a_second_holder_until_it_expires(session, qbo: QBOSetup):
    assert await acquire_lease(session, qbo.connection_id, "worker-a", seconds=60)
    assert not await acquire_lease(session, qbo.connection_id, "worker-b", seconds=60)
    try:
        await sync_connection(qbo.env, qbo.connection_id, trigger="manual", holder="worker-b")
        raise AssertionError("a second worker ran a held connection")
    except LeaseHeld:
        pass
    assert await acquire_lease(session, qbo.connection_id, "worker-a", seconds=-1)  # renew into the past: expired
    assert await acquire_lease(session, qbo.connection_id, "worker-b", seconds=60)


async def test_two_workers_never_sync_one_connection_at_once(app, session, biz: Business, qbo: QBOSetup):
    for n in range(40):
        await create_customer(session, biz.tenant.id, {"display_name": f"Busy {n}"})
    await session.commit()
    # Two dispatchers with their own engines and holder ids, as two processes would have, sweeping hard.
    envs = [OAuthEnv.standalone(app.state.settings, app.state.endpoints) for _ in range(2)]
    workers = [Dispatcher(env, workers=2, sweep_seconds=0.01) for env in envs]
    for worker in workers:
        await worker.start()
    try:
        for _ in range(400):
            if await unsynced(session, qbo) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        for worker in workers:
            await worker.stop()
        for env in envs:
            await env.engine.dispose()
    assert await unsynced(session, qbo) == 0
    assert qbo.emulator.max_inflight[qbo.realm] == 1  # never two requests for the realm at once
    names = [c["DisplayName"] for c in qbo.objects("Customer").values() if c["DisplayName"].startswith("Busy ")]
    assert len(names) == len(set(names)) == 40


async def test_the_sweep_leaves_out_a_connection_another_worker_holds(session, biz: Business, qbo: QBOSetup):
    from fieldhub.hub.sync.dispatch import due_connections
    from fieldhub.hub.sync.engine import release_lease

    await create_customer(session, biz.tenant.id, {"display_name": "Held Hana"})
    await session.commit()
    assert await due_connections(qbo.env) == [qbo.connection_id]
    assert await acquire_lease(session, qbo.connection_id, "other-host:1:run", seconds=60)
    assert await due_connections(qbo.env) == []  # a worker takes the next connection instead
    await release_lease(session, qbo.connection_id, "other-host:1:run")
    assert await due_connections(qbo.env) == [qbo.connection_id]  # its rows show up again once it lets go
    assert await acquire_lease(session, qbo.connection_id, "other-host:1:run", seconds=-1)  # an expired lease
    assert await due_connections(qbo.env) == [qbo.connection_id]
