"""Core writes mark ledger rows pending in the same transaction, per the status rules."""

from __future__ import annotations

from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice, void_invoice
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation
from tests.conftest import Business


async def connect(
    session, biz: Business, provider: str = "quickbooks", status=ConnectionStatus.CONNECTED, account: str = "9341"
) -> Connection:
    connection = Connection(
        tenant_id=biz.tenant.id, provider=provider, status=status, account_id=account, connected_at=utcnow()
    )
    session.add(connection)
    await session.commit()
    return connection


async def rows(session, connection: Connection) -> dict[tuple[str, int], LedgerRow]:
    result = await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == connection.id))
    return {(r.entity, r.local_id): r for r in result}


async def test_writes_mark_rows_pending(app, session, biz: Business) -> None:
    qbo = await connect(session, biz)
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Ada Lovelace"})
    invoice = await create_invoice(
        session, biz.tenant.id, {"customer_id": customer.id, "lines": [{"description": "Fix", "unit_price": "10"}]}
    )
    await session.commit()
    ledger = await rows(session, qbo)
    assert ledger[("customer", customer.id)].state == LedgerState.PENDING
    assert ("invoice", invoice.id) not in ledger  # a DRAFT stays out of the books

    await send_invoice(session, biz.tenant.id, invoice.id)
    payment = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "4"})
    await session.commit()
    ledger = await rows(session, qbo)
    assert ledger[("invoice", invoice.id)].state == LedgerState.PENDING
    assert ledger[("invoice", invoice.id)].local_version == invoice.version
    assert ledger[("payment", payment.id)].operation == Operation.UPSERT


async def test_rolled_back_write_leaves_no_work(app, session, biz: Business) -> None:
    qbo = await connect(session, biz)
    await create_customer(session, biz.tenant.id, {"display_name": "Gone"})
    await session.rollback()
    await session.refresh(qbo)
    assert await rows(session, qbo) == {}


async def test_void_before_sync_is_skipped_and_after_sync_is_a_void(app, session, biz: Business) -> None:
    qbo = await connect(session, biz)
    customer = await create_customer(session, biz.tenant.id, {"display_name": "V"})
    lines = [{"description": "Fix", "unit_price": "10"}]
    never = await create_invoice(session, biz.tenant.id, {"customer_id": customer.id, "lines": lines})
    synced = await create_invoice(session, biz.tenant.id, {"customer_id": customer.id, "lines": lines})
    await send_invoice(session, biz.tenant.id, never.id)
    await send_invoice(session, biz.tenant.id, synced.id)
    await session.commit()
    ledger = await rows(session, qbo)
    row = ledger[("invoice", synced.id)]
    row.remote_id, row.state, row.synced_version = "130", LedgerState.SYNCED, row.local_version
    await session.commit()

    await void_invoice(session, biz.tenant.id, never.id)
    await void_invoice(session, biz.tenant.id, synced.id)
    await session.commit()
    ledger = await rows(session, qbo)
    assert ledger[("invoice", never.id)].state == LedgerState.SKIPPED
    assert ledger[("invoice", synced.id)].state == LedgerState.PENDING
    assert ledger[("invoice", synced.id)].operation == Operation.VOID


async def test_only_exporting_live_connections_collect_work(app, session, biz: Business, other_biz: Business) -> None:
    gone = await connect(session, biz, status=ConnectionStatus.DISCONNECTED)
    waiting = await connect(session, biz, status=ConnectionStatus.NEEDS_REAUTH, account="5150")
    calendar = await connect(session, biz, provider="google_calendar")
    coming = await connect(session, biz, provider="freshbooks")
    other = await connect(session, other_biz)
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Only A"})
    await session.commit()
    assert await rows(session, gone) == {}
    assert await rows(session, calendar) == {}  # calendars don't sync customers
    assert await rows(session, coming) == {}  # declared but not built yet (planned): nothing could send it
    assert await rows(session, other) == {}  # another business's connection never sees A's records
    assert ("customer", customer.id) in await rows(session, waiting)  # kept for when Reconnect resumes
