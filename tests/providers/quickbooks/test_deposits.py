"""Payout deposits to QuickBooks: a bank deposit recorded in fieldhub becomes one QBO Deposit whose lines link the
payments and refund receipts it carries, book the fees to the mapped expense account and sum to the payout exactly;
the emulator keeps QBO's rules for deposits; the mapping page offers the fees account."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, refund_payment, send_invoice
from fieldhub.core.payments import deposits
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.hub.sync.status import record_labels
from fieldhub.hub.webhooks.models import RemoteLink
from fieldhub.providers.quickbooks.emulator import xsd
from fieldhub.providers.quickbooks.mapping import PAYOUT_NOTE
from tests.hub.sync.conftest import MAPPING, QBOSetup, connect_mapped

Line = deposits.DepositLineIn
FEES = "7"  # the seeded US company's "Stripe Fees" expense account
CHECKING = "4"
UNDEPOSITED = "3"
# In-process emulator calls are fast, but a loaded CI machine can stall one past the default 2 s timeout.
SLOW_MACHINE = {"timeout": 30.0}


@pytest.fixture
async def books(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


async def _paid_online(session, tenant: int, name: str, amount: str, n: int):
    """A sent invoice paid in full through the card processor (as the Stripe webhook records it: with its link)."""
    customer = await create_customer(session, tenant, {"display_name": name})
    invoice = await create_invoice(
        session, tenant, {"customer_id": customer.id, "lines": [{"description": "Service call", "unit_price": amount}]}
    )
    await send_invoice(session, tenant, invoice.id)
    payment = await record_payment(
        session, tenant, invoice.id, {"amount": amount, "method": "card", "reference": f"pi_test_{n}"}
    )
    session.add(
        RemoteLink(
            tenant_id=tenant,
            provider="stripe",
            kind="payment_intent",
            remote_id=f"pi_test_{n}",
            local_entity="payment",
            local_id=payment.id,
        )
    )
    return invoice, payment


async def _refund_online(session, tenant: int, payment, amount: str, n: int):
    refund = await refund_payment(session, tenant, payment.id, {"amount": amount, "reference": f"re_test_{n}"})
    session.add(
        RemoteLink(
            tenant_id=tenant,
            provider="stripe",
            kind="refund",
            remote_id=f"re_test_{n}",
            local_entity="refund",
            local_id=refund.id,
        )
    )
    return refund


def _by_note(books: QBOSetup, entity: str, note: str) -> dict:
    found = [o for o in books.objects(entity).values() if o.get("PrivateNote") == note]
    assert len(found) == 1, (entity, note, [o.get("PrivateNote") for o in books.objects(entity).values()])
    return found[0]


async def test_payout_deposit_links_payments_and_refunds_and_books_fees(session, biz, books: QBOSetup) -> None:
    tenant = biz.tenant.id
    _, first = await _paid_online(session, tenant, "Ada Lovelace", "200.00", 1)
    _, second = await _paid_online(session, tenant, "Grace Hopper", "99.99", 2)
    refund = await _refund_online(session, tenant, first, "50.00", 1)
    # Gross 299.99, refunded 50.00, fees 6.10 + 3.20: 240.69 arrives.
    deposit = await deposits.record_deposit(
        session,
        tenant,
        source="stripe",
        source_id="po_1TestPayout0001",
        net=Decimal("240.69"),
        arrival_date=date(2026, 11, 20),
        lines=[
            Line(DepositLineKind.PAYMENT, Decimal("200.00"), payment_id=first.id, source_id="txn_1"),
            Line(DepositLineKind.FEE, Decimal("-6.10"), source_id="txn_1"),
            Line(DepositLineKind.PAYMENT, Decimal("99.99"), payment_id=second.id, source_id="txn_2"),
            Line(DepositLineKind.FEE, Decimal("-3.20"), source_id="txn_2"),
            Line(DepositLineKind.REFUND, Decimal("-50.00"), refund_id=refund.id, source_id="txn_3"),
        ],
    )
    await session.commit()
    since = books.emulator.requests[-1].seq if books.emulator.requests else 0

    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors

    # Payments stay in Undeposited Funds (QBO's default), each linked to its invoice for its amount...
    qbo_first = _by_note(books, "Payment", f"fieldhub payment #{first.id}")
    qbo_second = _by_note(books, "Payment", f"fieldhub payment #{second.id}")
    for remote, local in ((qbo_first, first), (qbo_second, second)):
        assert remote["DepositToAccountRef"]["value"] == UNDEPOSITED
        assert Decimal(str(remote["TotalAmt"])) == local.amount
        invoice = books.objects("Invoice")[remote["Line"][0]["LinkedTxn"][0]["TxnId"]]
        assert invoice["PrivateNote"] == f"fieldhub invoice #{local.invoice_id}"
    # ...the processor's refund is paid from Undeposited Funds too, where the payout takes it from...
    receipt = _by_note(books, "RefundReceipt", f"fieldhub refund #{refund.id}")
    assert receipt["DepositToAccountRef"]["value"] == UNDEPOSITED and receipt["TotalAmt"] == Decimal("50.00")
    # ...and the payout is one Deposit into the mapped bank account that adds up to it exactly.
    remote = _by_note(books, "Deposit", f"fieldhub deposit #{deposit.id} · stripe payout po_1TestPayout0001")
    assert remote["DepositToAccountRef"]["value"] == CHECKING
    assert remote["TxnDate"] == "2026-11-20"
    assert remote["TotalAmt"] == Decimal("240.69") == deposit.net
    assert sum(line["Amount"] for line in remote["Line"]) == deposit.net
    links = [(ln["LinkedTxn"][0]["TxnType"], ln["LinkedTxn"][0]["TxnId"], ln["Amount"]) for ln in remote["Line"][:3]]
    assert links == [
        ("Payment", qbo_first["Id"], Decimal("200.00")),
        ("Payment", qbo_second["Id"], Decimal("99.99")),
        ("RefundReceipt", receipt["Id"], Decimal("-50.00")),
    ]
    fee = remote["Line"][3]
    assert fee["Amount"] == Decimal("-9.30") and fee["DepositLineDetail"]["AccountRef"]["value"] == FEES
    assert len(remote["Line"]) == 4
    # H5's reconciliation finds the payout in the PrivateNote.
    match = PAYOUT_NOTE.search(remote["PrivateNote"])
    assert match and match["source"] == "stripe" and match["payout"] == "po_1TestPayout0001"

    # Every body sent validates against Intuit's XSD, the deposit's included.
    if xsd.find_specs_dir() is not None:
        sent = [r for r in books.api_requests(since) if r.method == "POST" and r.body]
        assert any(r.path.endswith("/deposit") for r in sent)
        for request in sent:
            resource = request.path.rsplit("/", 1)[-1]
            if resource == "batch":
                continue  # customers and invoices: test_sync checks those
            entity = {"refundreceipt": "RefundReceipt"}.get(resource, resource.capitalize())
            assert xsd.validate_request(entity, json.loads(request.body, parse_float=Decimal)) == [], entity

    # Synced once: a second run sends nothing, and the ledger says synced.
    assert await books.sync(client_options=SLOW_MACHINE) is None  # nothing due: no run
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "deposit"))
    assert row is not None and row.state == LedgerState.SYNCED and row.remote_id == remote["Id"]


async def test_a_deposit_waits_for_nothing_it_can_send_first(session, biz, books: QBOSetup) -> None:
    """A payout whose payments were recorded before QuickBooks was connected: the run sends them, then the deposit."""
    tenant = biz.tenant.id
    _, payment = await _paid_online(session, tenant, "Katherine Johnson", "120.00", 3)
    await session.commit()
    # Pretend the payment's ledger row was never made (it predates the connection).
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "payment"))
    await session.delete(row)
    await session.commit()
    deposit = await deposits.record_deposit(
        session,
        tenant,
        source="stripe",
        source_id="po_1TestPayout0002",
        net=Decimal("116.22"),
        arrival_date=date(2026, 11, 21),
        lines=[
            Line(DepositLineKind.PAYMENT, Decimal("120.00"), payment_id=payment.id, source_id="txn_9"),
            Line(DepositLineKind.FEE, Decimal("-3.78"), source_id="txn_9"),
        ],
    )
    await session.commit()
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors
    remote = _by_note(books, "Deposit", f"fieldhub deposit #{deposit.id} · stripe payout po_1TestPayout0002")
    qbo_payment = _by_note(books, "Payment", f"fieldhub payment #{payment.id}")
    assert remote["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_payment["Id"]
    assert remote["TotalAmt"] == Decimal("116.22")


async def test_unmatched_money_and_adjustments_become_direct_lines(session, biz, books: QBOSetup) -> None:
    deposit = await deposits.record_deposit(
        session,
        biz.tenant.id,
        source="stripe",
        source_id="po_1TestPayout0003",
        net=Decimal("80.55"),
        arrival_date=date(2026, 11, 21),
        lines=[
            Line(DepositLineKind.PAYMENT, Decimal("100.00"), source_id="txn_a", description="Tip jar"),
            Line(DepositLineKind.FEE, Decimal("-3.20"), source_id="txn_a"),
            Line(DepositLineKind.ADJUSTMENT, Decimal("-16.25"), source_id="txn_b", description="dispute fee"),
        ],
    )
    await session.commit()
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.failed == 0 and not run.errors, run.errors
    remote = _by_note(books, "Deposit", f"fieldhub deposit #{deposit.id} · stripe payout po_1TestPayout0003")
    accounts = [(ln["DepositLineDetail"]["AccountRef"]["value"], ln["Amount"]) for ln in remote["Line"]]
    assert accounts == [
        (MAPPING["service_revenue"], Decimal("100.00")),
        (FEES, Decimal("-16.25")),
        (FEES, Decimal("-3.20")),
    ]
    assert "txn_a" in remote["Line"][0]["Description"] and "no fieldhub record" in remote["Line"][0]["Description"]
    assert remote["TotalAmt"] == Decimal("80.55")


async def test_without_a_fees_account_the_deposit_fails_with_its_fix_and_the_rest_syncs(
    session, biz, books: QBOSetup
) -> None:
    conn = await session.get(Connection, books.connection_id)
    mapping = {k: v for k, v in MAPPING.items() if k != "processing_fees"}  # saved before the field existed
    conn.settings = {**conn.settings, "account_mapping": mapping}
    _, payment = await _paid_online(session, biz.tenant.id, "Alan Turing", "60.00", 4)
    await deposits.record_deposit(
        session,
        biz.tenant.id,
        source="stripe",
        source_id="po_1TestPayout0004",
        net=Decimal("57.96"),
        arrival_date=date(2026, 11, 21),
        lines=[
            Line(DepositLineKind.PAYMENT, Decimal("60.00"), payment_id=payment.id),
            Line(DepositLineKind.FEE, Decimal("-2.04")),
        ],
    )
    await session.commit()
    run = await books.sync(client_options=SLOW_MACHINE)
    assert run.created == 3 and run.failed == 1  # customer, invoice, payment; not the deposit
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "deposit"))
    assert row.state == LedgerState.FAILED and "processing fees" in row.error_reason
    assert "Field mapping" in row.error_fix
    assert books.objects("Deposit") == {}
    # The Failed list names it as the owner knows it.
    labels = await record_labels(session, biz.tenant.id, [row])
    assert labels[row.id] == "Stripe payout of $57.96 on Nov 21, 2026"


async def test_mapping_page_offers_the_fees_account_and_suggests_it(owner, session, books: QBOSetup) -> None:
    conn = await session.get(Connection, books.connection_id)
    conn.settings = {}
    await session.commit()
    url = f"/settings/integrations/quickbooks/{conn.id}/mapping"
    page = await owner.get(url)
    assert page.status_code == 200 and "Payment processing fees" in page.text
    block = re.search(r'<select id="m-processing_fees" name="processing_fees".*?</select>', page.text, re.S)
    assert block
    options = dict(re.findall(r'<option value="(\d+)" data-type="([^"]+)"', block.group(0)))
    assert options and set(options.values()) <= {"Expense", "Other Expense"}
    assert FEES in options
    # Nothing saved yet: "Stripe Fees" is the suggestion, pre-selected.
    assert re.search(rf'<option value="{FEES}" data-type="Expense" selected>', block.group(0))
    # A mapping saved before the field existed: choosing the fees account asks no remap confirmation.
    old = {k: v for k, v in MAPPING.items() if k != "processing_fees"}
    conn.settings = {"account_mapping": old}
    await session.commit()
    books_row = LedgerRow(
        tenant_id=conn.tenant_id,
        connection_id=conn.id,
        entity="invoice",
        local_id=1,
        local_version=1,
        state=LedgerState.SYNCED,
        remote_id="1",
    )
    session.add(books_row)
    await session.commit()
    saved = await owner.submit(url, MAPPING)
    assert saved.status_code == 303, saved.text
    await session.refresh(conn)
    assert conn.settings["account_mapping"] == MAPPING
    refused = await owner.submit(url, {**MAPPING, "processing_fees": CHECKING, "confirmed": "yes"})
    assert refused.status_code == 400 and "Payment processing fees must be" in refused.text


# ----------------------------------------------------------------------------- the emulator's deposit rules


async def test_emulator_deposit_rules(qbo) -> None:  # noqa: ANN001 - tests/providers/quickbooks/conftest.QBO
    customer = await qbo.create("Customer", {"DisplayName": "Deposit Rules"})
    line = {"Amount": 100, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
    invoice = await qbo.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    payment = await qbo.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 100,
            "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    untaxed = {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}
    refund_line = {**line, "Amount": 30, "SalesItemLineDetail": untaxed}
    from_funds = await qbo.create(
        "RefundReceipt",
        {
            "CustomerRef": {"value": customer["Id"]},
            "DepositToAccountRef": {"value": UNDEPOSITED},
            "Line": [refund_line],
        },
    )
    from_bank = await qbo.create(
        "RefundReceipt",
        {"CustomerRef": {"value": customer["Id"]}, "DepositToAccountRef": {"value": CHECKING}, "Line": [refund_line]},
    )

    def linked(kind: str, txn: str, amount) -> dict:  # noqa: ANN001
        return {"Amount": amount, "LinkedTxn": [{"TxnId": txn, "TxnType": kind, "TxnLineId": "0"}]}

    fee = {"Amount": -2.5, "DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": FEES}}}
    base = {"DepositToAccountRef": {"value": CHECKING}}
    # A refund receipt not drawn on Undeposited Funds can't be deposited; a partial line is refused; so is < 0.
    for lines, said in (
        ([linked("Payment", payment["Id"], 100), linked("RefundReceipt", from_bank["Id"], -30)], "Undeposited"),
        ([linked("Payment", payment["Id"], 100), linked("RefundReceipt", from_funds["Id"], -20)], "full amount"),
        ([linked("RefundReceipt", from_funds["Id"], -30)], "cannot be negative"),
    ):
        r = await qbo.post("deposit", {**base, "Line": lines})
        assert r.status_code == 400 and said in r.text, r.text
    deposit = await qbo.create(
        "Deposit",
        {**base, "Line": [linked("Payment", payment["Id"], 100), linked("RefundReceipt", from_funds["Id"], -30), fee]},
    )
    assert deposit["TotalAmt"] == Decimal("67.5")  # QBO computes it: the sum of the lines
    assert [ln["LineNum"] for ln in deposit["Line"]] == [1, 2, 3]
    # Deposited once only; a deposited refund receipt can't be deleted out from under its deposit.
    again = await qbo.post("deposit", {**base, "Line": [linked("RefundReceipt", from_funds["Id"], -30), fee]})
    assert again.status_code == 400 and "already been deposited" in again.text
    gone = await qbo.post("refundreceipt", {"Id": from_funds["Id"], "SyncToken": "0"}, operation="delete")
    assert gone.status_code == 400 and "Deposited Transaction" in gone.text


# ----------------------------------------------------------------------------- ledger rules


def test_rules_push_deposits_and_skip_balance_only_invoice_changes() -> None:
    from fieldhub.core.events import DomainEvent
    from fieldhub.hub.sync.models import Operation
    from fieldhub.hub.sync.rules import operation_for

    def event(entity: str, kind: str, status: str) -> DomainEvent:
        return DomainEvent(tenant_id=1, entity=entity, record_id=1, version=3, kind=kind, data={"status": status})

    assert operation_for(event("deposit", "created", "paid"), already_synced=False) == Operation.UPSERT
    # A payment on an invoice already in QuickBooks changes nothing in the invoice's body: not sent again...
    for kind, status in (("paid", "PAID"), ("partially_paid", "PARTIALLY_PAID"), ("refunded", "SENT")):
        assert operation_for(event("invoice", kind, status), already_synced=True) is None
        # ...but one that isn't there yet still goes.
        assert operation_for(event("invoice", kind, status), already_synced=False) == Operation.UPSERT
    assert operation_for(event("invoice", "updated", "SENT"), already_synced=True) == Operation.UPSERT
