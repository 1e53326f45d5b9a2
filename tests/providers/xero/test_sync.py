"""fieldhub records to Xero through the sync engine and the Xero export adapter, on the emulator (issue 16 item 3).

Every request the adapter sends is held to xero_accounting.yaml (unknown keys included), every create carries an
Idempotency-Key, and a reply lost after Xero acted on it makes nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from fieldhub.core.invoices.service import create_invoice, record_payment, refund_payment, send_invoice, void_invoice
from fieldhub.core.payments import deposits
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.db import utcnow
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.providers.xero.emulator import XeroEmulator
from fieldhub.providers.xero.emulator.spec import load_spec
from tests.conftest import Business
from tests.providers.xero.hub import TENANT, XeroSetup, books_of, drain


def _requests_meet_the_spec(emulator: XeroEmulator) -> int:
    spec = load_spec()
    if spec is None:
        pytest.skip("shared/specs/xero not found")
    checked = 0
    for entry in emulator.requests:
        if entry.path.startswith("/api.xro/2.0/") and entry.method in ("PUT", "POST") and entry.body:
            assert spec.request_errors(entry.method, entry.path, json.loads(entry.body)) == [], entry.body
            if entry.method == "PUT":
                assert entry.headers.get("idempotency-key"), f"a create without its key: {entry.path}"
            checked += 1
    return checked


async def test_issue16_item3_records_reach_xero_once_each_with_xeros_shapes(session, biz: Business, xero: XeroSetup):
    made = await books_of(session, biz, 3)
    # A draft stays here; a refund on a paid-down invoice becomes a credit note allocated to it.
    draft = await create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": made["customer"][0].id, "lines": [{"description": "Quote", "unit_price": "9"}]},
    )
    await refund_payment(session, biz.tenant.id, made["payment"][0].id, {"amount": "2.00"})
    await deposits.record_deposit(
        session,
        biz.tenant.id,
        source="stripe",
        source_id="po_xero_1",
        net=Decimal("9.40"),
        arrival_date=utcnow().date(),
        lines=[
            deposits.DepositLineIn(DepositLineKind.PAYMENT, Decimal("5.00"), payment_id=made["payment"][1].id),
            deposits.DepositLineIn(DepositLineKind.PAYMENT, Decimal("5.00"), payment_id=made["payment"][2].id),
            deposits.DepositLineIn(DepositLineKind.FEE, Decimal("-0.60")),
        ],
    )
    await session.commit()
    await drain(session, xero)

    books = xero.books
    contacts = {c["Name"]: c for c in books.contacts.values()}
    assert all(Counter(c["Name"] for c in books.contacts.values())[c.display_name] == 1 for c in made["customer"])
    first = contacts["Customer 000"]
    addresses = {a["AddressType"]: a for a in first["Addresses"]}
    assert addresses["POBOX"]["AddressLine1"] == "0 Mill Lane" and addresses["STREET"]["AddressLine1"] == "0 Site Road"
    assert len(books.items) == 2 and all(i["SalesDetails"]["AccountCode"] == "200" for i in books.items.values())
    invoices = {i["Reference"]: i for i in books.invoices.values()}
    assert f"fieldhub invoice #{draft.id}" not in invoices and len(invoices) == 3
    for invoice in made["invoice"]:
        remote = invoices[f"fieldhub invoice #{invoice.id}"]
        assert remote["Type"] == "ACCREC" and remote["Total"] == invoice.total
        assert remote["InvoiceNumber"] == invoice.number
    # The refund: a credit note refunded in cash from where the payment landed; the invoice's balance stands.
    refunded = invoices[f"fieldhub invoice #{made['invoice'][0].id}"]
    assert refunded["AmountPaid"] == Decimal("5.00") and refunded["AmountDue"] == made["invoice"][0].total - 5
    (credit,) = books.credit_notes.values()
    assert credit["Type"] == "ACCRECCREDIT" and credit["Status"] == "PAID" and credit["Total"] == Decimal("2.00")
    kinds = Counter(p["PaymentType"] for p in books.payments.values())
    assert kinds == {"ACCRECPAYMENT": 3, "ARCREDITPAYMENT": 1}
    assert {p["Account"]["Code"] for p in books.payments.values()} == {"090"}
    (payout,) = books.bank_transactions.values()
    assert payout["Type"] == "RECEIVE" and payout["Total"] == Decimal("9.40") and payout["BankAccount"]["Code"] == "090"
    assert [line["AccountCode"] for line in payout["LineItems"]] == ["092", "404"]
    assert _requests_meet_the_spec(xero.emulator) >= 3 * 3 + 2 + 1 + 1

    # A sent invoice voided here goes VOIDED there.
    extra = await create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": made["customer"][1].id, "lines": [{"description": "Trip", "unit_price": "40"}]},
    )
    await send_invoice(session, biz.tenant.id, extra.id)
    await session.commit()
    await drain(session, xero)
    await void_invoice(session, biz.tenant.id, extra.id)
    await session.commit()
    await drain(session, xero)
    voided = next(i for i in books.invoices.values() if i["Reference"] == f"fieldhub invoice #{extra.id}")
    assert voided["Status"] == "VOIDED"


async def test_issue16_item3_a_lost_reply_makes_nothing_twice(session, biz: Business, xero: XeroSetup):
    made = await books_of(session, biz, 4)
    emu = xero.emulator
    emu.faults += [
        FaultRule(kind="drop_after_commit", method="PUT", path="/Contacts$", count=1),
        FaultRule(kind="drop_after_commit", method="PUT", path="/Invoices$", count=1),
        FaultRule(kind="drop_after_commit", method="PUT", path="/Payments$", count=1),
        FaultRule(kind="status", status=503, probability=0.1),
        FaultRule(kind="rate_limit", probability=0.05, retry_after=1.0),
    ]
    emu.random.seed(3)
    await drain(session, xero, timeout=0.5)
    books = xero.books
    assert Counter(c["Name"] for c in books.contacts.values()) == Counter(c.display_name for c in made["customer"])
    assert sorted(i["Reference"] for i in books.invoices.values()) == sorted(
        f"fieldhub invoice #{i.id}" for i in made["invoice"]
    )
    assert len(books.payments) == 4
    assert sum(1 for r in emu.requests if r.fault == "drop_after_commit") == 3


async def test_issue16_item3_faults_end_exactly_once_and_retry_after_is_obeyed(session, biz: Business, xero: XeroSetup):
    """The issue's fault mix (bench/_faultkit, what `fieldhub bench faults --provider xero` runs at full size)."""
    from bench import _faultkit as kit

    made = await kit.make_records(session, biz.tenant.id, 12)
    emulator = xero.emulator
    first = emulator.requests[-1].seq
    kit.inject_faults(emulator, seed=5, timeout_delay=1.0)
    emulator.faults[:0] = [FaultRule(kind="rate_limit", path="/Invoices$", count=1, retry_after=1.0)]
    exchanges = kit.ExchangeLog.around_quickbooks(xero.env, emulator)
    await kit.drain(xero.env, xero.connection_id, client_options={"timeout": 0.5, "transport": exchanges})
    sent = [r for r in emulator.requests if r.seq > first]
    assert kit.fault_counts(sent)["rate_limit"] >= 1
    assert exchanges.violations() == [] and kit.retry_after_violations(sent) == []
    found = await kit.audit(xero.env.sessionmaker, emulator, xero.connection_id, TENANT)
    assert found.records == made and found.clean, (found.figures(), found.details[:10])


async def test_issue16_item3_a_backfill_past_the_days_budget_pauses_and_finishes_next_day_without_a_429(
    session, biz: Business, xero: XeroSetup
):
    from bench import _faultkit as kit
    from fieldhub.providers.xero import sync as xero_sync

    emulator = xero.emulator
    day = next(rule for rule in emulator.rate_rules if rule.name == "day")
    day.limit = xero_sync.DAY_RESERVE + 30  # the day's 5,000 scaled down: 30 calls above the reserve are left
    made = await kit.make_records(session, biz.tenant.id, 42)  # 42 creates: more than the day has left
    await xero.sync(trigger="backfill")
    rows = list(await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == xero.connection_id)))
    waiting = [r for r in rows if r.state == LedgerState.PENDING]
    assert 20 <= len(rows) - len(waiting) <= 30 and waiting  # it stopped with the reserve left, not at a 429
    assert any("daily limit" in (r.error_reason or "") for r in waiting)
    assert min(r.next_attempt_at for r in waiting) > utcnow() + timedelta(minutes=50)
    assert await xero.sync() is None  # nothing is due: no call is spent looking
    # The next emulated day: the calls of the first have aged out of Xero's 24 hours.
    emulator.clock.advance(86_400)
    await drain(session, xero)
    assert [r.status for r in emulator.requests if r.status == 429] == []
    found = await kit.audit(xero.env.sessionmaker, emulator, xero.connection_id, TENANT)
    assert found.records == made and found.clean, found.details[:10]


async def test_issue16_item3_a_second_payment_after_the_first_synced_leaves_xeros_invoice_in_step(
    session, biz: Business, xero: XeroSetup
):
    made = await books_of(session, biz, 1)
    await drain(session, xero)
    invoice = made["invoice"][0]
    await record_payment(session, biz.tenant.id, invoice.id, {"amount": "7.00"})  # the invoice changes here too
    await session.commit()
    await drain(session, xero)
    rows = list(await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == xero.connection_id)))
    assert all(r.state == LedgerState.SYNCED for r in rows), [(r.entity, r.error_code) for r in rows]
    remote = next(i for i in xero.books.invoices.values() if i["Reference"] == f"fieldhub invoice #{invoice.id}")
    assert remote["AmountPaid"] == Decimal("12.00") and remote["AmountDue"] == invoice.total - Decimal("12.00")
