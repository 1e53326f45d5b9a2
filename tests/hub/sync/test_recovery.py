"""Recovery after a crash (issue 14 item 5): a run keeps its own lease however long a request takes, a run a kill
cut is closed and resumed at start-up, and QuickBooks' echoes of fieldhub's own writes cost no request."""

from __future__ import annotations

import asyncio

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
    for n in range(95):  # two chunks of customers: 90 (three batches of 30), then 5
        await create_customer(session, biz.tenant.id, {"display_name": f"Slow {n:03d}"})
    await session.commit()
    qbo.emulator.faults.append(FaultRule(kind="latency", path="/batch", probability=1.0, delay=0.7))

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
        run = await qbo.sync(lease_seconds=0.6)
    finally:
        stop.set()
        await poller
    assert taken == []
    assert run is not None
    assert [e["code"] for e in run.errors] == [], run.errors
    assert run.status == RunStatus.SUCCESS and run.created == 95
    rows = list(await session.scalars(select(LedgerRow.state).where(LedgerRow.connection_id == qbo.connection_id)))
    assert rows.count(LedgerState.SYNCED) == 95
