"""Work a provider can't take is never collected, never retried and writes no run (issue 14 item 4).

A refund recorded by hand with Stripe connected used to become a pending ledger row for Stripe, which has no
export adapter: every sweep ran the connection, failed on it and wrote a failed run, forever.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.dispatch import Dispatcher, due_connections, run_connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation, SyncRun
from tests.conftest import Business


async def _stripe(session, biz: Business) -> Connection:
    conn = Connection(
        tenant_id=biz.tenant.id,
        provider="stripe",
        status=ConnectionStatus.CONNECTED,
        account_id="acct_1HandRefunds0000",
        connected_at=utcnow(),
        auto_sync=True,
    )
    session.add(conn)
    await session.commit()
    return conn


async def _hand_refund(session, biz: Business) -> None:
    """A cash payment recorded by hand, then part of it refunded by hand."""
    t = biz.tenant.id
    customer = await create_customer(session, t, {"display_name": "Cash Carla"})
    invoice = await invoices.create_invoice(
        session, t, {"customer_id": customer.id, "lines": [{"description": "Tune-up", "unit_price": "90"}]}
    )
    await invoices.send_invoice(session, t, invoice.id)
    payment = await invoices.record_payment(session, t, invoice.id, {"amount": "90", "method": "cash"})
    await invoices.refund_payment(session, t, payment.id, {"amount": "32.75", "reason": "Part not used"})
    await session.commit()


async def _count(session, model, *where) -> int:
    value = await session.scalar(select(func.count()).select_from(model).where(*where))
    await session.commit()
    return int(value or 0)


async def test_issue14_item4_hand_refund_with_stripe_connected_is_not_stripe_work(app, session, biz: Business) -> None:
    conn = await _stripe(session, biz)
    dispatcher = Dispatcher(env_for(app), sweep_seconds=0.05)
    await dispatcher.start()
    try:
        await _hand_refund(session, biz)
        await asyncio.sleep(0.6)  # the commit's wake-up and about ten sweeps
        await dispatcher.idle()
    finally:
        await dispatcher.stop()
    assert await _count(session, LedgerRow, LedgerRow.connection_id == conn.id) == 0
    assert await _count(session, SyncRun, SyncRun.connection_id == conn.id) == 0
    assert await due_connections(env_for(app)) == []


async def test_issue14_item4_left_over_work_is_skipped_with_its_reason_and_no_run(app, session, biz: Business) -> None:
    """Rows collected before Stripe stopped declaring refunds as two-way: skipped once, never a run, never due again."""
    conn = await _stripe(session, biz)
    row = LedgerRow(
        tenant_id=biz.tenant.id,
        connection_id=conn.id,
        entity="refund",
        local_id=1,
        local_version=1,
        state=LedgerState.PENDING,
        operation=Operation.UPSERT,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    await session.commit()
    env = env_for(app)
    assert await due_connections(env) == [conn.id]

    assert await run_connection(env, conn.id, "schedule") is None
    await session.refresh(row)
    assert row.state == LedgerState.SKIPPED and row.error_code == "not_exported"
    assert row.error_reason == "Stripe does not take refund records from fieldhub, so this one is not sent there."
    assert await _count(session, SyncRun, SyncRun.connection_id == conn.id) == 0
    assert await due_connections(env) == []
