"""QuickBooks inbound: the signed webhook into the inbox, changes applied without echo, CDC catch-up, periodic tasks."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select, update

from fieldhub.capabilities.accounting import inbound
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer, update_customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.invoices.service import create_invoice, send_invoice
from fieldhub.core.payments.models import Payment, PaymentStatus
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import RetryLater
from fieldhub.hub.oauth.flow import disconnect
from fieldhub.hub.sync import dispatch
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent, SyncCursor, SyncRun
from fieldhub.hub.webhooks.models import InboxState, WebhookInbox
from fieldhub.providers.quickbooks import webhooks as qbo_webhooks
from fieldhub.providers.quickbooks.emulator.webhooks import sign
from fieldhub.providers.quickbooks.ledger import parse_time, party
from tests.conftest import Business
from tests.hub.oauth.conftest import consent
from tests.hub.sync.conftest import QBOSetup, connect_mapped

SECRET = "demo-quickbooks-webhook-secret"  # what test mode configures (settings.demo_credentials)
# The official test vector (facts §1.9; intuit/QuickBooks-V3-Java-SDK WebhooksServiceTest).
VECTOR_TOKEN = "b5771f19b12ddb4bcdb9f08bdc50bc63878a"
VECTOR_BODY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":[{"name":"Customer","id":"1",'
    b'"operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
VECTOR_SIGNATURE = "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    setup = await connect_mapped(app, owner, session)
    # Webhooks go straight into this app, when the test says so.
    setup.emulator.webhooks.transport = httpx.ASGITransport(app=app)
    setup.emulator.webhooks.deliver = False
    return setup


async def deliver(qbo: QBOSetup) -> list[str]:
    """Send every queued notification to the hub; the inbox processes each before the reply is complete."""
    return [d.responses[-1] for d in await qbo.emulator.webhooks.flush(force=True)]


async def post(client, body: bytes, signature: str | None) -> httpx.Response:  # noqa: ANN001
    headers = {"content-type": "application/json"} | ({"intuit-signature": signature} if signature else {})
    return await client.post("/webhooks/quickbooks", content=body, headers=headers)


async def sent_invoice(session, biz: Business, amount: str = "120.00") -> Invoice:
    name = f"Pat Jones {len((await session.scalars(select(Customer.id))).all()) + 1}"
    customer = await create_customer(session, biz.tenant.id, {"display_name": name, "email": "pat@example.com"})
    invoice = await create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": customer.id, "lines": [{"description": "Boiler service", "unit_price": amount}]},
    )
    await send_invoice(session, biz.tenant.id, invoice.id)
    await session.commit()
    return invoice


async def synced_invoice(session, biz: Business, qbo: QBOSetup, amount: str = "120.00") -> tuple[Invoice, str]:
    invoice = await sent_invoice(session, biz, amount)
    run = await qbo.sync()
    assert run.status == "success", run.errors
    row = await ledger(session, qbo, "invoice", invoice.id)
    await deliver(qbo)  # the echoes of our own creates: nothing to do
    return invoice, row.remote_id


async def ledger(session, qbo: QBOSetup, entity: str, local_id: int) -> LedgerRow:
    row = await session.scalar(
        select(LedgerRow)
        .where(LedgerRow.connection_id == qbo.connection_id, LedgerRow.entity == entity, LedgerRow.local_id == local_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def payments(session, invoice_id: int) -> list[Payment]:
    query = select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


async def invoice_status(session, invoice_id: int) -> str:
    invoice = await session.get(Invoice, invoice_id, populate_existing=True)
    assert invoice is not None
    return str(invoice.status)


async def control(owner, qbo: QBOSetup, path: str, body: dict | None = None) -> dict:  # noqa: ANN001
    """A bookkeeper's change in QuickBooks, made a second after whatever came before it. A webhook's time has whole
    seconds, so a change in the very second of fieldhub's own write reads as that write's echo and is left to the
    change-data catch-up, which tells them apart by SyncToken (hub/sync/echoes.py); a person is never that quick."""
    changes, now = qbo.emulator.companies[qbo.realm].changes, qbo.emulator.clock.now()
    if changes and int(changes[-1].at) == int(now):
        await asyncio.sleep(int(now) + 1.01 - now)
    r = await owner.post(f"/emulators/quickbooks/_emulator/companies/{qbo.realm}/{path}", json=body or {})
    assert r.status_code == 200, r.text
    return r.json()


def creates(qbo: QBOSetup, since: int, entity: str) -> list:
    return [r for r in qbo.api_requests(since) if r.method == "POST" and r.path.lower().endswith("/" + entity)]


async def inbox_count(session) -> int:
    return await session.scalar(select(func.count()).select_from(WebhookInbox))


# ----------------------------------------------------------------------------- signature and parsing


def test_signature_matches_the_official_vector() -> None:
    assert qbo_webhooks.verify({"intuit-signature": VECTOR_SIGNATURE}, VECTOR_BODY, VECTOR_TOKEN)
    assert not qbo_webhooks.verify({"intuit-signature": VECTOR_SIGNATURE}, VECTOR_BODY + b" ", VECTOR_TOKEN)
    assert not qbo_webhooks.verify({"intuit-signature": VECTOR_SIGNATURE}, VECTOR_BODY, "another-token")
    assert not qbo_webhooks.verify({}, VECTOR_BODY, VECTOR_TOKEN)
    assert not qbo_webhooks.verify({"intuit-signature": "é" + VECTOR_SIGNATURE}, VECTOR_BODY, VECTOR_TOKEN)
    # The emulator signs the way Intuit does.
    assert sign(VECTOR_BODY, VECTOR_TOKEN) == VECTOR_SIGNATURE


def test_both_formats_parse_to_the_same_notices_with_stable_dedupe_keys() -> None:
    classic = qbo_webhooks.parse(json.loads(VECTOR_BODY))
    assert classic.account == "1185883450"
    assert classic.id == "qbo:1185883450:Customer:1:Create:2015-10-05T14:42:19-0700"
    assert classic.payload["notices"][0] | {"deleted_id": ""} == {
        "realm": "1185883450",
        "entity": "Customer",
        "id": "1",
        "operation": "Create",
        "at": "2015-10-05T14:42:19-0700",
        "deleted_id": "",
    }
    cloud = [
        {
            "specversion": "1.0",
            "id": "88cd52aa-Customer-1",
            "source": "intuit.x",
            "type": "qbo.customer.merged.v1",
            "time": "2025-09-10T21:31:25.179851517Z",
            "intuitentityid": "1",
            "intuitaccountid": "1185883450",
            "data": {"deletedid": "27"},
        }
    ]
    event = qbo_webhooks.parse(cloud)
    assert event.id == "ce:88cd52aa-Customer-1"
    assert event.payload["notices"][0]["operation"] == "Merge"
    assert event.payload["notices"][0]["deleted_id"] == "27"
    two = qbo_webhooks.parse(cloud + [{**cloud[0], "id": "other"}])
    assert two.id == qbo_webhooks.parse([{**cloud[0], "id": "other"}, *cloud]).id  # order does not matter
    for bad in ({}, {"eventNotifications": []}, [], [{"id": "x"}], {"eventNotifications": [{"realmId": "1"}]}, "x"):
        with pytest.raises(ValueError):
            qbo_webhooks.parse(bad)
    assert parse_time("2015-10-05T14:42:19-0700") == parse_time("2015-10-05T21:42:19Z")


def test_a_voided_payment_is_voided_at_the_provider_and_its_invoice_not_resent() -> None:
    from fieldhub.core.events import DomainEvent
    from fieldhub.hub.sync.models import Operation
    from fieldhub.hub.sync.rules import operation_for

    voided = DomainEvent(1, "payment", 7, 2, "voided", {"status": "voided"})
    assert operation_for(voided, already_synced=True) == Operation.VOID
    assert operation_for(voided, already_synced=False) is None
    reopened = DomainEvent(1, "invoice", 3, 4, "payment_voided", {"status": "SENT"})
    assert operation_for(reopened, already_synced=True) is None


async def test_refusals_store_nothing_and_an_unknown_realm_is_ignored(app, client, session) -> None:  # noqa: ANN001
    body = VECTOR_BODY
    assert (await post(client, body, None)).status_code == 401
    assert (await post(client, body, sign(body, "wrong-token"))).status_code == 401
    assert (await post(client, body, sign(body, SECRET)[:-2] + "AA")).status_code == 401
    malformed = b'{"eventNotifications":[{"dataChangeEvent":{}}]}'
    assert (await post(client, malformed, sign(malformed, SECRET))).status_code == 400
    assert (await post(client, b"not json", sign(b"not json", SECRET))).status_code == 400
    assert await inbox_count(session) == 0
    # Signed properly, but for a company nobody here connected: stored once, ignored, nothing else.
    r = await post(client, body, sign(body, SECRET))
    assert r.status_code == 200 and r.json() == {"received": True}
    row = await session.scalar(select(WebhookInbox))
    assert row is not None and row.state == InboxState.IGNORED and row.connection_id is None
    assert (await post(client, body, sign(body, SECRET))).json()["duplicate"] is True
    assert await inbox_count(session) == 1


# ----------------------------------------------------------------------------- payments and voids


async def test_invoice_paid_in_quickbooks_is_paid_here_once_with_no_echo(client, owner, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    paid = (await control(owner, qbo, f"invoice/{remote_invoice}/pay", {"reference": "CHK-1001"}))["Payment"]
    before = qbo.emulator.requests[-1].seq
    assert await deliver(qbo) == ["200"]
    [payment] = await payments(session, invoice.id)
    assert payment.amount == Decimal("120.00") and payment.status == PaymentStatus.SUCCEEDED
    assert payment.reference == "CHK-1001"
    assert await invoice_status(session, invoice.id) == "PAID"
    row = await ledger(session, qbo, "payment", payment.id)
    assert (row.state, row.remote_id, row.synced_version) == (LedgerState.SYNCED, paid["Id"], row.local_version)
    invoice_row = await ledger(session, qbo, "invoice", invoice.id)
    assert invoice_row.state == LedgerState.SYNCED
    # The hub read the Payment (the notification carries only ids) and nothing else went out.
    reads = qbo.api_requests(before)
    assert any(r.method == "GET" and r.path.endswith(f"/payment/{paid['Id']}") for r in reads)
    # No echo: a sync run now sends neither a Payment nor an Invoice update.
    mark = qbo.emulator.requests[-1].seq
    await qbo.sync()
    assert [r for r in qbo.api_requests(mark) if r.method == "POST"] == []
    assert len([p for p in qbo.objects("Payment").values()]) == 1
    # The same notification delivered again (Intuit retries): stored once, applied once.
    delivery = qbo.emulator.webhooks.deliveries[-1]
    again = await post(client, delivery.body.encode(), sign(delivery.body.encode(), SECRET))
    assert again.json().get("duplicate") is True
    # And even a different notification about the same payment (an Update) changes nothing.
    await control(owner, qbo, f"payment/{paid['Id']}", {"PrivateNote": "checked"})
    await deliver(qbo)
    assert len(await payments(session, invoice.id)) == 1
    history = (
        await session.scalars(select(SyncRun).where(SyncRun.direction == "import", SyncRun.trigger == "webhook"))
    ).all()
    assert [(r.created, r.status) for r in history] == [(1, "success")]
    event = await session.scalar(select(RecordEvent).where(RecordEvent.ledger_id == row.id))
    assert event is not None and event.action == "imported" and event.run_id == history[0].id


async def test_cloudevents_partial_payment_then_deleted_in_quickbooks(owner, session, biz, qbo) -> None:  # noqa: ANN001
    qbo.emulator.webhooks.format = "cloudevents"
    invoice, remote_invoice = await synced_invoice(session, biz, qbo, "300.00")
    paid = (await control(owner, qbo, f"invoice/{remote_invoice}/pay", {"amount": "100.00"}))["Payment"]
    await deliver(qbo)
    [payment] = await payments(session, invoice.id)
    assert payment.amount == Decimal("100.00")
    assert await invoice_status(session, invoice.id) == "PARTIALLY_PAID"
    # The bookkeeper deletes that payment in QuickBooks: taken back here, the invoice reopens.
    await control(owner, qbo, f"payment/{paid['Id']}/delete")
    mark = qbo.emulator.requests[-1].seq
    await deliver(qbo)
    [payment] = await payments(session, invoice.id)
    assert payment.status == PaymentStatus.VOIDED
    assert await invoice_status(session, invoice.id) == "SENT"
    assert (await ledger(session, qbo, "payment", payment.id)).state == LedgerState.SYNCED
    await qbo.sync()
    assert [r for r in qbo.api_requests(mark) if r.method == "POST"] == []  # no void sent back for a deleted one


async def test_invoice_voided_in_quickbooks_is_void_here_unless_paid_here(owner, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    await control(owner, qbo, f"invoice/{remote_invoice}/void")
    mark = qbo.emulator.requests[-1].seq
    await deliver(qbo)
    assert await invoice_status(session, invoice.id) == "VOID"
    row = await ledger(session, qbo, "invoice", invoice.id)
    assert row.state == LedgerState.SYNCED
    await qbo.sync()
    assert [r for r in qbo.api_requests(mark) if r.method == "POST"] == []
    # One with a payment recorded here is not voided: a conflict in its history, and the owner is told.
    from fieldhub.core.invoices.service import record_payment
    from fieldhub.hub.notify.models import Notification

    other, remote_other = await synced_invoice(session, biz, qbo, "80.00")
    await record_payment(session, biz.tenant.id, other.id, {"amount": "10.00", "method": "cash"})
    await session.commit()
    await qbo.sync()
    await deliver(qbo)
    await control(owner, qbo, f"invoice/{remote_other}/void")
    await deliver(qbo)
    assert await invoice_status(session, other.id) == "PARTIALLY_PAID"
    other_row = await ledger(session, qbo, "invoice", other.id)
    actions = (await session.scalars(select(RecordEvent.action).where(RecordEvent.ledger_id == other_row.id))).all()
    assert "conflict" in actions
    assert await session.scalar(select(Notification).where(Notification.kind == "sync.conflict")) is not None


# ----------------------------------------------------------------------------- customers


async def synced_customer(session, biz: Business, qbo: QBOSetup, direction: str) -> tuple[Customer, str]:
    conn = await session.get(Connection, qbo.connection_id)
    conn.settings = {**conn.settings, "customer_direction": direction}
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Dana Reyes", "phone": "555-0100"})
    await session.commit()
    await qbo.sync()
    await deliver(qbo)
    return customer, (await ledger(session, qbo, "customer", customer.id)).remote_id


async def events(session, row: LedgerRow) -> list[tuple[str, str]]:
    return list(
        (
            await session.execute(
                select(RecordEvent.action, RecordEvent.summary)
                .where(RecordEvent.ledger_id == row.id)
                .order_by(RecordEvent.id)
            )
        ).all()
    )


async def test_two_way_customer_edit_flows_in_and_newest_edit_wins(owner, session, biz, qbo) -> None:  # noqa: ANN001
    customer, remote = await synced_customer(session, biz, qbo, "two_way")
    # Edited in QuickBooks only: it flows in, and nothing goes back.
    await control(owner, qbo, f"customer/{remote}", {"PrimaryPhone": {"FreeFormNumber": "555-0199"}})
    mark = qbo.emulator.requests[-1].seq
    await deliver(qbo)
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0199"
    row = await ledger(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.SYNCED
    await qbo.sync()
    assert creates(qbo, mark, "customer") == []
    # Edited here (not sent yet), then in QuickBooks: QuickBooks' edit is newer and wins; ours is logged as lost.
    await update_customer(session, biz.tenant.id, customer.id, {"company": "Reyes Plumbing"})
    await session.commit()
    await asyncio.sleep(1.05)  # QuickBooks stamps whole seconds
    await control(owner, qbo, f"customer/{remote}", {"CompanyName": "Reyes & Sons"})
    await deliver(qbo)
    assert (await session.get(Customer, customer.id, populate_existing=True)).company == "Reyes & Sons"
    row = await ledger(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.SYNCED
    assert any(a == "conflict" and "lost to QuickBooks" in s for a, s in await events(session, row))
    # Edited in QuickBooks, then here: ours is newer, kept, and sent over theirs. (A second notification
    # about the same object within the same second has the same dedupe key; the CDC poll is the backstop.)
    await asyncio.sleep(1.05)
    await control(owner, qbo, f"customer/{remote}", {"CompanyName": "Old Name In QBO"})
    await asyncio.sleep(1.05)
    await update_customer(session, biz.tenant.id, customer.id, {"company": "Newest Here"})
    await session.commit()
    await deliver(qbo)
    assert (await session.get(Customer, customer.id, populate_existing=True)).company == "Newest Here"
    row = await ledger(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.PENDING
    assert any(a == "conflict" and "fieldhub's version is kept" in s for a, s in await events(session, row))
    await qbo.sync()
    assert qbo.objects("Customer")[remote]["CompanyName"] == "Newest Here"


async def test_two_way_customer_created_in_quickbooks_comes_in_once(owner, session, biz, qbo) -> None:  # noqa: ANN001
    await synced_customer(session, biz, qbo, "two_way")
    made = (await control(owner, qbo, "customer", {"DisplayName": "Lee Bookkeeper", "CompanyName": "LB"}))["Customer"]
    await deliver(qbo)
    await deliver(qbo)
    found = (await session.scalars(select(Customer).where(Customer.display_name == "Lee Bookkeeper"))).all()
    assert len(found) == 1 and found[0].company == "LB"
    row = await ledger(session, qbo, "customer", found[0].id)
    assert (row.remote_id, row.state) == (made["Id"], LedgerState.SYNCED)


async def test_one_way_ignores_customer_edits_and_logs_them(owner, session, biz, qbo) -> None:  # noqa: ANN001
    customer, remote = await synced_customer(session, biz, qbo, "one_way")
    await control(owner, qbo, f"customer/{remote}", {"PrimaryPhone": {"FreeFormNumber": "555-0123"}})
    await control(owner, qbo, "customer", {"DisplayName": "Made In QBO"})
    mark = qbo.emulator.requests[-1].seq
    await deliver(qbo)
    # The webhook reads only the linked customer (to log the ignored edit), not the one made there.
    reads = [r.path for r in qbo.api_requests(mark) if r.method == "GET"]
    assert reads == [f"/v3/company/{qbo.realm}/customer/{remote}"]
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0100"
    row = await ledger(session, qbo, "customer", customer.id)
    assert [a for a, _ in await events(session, row)][-1] == "ignored"
    # The catch-up sees both: the edit already logged (same SyncToken) is not logged again; the new one is noted.
    polled = await inbound.poll(qbo.env, qbo.connection_id)
    assert polled is not None and polled.run is not None
    assert [e["reason"] for e in polled.run.errors if e["code"] == "ignored"] == [
        "“Made In QBO” is a customer made in QuickBooks; one-way sync does not bring it here."
    ]
    assert [a for a, _ in await events(session, row)].count("ignored") == 1
    assert await session.scalar(select(Customer).where(Customer.display_name == "Made In QBO")) is None


# ----------------------------------------------------------------------------- CDC catch-up


async def test_changes_made_while_disconnected_arrive_once_after_reconnect(app, owner, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    # First catch-up after connecting sets the cursor.
    assert await dispatch.poll_inbound(qbo.env) == 1
    assert await dispatch.poll_inbound(qbo.env) == 0  # not due again yet: nothing runs
    conn = await session.get(Connection, qbo.connection_id)
    await disconnect(qbo.env, session, conn)
    await session.commit()
    await control(owner, qbo, f"invoice/{remote_invoice}/pay")
    await deliver(qbo)  # arrives while disconnected: kept in the inbox, ignored
    assert await payments(session, invoice.id) == []
    assert await dispatch.poll_inbound(qbo.env) == 0  # a disconnected connection is not polled
    # Reconnect: the next periodic round catches up at once, from the stored cursor.
    reply, _ = await consent(owner, "quickbooks", account=qbo.realm, reconnect=qbo.connection_id)
    assert reply.status_code in (200, 302, 303)
    assert await dispatch.poll_inbound(qbo.env) == 1
    [payment] = await payments(session, invoice.id)
    assert await invoice_status(session, invoice.id) == "PAID"
    run = await session.scalar(select(SyncRun).where(SyncRun.trigger == "reconnect"))
    assert run is not None and run.direction == "import" and run.created == 1
    # Polled again, and the webhook redelivered: still one payment, nothing sent back.
    mark = qbo.emulator.requests[-1].seq
    await inbound.poll(qbo.env, qbo.connection_id)
    await qbo.emulator.webhooks.flush(force=True)
    await qbo.sync()
    assert len(await payments(session, invoice.id)) == 1
    assert creates(qbo, mark, "payment") == []


async def test_cursor_advances_only_with_committed_changes(session, biz, qbo, owner) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    await inbound.poll(qbo.env, qbo.connection_id)
    first = (await session.get(SyncCursor, (qbo.connection_id, "cdc"))).value
    await control(owner, qbo, f"invoice/{remote_invoice}/pay")
    # QuickBooks fails the catch-up: nothing applied, the cursor stays, the history says so.
    from fieldhub.hub.emulator.core import FaultRule

    qbo.emulator.faults.append(FaultRule(kind="status", status=503, path=".*/cdc", count=10))
    with pytest.raises(Exception):  # noqa: B017 - RetryLater after the client's own retries
        await inbound.poll(qbo.env, qbo.connection_id, client_options={"sleep": qbo._sleep, "timeout": 2.0})
    assert (await session.get(SyncCursor, (qbo.connection_id, "cdc"), populate_existing=True)).value == first
    assert await payments(session, invoice.id) == []
    failed = await session.scalar(select(SyncRun).where(SyncRun.status == "failed", SyncRun.direction == "import"))
    assert failed is not None
    qbo.emulator.faults.clear()
    await inbound.poll(qbo.env, qbo.connection_id)
    assert len(await payments(session, invoice.id)) == 1
    assert (await session.get(SyncCursor, (qbo.connection_id, "cdc"), populate_existing=True)).value >= first


async def test_cursor_older_than_thirty_days_does_a_full_reread(owner, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    gone, remote_gone = await synced_invoice(session, biz, qbo, "50.00")
    await control(owner, qbo, f"invoice/{remote_invoice}/pay")
    await control(owner, qbo, f"invoice/{remote_gone}/delete")
    old = utcnow() - timedelta(days=45)
    session.add(SyncCursor(connection_id=qbo.connection_id, name="cdc", value=inbound.cursor_text(old), polled_at=old))
    await session.commit()
    mark = qbo.emulator.requests[-1].seq
    polled = await inbound.poll(qbo.env, qbo.connection_id)
    assert polled is not None and polled.run is not None
    assert any(e["code"] == "full_reread" for e in polled.run.errors)
    assert not any(r.path.endswith("/cdc") for r in qbo.api_requests(mark))  # never asked CDC for 45 days
    assert len(await payments(session, invoice.id)) == 1
    assert await invoice_status(session, gone.id) == "VOID"  # deleted there, found missing by the id diff
    cursor = await session.get(SyncCursor, (qbo.connection_id, "cdc"), populate_existing=True)
    assert parse_time(cursor.value) > utcnow() - timedelta(minutes=5)


async def test_a_catch_up_closes_a_run_a_dead_worker_left_running(owner, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    await inbound.poll(qbo.env, qbo.connection_id)  # the cursor starts now
    dead = SyncRun(tenant_id=biz.tenant.id, connection_id=qbo.connection_id, trigger="schedule", direction="import")
    session.add(dead)
    await session.commit()
    await control(owner, qbo, f"invoice/{remote_invoice}/pay")
    polled = await inbound.poll(qbo.env, qbo.connection_id)
    assert polled is not None and polled.run is not None and polled.run.status == "success"
    await session.refresh(dead)
    assert (dead.status, [e["code"] for e in dead.errors]) == ("failed", ["interrupted"])
    assert len(await payments(session, invoice.id)) == 1


async def test_a_full_reread_that_fails_part_way_leaves_one_finished_run(  # noqa: ANN201
    owner,
    session,
    biz,
    qbo,
    monkeypatch,  # noqa: ANN001
):
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    await control(owner, qbo, f"invoice/{remote_invoice}/pay")
    old = utcnow() - timedelta(days=45)
    session.add(SyncCursor(connection_id=qbo.connection_id, name="cdc", value=inbound.cursor_text(old), polled_at=old))
    await session.commit()

    # QuickBooks goes down after the invoices' page was read and committed, before the payments'.
    async def down(self, adapter, entity, seen):  # noqa: ANN001, ANN202
        raise RetryLater("QuickBooks is unavailable")

    monkeypatch.setattr(inbound._Poll, "_gone", down)
    with pytest.raises(RetryLater):
        await inbound.poll(qbo.env, qbo.connection_id)
    runs = list(
        await session.scalars(
            select(SyncRun).where(SyncRun.direction == "import").execution_options(populate_existing=True)
        )
    )
    assert [r.status for r in runs] == ["failed"]  # one run, finished: none left "running" forever
    assert [e["code"] for e in runs[0].errors] == ["full_reread", "retry_later"]
    assert runs[0].finished_at is not None
    assert await payments(session, invoice.id) == []  # the payments' page was never reached


# ----------------------------------------------------------------------------- periodic tasks


async def test_periodic_tasks_run_once_per_round_across_workers(qbo) -> None:  # noqa: ANN001
    calls: list[str] = []

    async def task(env) -> None:  # noqa: ANN001
        calls.append("ran")

    tasks = [dispatch.PeriodicTask("test.task", 3600, task)]
    assert await dispatch.run_periodic(qbo.env, tasks, holder="worker-a") == ["test.task"]
    assert await dispatch.run_periodic(qbo.env, tasks, holder="worker-b") == []  # not due again
    assert calls == ["ran"]
    # While one holder runs it, no other can, even when it is due.
    assert await dispatch.claim_periodic(qbo.env, "test.busy", 0, "worker-a")
    assert not await dispatch.claim_periodic(qbo.env, "test.busy", 0, "worker-b")
    await dispatch.release_periodic(qbo.env, "test.busy", "worker-a")
    assert await dispatch.claim_periodic(qbo.env, "test.busy", 0, "worker-b")


async def test_scheduled_sweep_processes_what_a_crash_left(app, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    company = qbo.emulator.companies[qbo.realm]
    paid = company.create(
        "Payment",
        {
            "CustomerRef": {"value": company.read("Invoice", remote_invoice)["CustomerRef"]["value"]},
            "TotalAmt": Decimal("120.00"),
            "Line": [{"Amount": Decimal("120.00"), "LinkedTxn": [{"TxnId": remote_invoice, "TxnType": "Invoice"}]}],
        },
    )
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": qbo.realm,
                    "dataChangeEvent": {
                        "entities": [{"name": "Payment", "id": paid["Id"], "operation": "Create", "lastUpdated": "x"}]
                    },
                }
            ]
        }
    )
    # Stored, then the process died before processing it.
    event = qbo_webhooks.parse(json.loads(body))
    session.add(
        WebhookInbox(
            provider="quickbooks",
            event_id=event.id,
            event_type=event.type,
            tenant_id=biz.tenant.id,
            connection_id=qbo.connection_id,
            received_at=utcnow() - timedelta(minutes=5),
            body=body,
            headers={},
            state=InboxState.RECEIVED,
            attempts=0,
            error="",
        )
    )
    await session.commit()
    ran = await dispatch.run_periodic(qbo.env, holder="worker-a")
    assert "webhooks.sweep" in ran and "inbound.poll" in ran
    assert len(await payments(session, invoice.id)) == 1
    state = await session.scalar(select(WebhookInbox.state).where(WebhookInbox.event_id == event.id))
    assert state == InboxState.PROCESSED
    # Right after, nothing is due: each task is one UPDATE that touches no row.
    assert await dispatch.run_periodic(qbo.env, holder="worker-b") == []
    assert len(await payments(session, invoice.id)) == 1


async def test_two_workers_never_poll_one_connection_at_once(session, biz, qbo) -> None:  # noqa: ANN001
    from fieldhub.hub.sync.engine import acquire_lease, release_lease

    assert await acquire_lease(session, qbo.connection_id, "export-run")
    assert await inbound.poll(qbo.env, qbo.connection_id) is None  # the connection is busy: skipped, not waited
    assert await session.get(SyncCursor, (qbo.connection_id, "cdc")) is None
    await release_lease(session, qbo.connection_id, "export-run")
    await session.execute(update(Connection).values(connected_at=utcnow() - timedelta(hours=1)))
    await session.commit()
    await inbound.poll(qbo.env, qbo.connection_id)
    # Due again only after the interval: a second worker that saw it due does nothing.
    assert await inbound.poll(qbo.env, qbo.connection_id, due_before=utcnow() - timedelta(minutes=5)) is None


async def test_the_reply_goes_out_before_the_event_is_processed(app, session, biz, qbo) -> None:  # noqa: ANN001
    invoice, remote_invoice = await synced_invoice(session, biz, qbo)
    qbo.emulator.webhooks.pending.clear()
    company = qbo.emulator.companies[qbo.realm]
    company.create(
        "Payment",
        {
            "CustomerRef": {"value": company.read("Invoice", remote_invoice)["CustomerRef"]["value"]},
            "TotalAmt": Decimal("120.00"),
            "Line": [{"Amount": Decimal("120.00"), "LinkedTxn": [{"TxnId": remote_invoice, "TxnType": "Invoice"}]}],
        },
    )
    body = qbo.emulator.webhooks.body(qbo.emulator.webhooks.pending, "classic").encode()
    at_reply: list[tuple[int, object]] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            replied.append(time.monotonic() - started)
            async with app.state.sessionmaker() as s:
                at_reply.append((message["status"], await s.scalar(select(WebhookInbox.state))))

    headers = [(b"content-type", b"application/json"), (b"intuit-signature", sign(body, SECRET).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/quickbooks",
        "raw_path": b"/webhooks/quickbooks",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    async with app.state.sessionmaker() as s:
        await s.execute(WebhookInbox.__table__.delete())
        await s.commit()
    replied: list[float] = []
    started = time.monotonic()
    await app(scope, receive, send)
    # Stored and answered first (well within Intuit's 3 s); the QuickBooks reads and the payment came after.
    assert at_reply == [(200, InboxState.RECEIVED)]
    assert replied[0] < 3.0
    assert len(await payments(session, invoice.id)) == 1


async def test_the_embedded_dispatcher_runs_the_periodic_tasks(app, qbo) -> None:  # noqa: ANN001
    from fieldhub.hub.sync.models import PeriodicLease

    dispatcher = dispatch.Dispatcher(qbo.env, sweep_seconds=3600, periodic_seconds=0.05)
    await dispatcher.start()
    try:
        for _ in range(100):
            async with app.state.sessionmaker() as s:
                names = set((await s.scalars(select(PeriodicLease.name))).all())
                polled = await s.get(SyncCursor, (qbo.connection_id, "cdc"))
            if polled is not None and {"webhooks.sweep", "oauth.refresh_ahead", "inbound.poll"} <= names:
                break
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert {"webhooks.sweep", "oauth.refresh_ahead", "inbound.poll"} <= names
    assert polled is not None and polled.polled_at is not None  # the new connection was caught up at once
    # `fieldhub worker`s run the same tasks as procrastinate's `fieldhub.periodic` job (tests/hub/sync/test_queue.py).


async def test_a_full_cdc_reply_is_not_a_checkpoint(session, biz, qbo) -> None:  # noqa: ANN001
    await inbound.poll(qbo.env, qbo.connection_id)  # the cursor starts now
    company = qbo.emulator.companies[qbo.realm]
    for n in range(12):  # changes spread over three seconds there
        if n % 4 == 0:
            qbo.emulator.clock.advance(1.0)
        company.create("Customer", {"DisplayName": f"Bookkeeper {n:02d}"})
    mark = qbo.emulator.requests[-1].seq
    # QuickBooks caps a reply at 1,000 objects; here at 10, so the 12 changes fill the first reply.
    polled = await inbound.poll(qbo.env, qbo.connection_id, cdc_max=10)
    asked = [r for r in qbo.api_requests(mark) if r.path.endswith("/cdc")]
    # A full reply: the cursor moved to its newest change and QuickBooks was asked again from there.
    assert len(asked) == 2
    assert polled is not None and polled.run is not None
    seen = [e["remote_id"] for e in polled.run.errors if e["code"] == "ignored"]  # one-way: logged, not imported
    assert len(set(seen)) == 12
    cursor = await session.get(SyncCursor, (qbo.connection_id, "cdc"), populate_existing=True)
    newest = max(company.stamps[("Customer", cid)] for cid in company.objects["Customer"])
    assert parse_time(cursor.value).timestamp() >= int(newest) - 2
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_a_webhook_waits_for_a_running_sync_and_then_applies(monkeypatch, owner, session, biz, qbo) -> None:  # noqa: ANN001
    from fieldhub.hub.sync.engine import acquire_lease, release_lease
    from fieldhub.hub.webhooks import inbox

    customer, remote = await synced_customer(session, biz, qbo, "two_way")
    await control(owner, qbo, f"customer/{remote}", {"PrimaryPhone": {"FreeFormNumber": "555-0142"}})
    monkeypatch.setattr(inbound, "WEBHOOK_LEASE_WAIT", 0.3)
    # A run holds the connection: the event is not applied beside it, and not counted as a failure.
    assert await acquire_lease(session, qbo.connection_id, "other-host:1:run", seconds=60)
    await deliver(qbo)
    row = (await session.scalars(select(WebhookInbox).order_by(WebhookInbox.id.desc()))).first()
    assert (row.state, row.attempts) == (InboxState.RECEIVED, 0), row.error
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0100"
    # Once the run lets go, the sweep applies it.
    await release_lease(session, qbo.connection_id, "other-host:1:run")
    await inbox.process(qbo.env, row.id)
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0142"
    await session.refresh(row)
    assert row.state == InboxState.PROCESSED


async def test_an_older_copy_of_a_customer_never_overwrites_a_newer_one(owner, session, biz, qbo) -> None:  # noqa: ANN001
    customer, remote = await synced_customer(session, biz, qbo, "two_way")
    await control(owner, qbo, f"customer/{remote}", {"PrimaryPhone": {"FreeFormNumber": "555-0177"}})
    await deliver(qbo)
    row = await ledger(session, qbo, "customer", customer.id)
    newer = row.remote_version
    older = dict(qbo.objects("Customer")[remote], SyncToken=str(int(newer) - 1))
    older["PrimaryPhone"] = {"FreeFormNumber": "555-0000"}
    conn = await session.get(Connection, qbo.connection_id)
    applier = inbound.Inbound(session, conn, "webhook")
    assert await applier.apply("customer", remote, party(older)) is False  # read before the newer one, applied after
    await session.commit()
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0177"


# ----------------------------------------------------------------------------- echoes (issue 14 item 5)


def reads(qbo: QBOSetup, since: int) -> list[str]:
    """GETs of single objects (`/customer/58`, `/invoice/145`): what a webhook's notice costs when it is read."""
    return [
        r.path
        for r in qbo.api_requests(since)
        if r.method == "GET" and r.path.rstrip("/").split("/")[-2].lower() in ("customer", "invoice", "payment")
    ]


async def test_issue14_item5_echoes_of_our_own_writes_cost_no_request_and_no_lease(
    monkeypatch, owner, session, biz, qbo
) -> None:  # noqa: ANN001
    """Every webhook QuickBooks sends about fieldhub's own creates (customers, invoices, payments and the Update of
    the invoice each payment touches) and updates is dropped from the ledger alone: no GET from the company's
    500-a-minute budget, and the connection's lease is never asked for. Before, every invoice echo cost a GET."""
    from fieldhub.core.invoices.service import record_payment

    conn = await session.get(Connection, qbo.connection_id)
    conn.settings = {**conn.settings, "customer_direction": "two_way"}
    await session.commit()
    invoices = [await sent_invoice(session, biz, f"{100 + n}.00") for n in range(4)]
    for invoice in invoices:
        await record_payment(session, biz.tenant.id, invoice.id, {"amount": "10.00", "method": "cash"})
    await session.commit()
    mark = qbo.emulator.requests[-1].seq
    asked: list[int] = []
    real_wait = inbound._wait_for_lease

    async def wait_for_lease(env, connection_id, holder):  # noqa: ANN001, ANN202
        asked.append(connection_id)
        return await real_wait(env, connection_id, holder)

    monkeypatch.setattr(inbound, "_wait_for_lease", wait_for_lease)
    run = await qbo.sync()
    assert run.status == "success" and run.created == 12, run.errors
    customer = (await session.scalars(select(Customer).order_by(Customer.id))).first()
    await update_customer(session, biz.tenant.id, customer.id, {"phone": "555-0111"})
    await session.commit()
    assert (await qbo.sync()).updated == 1
    notified = sum(len(d.events) for d in qbo.emulator.webhooks.deliveries) + len(qbo.emulator.webhooks.pending)
    assert await deliver(qbo) and notified >= 17  # creates, the invoices' touches, the update
    assert reads(qbo, mark) == []
    assert asked == []
    states = (await session.scalars(select(WebhookInbox.state))).all()
    assert states and set(states) == {InboxState.IGNORED}
    # A bookkeeper's change a second later is no echo: read and applied.
    remote = (await ledger(session, qbo, "customer", customer.id)).remote_id
    await control(owner, qbo, f"customer/{remote}", {"PrimaryPhone": {"FreeFormNumber": "555-0199"}})
    await deliver(qbo)
    assert reads(qbo, mark) == [f"/v3/company/{qbo.realm}/customer/{remote}"]
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0199"


async def test_issue14_item5_a_notice_of_a_create_still_unconfirmed_waits_for_the_ledger_not_a_read(
    session, biz, qbo
) -> None:  # noqa: ANN001
    """kill -9 after QuickBooks made a batch's payments and before their reply was committed: the webhook names
    payments the ledger does not know, and a read would only find fieldhub's marker. The event waits (received) for
    the engine to settle the creates; then it is an echo, dropped without a read."""
    from fieldhub.core.invoices.service import record_payment
    from fieldhub.hub.webhooks import inbox

    invoice = await sent_invoice(session, biz)
    await qbo.sync()
    payment = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "10.00", "method": "cash"})
    await session.commit()
    qbo.emulator.webhooks.deliveries.clear()
    qbo.emulator.webhooks.pending.clear()
    # The crash: the create reached QuickBooks, its reply never reached the ledger (key committed, no remote id).
    from fieldhub.hub.emulator.core import FaultRule

    qbo.emulator.faults.append(FaultRule(kind="drop_after_commit", path="/payment", count=10))  # every retry too
    await qbo.sync()
    row = await ledger(session, qbo, "payment", payment.id)
    assert row.remote_id is None and row.idempotency_key, (row.remote_id, row.error_reason)
    mark = qbo.emulator.requests[-1].seq
    await deliver(qbo)
    event = (await session.scalars(select(WebhookInbox).order_by(WebhookInbox.id.desc()))).first()
    assert (event.state, event.attempts) == (InboxState.RECEIVED, 0), event.error
    assert reads(qbo, mark) == []
    qbo.emulator.faults.clear()
    await dispatch.request_sync(session, qbo.connection_id)  # Sync Now: the row is due without its back-off
    await session.commit()
    await qbo.sync()  # the next run settles the create (requestid replayed)
    row = await ledger(session, qbo, "payment", payment.id)
    assert row.remote_id and row.state == LedgerState.SYNCED
    assert await inbox.process(qbo.env, event.id) == InboxState.IGNORED
    assert reads(qbo, mark) == []
    assert len([p for p in qbo.objects("Payment").values() if p.get("PrivateNote", "").endswith(f"#{payment.id}")]) == 1
