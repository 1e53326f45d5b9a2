"""The export run against the in-process QuickBooks emulator: order, counts, idempotency, errors, history."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer, update_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice, void_invoice
from fieldhub.core.items.service import create_item
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent, RunStatus, SyncRun
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup


async def ledger(session, qbo: QBOSetup) -> dict[tuple[str, int], LedgerRow]:
    rows = await session.scalars(
        select(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id).execution_options(populate_existing=True)
    )
    out = {(r.entity, r.local_id): r for r in rows}
    await session.commit()
    return out


async def make_invoice(session, biz: Business, name: str = "Ada Lovelace", *, send: bool = True, notes: str = ""):
    tenant = biz.tenant.id
    customer = await create_customer(session, tenant, {"display_name": name, "email": "ada@example.com"})
    item = await create_item(session, tenant, {"name": f"Repair {name}", "unit_price": "120.00"})
    invoice = await create_invoice(
        session,
        tenant,
        {
            "customer_id": customer.id,
            "discount_amount": "10.00",
            "notes": notes,
            "lines": [
                {"item_id": item.id, "quantity": "2", "unit_price": "120.00"},
                {"description": "Call-out fee", "unit_price": "45.50"},
            ],
        },
    )
    if send:
        await send_invoice(session, tenant, invoice.id)
    await session.commit()
    return customer, item, invoice


async def test_customer_item_invoice_payment_land_once_with_exact_amounts(session, biz: Business, qbo: QBOSetup):
    customer, item, invoice = await make_invoice(session, biz, notes="gate code 4411, owner is rude")
    payment = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "100.00", "reference": "chk 12"})
    await session.commit()

    run = await qbo.sync()
    assert run.status == RunStatus.SUCCESS, run.errors
    assert (run.created, run.failed) == (4, 0)

    invoices = qbo.objects("Invoice")
    ours = [o for o in invoices.values() if o.get("PrivateNote") == f"fieldhub invoice #{invoice.id}"]
    assert len(ours) == 1
    assert Decimal(str(ours[0]["TotalAmt"])) == invoice.total == Decimal("275.50")
    assert Decimal(str(ours[0]["Balance"])) == Decimal("175.50")
    payments = [p for p in qbo.objects("Payment").values() if p.get("PrivateNote") == f"fieldhub payment #{payment.id}"]
    assert len(payments) == 1 and Decimal(str(payments[0]["TotalAmt"])) == Decimal("100.00")
    names = [c["DisplayName"] for c in qbo.objects("Customer").values()]
    assert names.count("Ada Lovelace") == 1

    rows = await ledger(session, qbo)
    assert all(r.state == LedgerState.SYNCED for r in rows.values()), [
        (k, r.state, r.error_reason) for k, r in rows.items()
    ]
    assert all(r.idempotency_key is None for r in rows.values())
    # Internal notes never leave fieldhub: not in any request the emulator saw.
    assert not any("gate code" in r.body or "rude" in r.body for r in qbo.emulator.requests)
    events = list(await session.scalars(select(RecordEvent).where(RecordEvent.run_id == run.id)))
    assert {e.action for e in events} == {"created"} and len(events) == 4

    # A re-run with nothing due sends nothing at all, and writes no run: the history is of work tried.
    seen = len(qbo.emulator.requests)
    runs = await session.scalar(select(func.count()).select_from(SyncRun))
    assert await qbo.sync() is None
    assert len(qbo.emulator.requests) == seen
    assert await session.scalar(select(func.count()).select_from(SyncRun)) == runs


async def test_draft_not_pushed_and_void_is(session, biz: Business, qbo: QBOSetup):
    _, _, draft = await make_invoice(session, biz, "Draft Dan", send=False)
    _, _, sent = await make_invoice(session, biz, "Void Vera")
    await qbo.sync()
    assert not any(o.get("PrivateNote") == f"fieldhub invoice #{draft.id}" for o in qbo.objects("Invoice").values())

    await void_invoice(session, biz.tenant.id, sent.id)
    await session.commit()
    run = await qbo.sync()
    assert run.deleted == 1, run.errors
    remote = (await ledger(session, qbo))[("invoice", sent.id)]
    assert remote.state == LedgerState.SYNCED
    assert Decimal(str(qbo.objects("Invoice")[remote.remote_id]["TotalAmt"])) == 0


async def test_a_run_left_running_by_a_dead_worker_is_closed_by_the_next(session, biz: Business, qbo: QBOSetup):
    # What kill -9 leaves: a run row that says "running", whose process will never finish it.
    dead = SyncRun(tenant_id=biz.tenant.id, connection_id=qbo.connection_id, trigger="schedule", direction="export")
    session.add(dead)
    await session.commit()
    await create_customer(session, biz.tenant.id, {"display_name": "After Ava"})
    await session.commit()
    run = await qbo.sync()
    assert (run.status, run.created) == (RunStatus.SUCCESS, 1)
    await session.refresh(dead)
    assert dead.status == RunStatus.FAILED and dead.finished_at is not None
    assert [e["code"] for e in dead.errors] == ["interrupted"]


async def test_dropped_reply_is_settled_without_a_second_create(session, biz: Business, qbo: QBOSetup):
    _, _, invoice = await make_invoice(session, biz, "Drop Dora")
    payment = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "50.00"})
    await session.commit()
    # QBO commits and the reply is lost; the client's inline retries then meet 503s, so the run ends unsure.
    qbo.emulator.faults.append(FaultRule(kind="drop_after_commit", count=1, path="/payment$", method="POST"))
    qbo.emulator.faults.append(FaultRule(kind="status", status=503, count=3, path="/payment$", method="POST"))
    first = await qbo.sync()
    assert first.status == RunStatus.PARTIAL
    row = (await ledger(session, qbo))[("payment", payment.id)]
    assert row.state == LedgerState.PENDING and row.idempotency_key and row.remote_id is None
    assert row.next_attempt_at > row.created_at  # backed off
    key = row.idempotency_key
    row.next_attempt_at = row.created_at  # time passes
    await session.commit()

    await qbo.sync()
    row = (await ledger(session, qbo))[("payment", payment.id)]
    assert row.remote_id and row.state == LedgerState.SYNCED
    ours = [o for o in qbo.objects("Payment").values() if o.get("PrivateNote") == f"fieldhub payment #{payment.id}"]
    assert len(ours) == 1 and ours[0]["Id"] == row.remote_id
    # Every send of the create carried the one key (QBO would replay it); the next run found the
    # committed payment by its marker (a payment may have gone in a batch, whose key is the batch's).
    sends = [r for r in qbo.emulator.requests if f"requestid={key}" in r.query]
    assert [r.fault for r in sends] == ["drop_after_commit", "status", "status", "status"]
    assert [r for r in qbo.emulator.requests if r.path.endswith("/payment") and "requestid=" in r.query] == sends


async def test_name_conflict_fails_plainly_then_rename_and_retry(session, biz: Business, qbo: QBOSetup):
    from fieldhub.hub.sync.dispatch import retry_record

    customer = await create_customer(session, biz.tenant.id, {"display_name": "Home Depot"})  # a QBO vendor
    await session.commit()
    run = await qbo.sync()
    assert (run.failed, run.status) == (1, RunStatus.FAILED)
    row = (await ledger(session, qbo))[("customer", customer.id)]
    assert row.state == LedgerState.FAILED and row.error_code == "6240"
    assert row.error_reason.startswith("Customer name conflict: a customer, vendor or employee named “Home Depot”")
    assert "rename it here or merge it there" in row.error_reason

    await update_customer(session, biz.tenant.id, customer.id, {"display_name": "Home Depot (customer)"})
    await session.commit()
    assert await retry_record(session, biz.tenant.id, row.id) is not None
    await session.commit()
    run = await qbo.sync(trigger="retry")
    assert (run.created, run.failed, run.status) == (1, 0, RunStatus.SUCCESS)
    assert (await ledger(session, qbo))[("customer", customer.id)].state == LedgerState.SYNCED


async def test_unmapped_accounts_refuse_the_run(session, biz: Business, qbo: QBOSetup):
    from fieldhub.hub.connections.models import Connection

    conn = await session.get(Connection, qbo.connection_id)
    conn.settings = {}
    before = qbo.emulator.requests[-1].seq
    await create_customer(session, biz.tenant.id, {"display_name": "Nobody"})
    await session.commit()
    run = await qbo.sync()
    assert run.status == RunStatus.FAILED
    assert run.errors[0]["reason"] == "Map your chart of accounts first"
    assert not qbo.api_requests(since=before)
    # No sweep starts it again every few seconds, each run failing the same way into the history...
    from fieldhub.hub.sync.dispatch import due_connections, request_sync

    assert await due_connections(qbo.env) == []
    # ...until the mapping is saved, which makes the waiting rows due at once.
    assert await request_sync(session, qbo.connection_id) == 1
    await session.commit()
    assert await due_connections(qbo.env) == [qbo.connection_id]


async def test_batches_travel_while_a_reply_is_written_but_none_goes_after_a_retry_after(
    session, biz: Business, qbo: QBOSetup, monkeypatch
):
    """Batches overlap the ledger's work: two travel while the engine settles (the provider's time on batches
    2 and 3 runs while batch 1 is written), never more; a reply whose Retry-After the client could not wait
    out inline stops the run before anything else goes."""
    from fieldhub.hub.sync import engine

    for n in range(75):  # three batches of customers: 30, 30, 15
        await create_customer(session, biz.tenant.id, {"display_name": f"Overlap {n}"})
    await session.commit()
    events: list[str] = []
    settle, push = engine.Engine._settle_many, engine.Engine._push_batch

    async def settling(self, session, results):
        events.append("settle start")
        await settle(self, session, results)
        events.append("settle end")

    async def pushing(adapter, chunk):
        events.append("push")
        return await push(adapter, chunk)

    monkeypatch.setattr(engine.Engine, "_settle_many", settling)
    monkeypatch.setattr(engine.Engine, "_push_batch", staticmethod(pushing))
    run = await qbo.sync()
    assert run.created == 75 and len(qbo.objects("Customer")) >= 75
    pushes = [n for n, e in enumerate(events) if e == "push"]
    settled = [n for n, e in enumerate(events) if e == "settle end"]
    assert len(pushes) == len(settled) == 3 and engine.BATCHES_IN_FLIGHT == 2
    # Batches 2 and 3 leave before batch 1's outcomes are written: batch 3 as soon as batch 1's reply is in.
    assert pushes[2] < settled[0]
    assert max(qbo.emulator.max_inflight.values()) <= engine.BATCHES_IN_FLIGHT

    for n in range(75):
        await create_customer(session, biz.tenant.id, {"display_name": f"Throttled {n}"})
    await session.commit()
    events.clear()
    # Four 429s for each of the two batches out: the client's inline retries (fake sleeps) run out and the
    # run stops.
    qbo.emulator.faults.append(FaultRule(kind="rate_limit", path="/batch$", count=8, retry_after=2.0))
    run = await qbo.sync()
    assert any(e["code"] == "throttled" for e in run.errors), run.errors
    assert events == ["push", "push", "settle start", "settle end"]  # batch 3 never left
    assert qbo.emulator.requests[-1].status == 429  # nothing reached QuickBooks after the last 429


async def test_the_next_chunk_is_prepared_while_the_last_batches_of_this_one_travel(
    session, biz: Business, qbo: QBOSetup, monkeypatch
):
    """A chunk (90 customers: three batches) ends with its last two batches still on their way: the next
    chunk's records are loaded and keyed meanwhile, and each is settled once the next one has left."""
    from fieldhub.hub.sync import engine

    for n in range(150):  # chunks of 90 and 60: batches 30, 30, 30 | 30, 30
        await create_customer(session, biz.tenant.id, {"display_name": f"Chunked {n}"})
    await session.commit()
    events: list[str] = []
    settle, push, prepare = engine.Engine._settle_many, engine.Engine._push_batch, engine.Engine._prepare_items

    async def settling(self, session, results):
        await settle(self, session, results)
        events.append("settled")

    async def pushing(adapter, chunk):
        events.append("push")
        return await push(adapter, chunk)

    async def preparing(self, *args):
        events.append("prepare")
        return await prepare(self, *args)

    monkeypatch.setattr(engine.Engine, "_settle_many", settling)
    monkeypatch.setattr(engine.Engine, "_push_batch", staticmethod(pushing))
    monkeypatch.setattr(engine.Engine, "_prepare_items", preparing)
    run = await qbo.sync()
    assert run.created == 150 and run.status == RunStatus.SUCCESS
    assert events == [
        "prepare",
        "push",
        "push",
        "push",  # batch 3 leaves once batch 1's reply is in, before it is written
        "settled",
        "prepare",  # batches 2 and 3 are on their way
        "push",
        "settled",  # batch 2, after batch 4 left
        "push",
        "settled",  # batch 3, after batch 5 left
        "settled",
        "settled",
    ]
