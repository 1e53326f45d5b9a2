"""The QuickBooks export adapter under faults, and every request it sends checked against Intuit's XSD."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, refund_payment, send_invoice
from fieldhub.core.items.service import create_item
from fieldhub.core.payments import deposits
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.db import utcnow
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.providers.quickbooks.emulator import xsd
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup, connect_mapped


@pytest.fixture
async def synced(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


async def backfill(session, biz: Business, customers: int) -> dict[str, list]:
    """customers × (1 customer, 1 sent invoice, 1 payment) + 3 items: about 3 records per customer."""
    tenant = biz.tenant.id
    items = [await create_item(session, tenant, {"name": f"Part {i}", "unit_price": f"{10 + i}.25"}) for i in range(3)]
    made: dict[str, list] = {"customer": [], "invoice": [], "payment": [], "item": items}
    for n in range(customers):
        customer = await create_customer(session, tenant, {"display_name": f"Customer {n:03d}"})
        invoice = await create_invoice(
            session,
            tenant,
            {
                "customer_id": customer.id,
                "lines": [
                    {"item_id": items[n % 3].id, "quantity": str(n % 4 + 1)},
                    {"description": "Labour", "unit_price": f"{n}.10"},
                ],
            },
        )
        await send_invoice(session, tenant, invoice.id)
        payment = await record_payment(session, tenant, invoice.id, {"amount": "5.00"})
        made["customer"].append(customer)
        made["invoice"].append(invoice)
        made["payment"].append(payment)
    await session.commit()
    return made


async def drain(session, qbo: QBOSetup, runs: int = 40) -> None:
    """Run until nothing is pending, letting back-off time pass between runs."""
    for _ in range(runs):
        await qbo.sync(trigger="backfill")
        pending = await session.scalar(
            select(LedgerRow.id).where(
                LedgerRow.connection_id == qbo.connection_id, LedgerRow.state != LedgerState.SYNCED
            )
        )
        if pending is None:
            await session.commit()
            return
        await session.execute(
            update(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id).values(next_attempt_at=utcnow())
        )
        await session.commit()
    raise AssertionError("backfill did not finish")


def assert_one_each(qbo: QBOSetup, made: dict[str, list]) -> None:
    names = Counter(c["DisplayName"] for c in qbo.objects("Customer").values())
    assert all(names[c.display_name] == 1 for c in made["customer"])
    items = Counter(i["Name"] for i in qbo.objects("Item").values())
    assert all(items[i.name] == 1 for i in made["item"])
    for entity, remote in (("invoice", "Invoice"), ("payment", "Payment")):
        notes = Counter(o.get("PrivateNote") for o in qbo.objects(remote).values())
        for record in made[entity]:
            assert notes[f"fieldhub {entity} #{record.id}"] == 1, (entity, record.id)
    by_note = {o.get("PrivateNote"): o for o in qbo.objects("Invoice").values()}
    for invoice in made["invoice"]:
        remote = by_note[f"fieldhub invoice #{invoice.id}"]
        assert Decimal(str(remote["TotalAmt"])) == invoice.total
        # QBO books a refund as its own RefundReceipt; the invoice keeps the payment applied.
        assert Decimal(str(remote["Balance"])) == invoice.total - Decimal("5.00")


@pytest.mark.slow
async def test_backfill_under_faults_ends_with_everything_exactly_once(session, biz: Business, synced: QBOSetup):
    qbo = synced
    made = await backfill(session, biz, 65)  # 3 + 65 × 3 = 198 records
    emu = qbo.emulator
    emu.random.seed(7)
    # Each kind once for certain on the batch path (a run of 198 records makes few requests), then at random.
    emu.faults += [
        FaultRule(kind="rate_limit", path="/batch$", count=1, retry_after=1.0),
        FaultRule(kind="timeout", path="/batch$", count=1, delay=0.5),
        FaultRule(kind="drop_after_commit", path="/batch$", count=1),
        FaultRule(kind="status", status=503, probability=0.10),
        FaultRule(kind="rate_limit", probability=0.05, retry_after=1.0),
        FaultRule(kind="timeout", probability=0.02, delay=0.5),
        FaultRule(kind="drop_after_commit", probability=0.01),
    ]
    for _ in range(40):
        await qbo.sync(trigger="backfill", client_options={"timeout": 0.2})
        left = await session.scalar(
            select(LedgerRow.id).where(
                LedgerRow.connection_id == qbo.connection_id, LedgerRow.state != LedgerState.SYNCED
            )
        )
        if left is None:
            break
        await session.execute(
            update(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id).values(next_attempt_at=utcnow())
        )
        await session.commit()
    await session.commit()
    rows = list(await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id)))
    assert len(rows) == 198 and all(r.state == LedgerState.SYNCED for r in rows)
    faults = Counter(r.fault for r in emu.requests if r.fault)
    assert faults["status"] and faults["rate_limit"] and faults["timeout"], faults
    assert_one_each(qbo, made)
    # Retry-After obeyed: the client waited the 1 s each 429 asked for before sending again (counted from when
    # the reply came, so a hair less by the time the wait starts).
    throttled = faults["rate_limit"]
    assert sum(1 for s in qbo.sleeps if 0.95 < s <= 1.0) >= throttled * 0.5


async def test_every_request_validates_against_the_qbo_xsd(session, biz: Business, synced: QBOSetup):
    if xsd.find_specs_dir() is None:
        pytest.skip("Intuit's XSDs (shared/specs/qbo) are not beside this checkout")
    qbo = synced
    made = await backfill(session, biz, 4)
    await refund_payment(session, biz.tenant.id, made["payment"][0].id, {"amount": "2.00"})
    # A payout carrying two of the payments, less fees: a Deposit linking them, with a fee line.
    await deposits.record_deposit(
        session,
        biz.tenant.id,
        source="stripe",
        source_id="po_xsd",
        net=Decimal("9.40"),
        arrival_date=utcnow().date(),
        lines=[
            deposits.DepositLineIn(DepositLineKind.PAYMENT, Decimal("5.00"), payment_id=made["payment"][1].id),
            deposits.DepositLineIn(DepositLineKind.PAYMENT, Decimal("5.00"), payment_id=made["payment"][2].id),
            deposits.DepositLineIn(DepositLineKind.FEE, Decimal("-0.60")),
        ],
    )
    await session.commit()
    await drain(session, qbo)
    assert_one_each(qbo, made)
    assert any(r.path.endswith("/refundreceipt") for r in qbo.emulator.requests)
    assert any(r.path.endswith("/deposit") for r in qbo.emulator.requests)
    checked = 0
    for request in qbo.api_requests():
        if request.method != "POST" or not request.body:
            continue
        body = json.loads(request.body)
        resource = request.path.rsplit("/", 1)[-1]
        if resource == "batch":
            for op in body["BatchItemRequest"]:
                entity = next(k for k in op if k not in ("bId", "operation", "optionsData"))
                assert xsd.validate_request(entity, op[entity]) == [], (entity, op[entity])
                checked += 1
            continue
        entity = {"refundreceipt": "RefundReceipt"}.get(resource, resource.capitalize())
        assert xsd.validate_request(entity, body) == [], (entity, body)
        checked += 1
    assert checked >= 4 * 3 + 3 + 1 + 1
