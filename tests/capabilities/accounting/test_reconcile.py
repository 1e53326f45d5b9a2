"""Monthly reconciliation against the QuickBooks emulator: a synced month reconciles, every kind of
discrepancy is found, payouts line up with deposits, and a month bigger than one query page is read in pages."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import insert, select

from fieldhub.capabilities.accounting.reconcile import (
    DATE_MISMATCH,
    MISMATCH,
    MISSING,
    QBO_ONLY,
    Report,
    business_days_between,
    csv_filename,
    last_month,
    parse_month,
    reconcile,
    to_csv,
)
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.invoices.service import (
    create_invoice,
    record_payment,
    refund_payment,
    send_invoice,
    void_invoice,
)
from fieldhub.core.payments.deposits import DepositLineIn, record_deposit
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.errors import RetryLater
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.hub.webhooks.models import RemoteLink
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup, connect_mapped
from tests.providers.quickbooks.test_sync import drain

OCT = parse_month("2026-10")


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


@dataclass(frozen=True)
class Ref:
    id: int
    number: str = ""


@dataclass
class Month:
    invoices: dict[str, Ref]
    payments: dict[str, Ref]
    refund: Ref


async def _invoice(session, tenant: int, customer: int, day: str, amount: str, *, send: bool = True) -> Invoice:
    invoice = await create_invoice(
        session,
        tenant,
        {
            "customer_id": customer,
            "issue_date": day,
            "status": "OPEN" if send else "DRAFT",
            "lines": [{"description": "Labour", "quantity": "1", "unit_price": amount}],
        },
    )
    if send:
        await send_invoice(session, tenant, invoice.id)
    return invoice


async def synced_october(session, biz: Business, qbo: QBOSetup) -> Month:
    """A month of work synced through the real engine into the emulator.

    October: A 120.00 paid in full, B 250.50 paid 100.00 then 40.00 of that refunded, C 80.00 open, a draft
    (never synced) and an invoice voided after it synced. September's 500.00 invoice got 200.00 in October;
    November's invoice and payment belong to November.
    """
    t = biz.tenant.id
    customer = (await create_customer(session, t, {"display_name": "Riverside Dental"})).id
    a = await _invoice(session, t, customer, "2026-10-05", "120.00")
    b = await _invoice(session, t, customer, "2026-10-06", "250.50")
    c = await _invoice(session, t, customer, "2026-10-20", "80.00")
    await _invoice(session, t, customer, "2026-10-07", "999.00", send=False)
    voided = await _invoice(session, t, customer, "2026-10-08", "60.00")
    sept = await _invoice(session, t, customer, "2026-09-28", "500.00")
    nov = await _invoice(session, t, customer, "2026-11-02", "70.00")
    payments = {
        "a": await record_payment(session, t, a.id, {"amount": "120.00", "received_on": "2026-10-10"}),
        "b": await record_payment(session, t, b.id, {"amount": "100.00", "received_on": "2026-10-12"}),
        "sept": await record_payment(session, t, sept.id, {"amount": "200.00", "received_on": "2026-10-02"}),
        "nov": await record_payment(session, t, nov.id, {"amount": "70.00", "received_on": "2026-11-03"}),
    }
    refund = await refund_payment(session, t, payments["b"].id, {"amount": "40.00", "refunded_on": "2026-10-20"})
    await session.commit()
    await drain(session, qbo)
    await void_invoice(session, t, voided.id)
    await session.commit()
    await drain(session, qbo)
    invoices = {"a": a, "b": b, "c": c, "voided": voided, "sept": sept, "nov": nov}
    made = Month(
        {k: Ref(v.id, v.number) for k, v in invoices.items()},
        {k: Ref(v.id) for k, v in payments.items()},
        Ref(refund.id),
    )
    session.expire_all()
    return made


async def run(session, qbo: QBOSetup, month=OCT, **kw: Any) -> Report:
    conn = await session.get(Connection, qbo.connection_id, populate_existing=True)
    options = {"sleep": qbo._sleep, "timeout": 2.0} | kw.pop("client_options", {})
    return await reconcile(qbo.env, session, conn, month, client_options=options, **kw)


def statements(qbo: QBOSetup, since: int = 0) -> list[str]:
    """The query statements the reconciliation sent, in order."""
    return [parse_qs(r.query).get("query", [""])[0] for r in qbo.api_requests(since) if r.path.endswith("/query")]


def totals(report: Report) -> dict[str, tuple[Decimal, Decimal]]:
    return {t.key: (t.fieldhub, t.books) for t in report.totals}


async def remote_id(session, qbo: QBOSetup, entity: str, local_id: int) -> str:
    rid = await session.scalar(
        select(LedgerRow.remote_id).where(
            LedgerRow.connection_id == qbo.connection_id, LedgerRow.entity == entity, LedgerRow.local_id == local_id
        )
    )
    assert rid, (entity, local_id)
    return rid


def test_months_and_business_days():
    assert (OCT.start, OCT.end, OCT.key) == (date(2026, 10, 1), date(2026, 10, 31), "2026-10")
    assert last_month(date(2026, 1, 15)) == parse_month("2025-12")
    assert parse_month("2024-02").end == date(2024, 2, 29)
    for bad in ("2026-13", "2026/10", "october", "", "26-10"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)
    assert business_days_between(date(2026, 10, 9), date(2026, 10, 12)) == 1  # Friday → Monday
    assert business_days_between(date(2026, 10, 20), date(2026, 10, 27)) == 5


async def test_a_synced_month_reconciles_within_a_dollar_and_exports_csv(session, biz: Business, qbo: QBOSetup):
    made = await synced_october(session, biz, qbo)
    report = await run(session, qbo)
    assert report.discrepancies == []
    assert totals(report) == {
        "revenue": (Decimal("450.50"), Decimal("450.50")),
        # invoiced by Oct 31 (120 + 250.50 + 80 + 500) − paid by then (120 + 100 + 200): the refund does not
        # reopen invoice B in QuickBooks, and is not counted as owed here either.
        "receivables": (Decimal("530.50"), Decimal("530.50")),
        "payments": (Decimal("420.00"), Decimal("420.00")),
        "refunds": (Decimal("40.00"), Decimal("40.00")),
        "deposits": (Decimal("0.00"), Decimal("0.00")),
    }
    assert report.within and report.verdict.startswith("Reconciled within $1")
    assert not report.empty
    # Read in pages: every statement names its page.
    reads = [s for s in statements(qbo) if s.startswith("SELECT * FROM") and "TxnDate" in s]
    assert reads and all("STARTPOSITION" in s and "MAXRESULTS 1000" in s for s in reads)

    # A 0.50 difference: still within $1, and the CSV has a row per total, per discrepancy and the verdict.
    company = qbo.emulator.companies[qbo.realm]
    paid_a = await remote_id(session, qbo, "payment", made.payments["a"].id)
    company.objects["Payment"][paid_a]["TotalAmt"] = Decimal("119.50")
    report = await run(session, qbo)
    text = to_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "section",
        "kind",
        "record",
        "fieldhub",
        "quickbooks",
        "difference",
        "fieldhub_id",
        "quickbooks_id",
        "detail",
    ]
    assert [r[:6] for r in rows[1:6]] == [
        ["total", "revenue", "Invoiced", "450.50", "450.50", "0.00"],
        ["total", "receivables", "Receivables at month end", "530.50", "530.50", "0.00"],
        ["total", "payments", "Payments received", "420.00", "419.50", "0.50"],
        ["total", "refunds", "Refunds", "40.00", "40.00", "0.00"],
        ["total", "deposits", "Bank deposits", "0.00", "0.00", "0.00"],
    ]
    assert rows[6][:8] == [
        "discrepancy",
        "amount_mismatch",
        f"Payment #{made.payments['a'].id} on {made.invoices['a'].number}",
        "120.00",
        "119.50",
        "0.50",
        str(made.payments["a"].id),
        paid_a,
    ]
    assert rows[7][:2] == ["verdict", "within_1"] and len(rows) == 8
    assert csv_filename(report) == "quickbooks-reconciliation-2026-10.csv"


async def test_each_discrepancy_kind_is_found(session, biz: Business, qbo: QBOSetup):
    made = await synced_october(session, biz, qbo)
    company = qbo.emulator.companies[qbo.realm]
    # The bookkeeper changes a payment's amount, deletes the refund receipt and types in an invoice.
    paid_a = await remote_id(session, qbo, "payment", made.payments["a"].id)
    company.objects["Payment"][paid_a]["TotalAmt"] = Decimal("112.00")
    company.delete("RefundReceipt", {"Id": await remote_id(session, qbo, "refund", made.refund.id)}, bookkeeper=True)
    customer = next(iter(company.objects["Customer"].values()))["Id"]
    typed = company.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer},
            "TxnDate": "2026-10-15",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": Decimal("75.00"),
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": "1"},
                        "Qty": Decimal(1),
                        "UnitPrice": Decimal(75),
                        "TaxCodeRef": {"value": "NON"},
                    },
                }
            ],
        },
    )
    # And moves invoice C to November.
    c_id = await remote_id(session, qbo, "invoice", made.invoices["c"].id)
    company.objects["Invoice"][c_id]["TxnDate"] = "2026-11-01"
    # The invoice voided here comes back to life there (as if the void had never reached QuickBooks).
    voided_id = await remote_id(session, qbo, "invoice", made.invoices["voided"].id)
    revived = company.objects["Invoice"][voided_id]
    revived.pop("TxnStatus")
    revived.update(TotalAmt=Decimal("60.00"), Balance=Decimal("60.00"), PrivateNote="")

    report = await run(session, qbo)
    found = {(d.kind, d.entity, d.local_id, d.remote_id) for d in report.discrepancies}
    assert found == {
        (MISMATCH, "payment", made.payments["a"].id, paid_a),
        (MISSING, "refund", made.refund.id, await remote_id(session, qbo, "refund", made.refund.id)),
        (QBO_ONLY, "invoice", None, typed["Id"]),
        (DATE_MISMATCH, "invoice", made.invoices["c"].id, c_id),
        (MISMATCH, "invoice", made.invoices["voided"].id, voided_id),
    }
    by_kind = {(d.kind, d.entity): d for d in report.discrepancies}
    assert "It is void here, but QuickBooks still counts $60.00." in by_kind[MISMATCH, "invoice"].detail
    by_kind = {d.kind: d for d in report.discrepancies if (d.kind, d.entity) != (MISMATCH, "invoice")}
    assert by_kind[MISMATCH].fieldhub == Decimal("120.00") and by_kind[MISMATCH].books == Decimal("112.00")
    assert by_kind[MISMATCH].link == f"/invoices/{made.invoices['a'].id}"
    assert "deleted there" in by_kind[MISSING].detail
    assert by_kind[QBO_ONLY].books == Decimal("75.00")
    t = totals(report)
    assert t["payments"] == (Decimal("420.00"), Decimal("412.00"))
    assert t["refunds"] == (Decimal("40.00"), Decimal("0.00"))
    assert t["revenue"] == (Decimal("450.50"), Decimal("505.50"))  # + 75 typed in, − 80 moved out, + 60 revived
    assert not report.within
    assert "Not within $1" in report.verdict and "largest difference is $55.00 (invoiced)" in report.verdict


async def test_a_record_that_never_synced_is_missing_with_its_reason(session, biz: Business, qbo: QBOSetup):
    t = biz.tenant.id
    made = await synced_october(session, biz, qbo)
    customer = await session.scalar(select(Customer.id).where(Customer.tenant_id == t))
    late = await _invoice(session, t, customer, "2026-10-30", "45.00")
    late_id = late.id
    await session.commit()
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "invoice", LedgerRow.local_id == late_id))
    row.state = LedgerState.FAILED  # as the engine leaves a rejected record
    row.error_reason = "Customer name conflict"
    # And the ledger lost invoice A's remote id (a create whose reply never came back).
    lost = await session.scalar(
        select(LedgerRow).where(LedgerRow.entity == "invoice", LedgerRow.local_id == made.invoices["a"].id)
    )
    lost.remote_id = None
    await session.commit()
    report = await run(session, qbo)
    assert [(d.kind, d.entity, d.local_id) for d in report.discrepancies] == [(MISSING, "invoice", late_id)]
    assert "Never reached QuickBooks: Customer name conflict" in report.discrepancies[0].detail
    # Invoice A is recognised by the marker fieldhub wrote into it: neither missing nor "only in QuickBooks".
    assert totals(report)["revenue"] == (Decimal("495.50"), Decimal("450.50"))


async def test_payouts_line_up_with_deposits(session, biz: Business, qbo: QBOSetup):
    t = biz.tenant.id

    async def payout(pid: str, arrival: str, gross: str, fee: str):
        lines = [DepositLineIn(DepositLineKind.PAYMENT, Decimal(gross), source_id=f"ch_{pid}")]
        lines.append(DepositLineIn(DepositLineKind.FEE, -Decimal(fee), source_id=f"ch_{pid}"))
        net = Decimal(gross) - Decimal(fee)
        return await record_deposit(
            session, t, source="stripe", source_id=pid, net=net, arrival_date=date.fromisoformat(arrival), lines=lines
        )

    good = await payout("po_1Good", "2026-10-09", "100.00", "3.20")  # a Friday
    late = await payout("po_1Late", "2026-10-20", "51.50", "1.50")
    lost = await payout("po_1Lost", "2026-10-29", "30.00", "0.90")
    await session.commit()
    company = qbo.emulator.companies[qbo.realm]

    def deposit(day: str, note: str, *amounts: tuple[str, str]) -> dict:
        lines = [
            {
                "Amount": Decimal(amount),
                "DetailType": "DepositLineDetail",
                "Description": words,
                "DepositLineDetail": {"AccountRef": {"value": "7" if "fee" in words else "1"}},
            }
            for amount, words in amounts
        ]
        body = {"DepositToAccountRef": {"value": "4"}, "TxnDate": day, "Line": lines, "PrivateNote": note}
        return company.create("Deposit", body)

    # Booked the next business day, with its fee line: lines up.
    deposit(
        "2026-10-12",
        f"fieldhub deposit #{good.id} · stripe payout po_1Good",
        ("100.00", "Card payments"),
        ("-3.20", "Stripe processing fees"),
    )
    # Five business days late, net without a fee line, and short by 2.00.
    deposit("2026-10-27", "stripe payout po_1Late", ("48.00", "Stripe payout"))
    # A payout whose id merely starts like another's does not match it.
    deposit("2026-10-29", "stripe payout po_1Lost2", ("29.10", "Stripe payout"))

    report = await run(session, qbo)
    by_id = {p.payout_id: p for p in report.payouts}
    assert by_id["po_1Good"].ok and by_id["po_1Good"].books_fees == Decimal("3.20")
    problems = " ".join(by_id["po_1Late"].problems)
    assert "Amount" in problems and "Date" in problems and "Fees" in problems and "5 business days" in problems
    assert by_id["po_1Lost"].problems == ["No deposit in QuickBooks for this payout."]
    assert by_id["po_1Lost"].remote_id is None
    kinds = {(d.kind, d.entity, d.local_id) for d in report.discrepancies}
    assert (MISMATCH, "deposit", late.id) in kinds
    assert (MISSING, "deposit", lost.id) in kinds
    assert not any(d.local_id == good.id for d in report.discrepancies)
    assert totals(report)["deposits"] == (Decimal("175.90"), Decimal("173.90"))


async def test_a_month_bigger_than_a_page_is_read_page_by_page(session, biz: Business, qbo: QBOSetup):
    """2,100 invoices matched one by one through the ledger; QBO answers at most 1,000 per query."""
    t = biz.tenant.id
    n = 2100
    customer = Customer(tenant_id=t, version=1, display_name="Volume Customer")
    session.add(customer)
    await session.flush()
    rows = []
    for i in range(n):
        amount = Decimal(10 + i % 90) + Decimal("0.25")
        rows.append(
            {
                "tenant_id": t,
                "version": 1,
                "number": f"V-{i:05d}",
                "customer_id": customer.id,
                "status": InvoiceStatus.SENT,
                "issue_date": OCT.start + timedelta(days=i % 31),
                "subtotal": amount,
                "total": amount,
                "balance": amount,
                "public_token": secrets.token_urlsafe(24),
            }
        )
    ids = list(await session.scalars(insert(Invoice).returning(Invoice.id, sort_by_parameter_order=True), rows))
    company = qbo.emulator.companies[qbo.realm]
    ledger = []
    for i, (local_id, row) in enumerate(zip(ids, rows, strict=True)):
        rid = str(50_000 + i)
        company.objects["Invoice"][rid] = {
            "Id": rid,
            "SyncToken": "0",
            "DocNumber": row["number"],
            "TxnDate": row["issue_date"].isoformat(),
            "TotalAmt": row["total"],
            "Balance": row["total"],
            "CustomerRef": {"value": "1"},
            "Line": [],
        }
        ledger.append(
            {
                "tenant_id": t,
                "connection_id": qbo.connection_id,
                "entity": "invoice",
                "local_id": local_id,
                "remote_id": rid,
                "local_version": 1,
                "synced_version": 1,
                "state": LedgerState.SYNCED,
            }
        )
    await session.execute(insert(LedgerRow), ledger)
    await session.commit()
    # One invoice on the second page is off by 5.00 in QuickBooks.
    company.objects["Invoice"]["51500"]["TotalAmt"] += Decimal("5.00")
    company.objects["Invoice"]["51500"]["Balance"] += Decimal("5.00")
    seen: list[tuple[int, int | None]] = []
    since = max((r.seq for r in qbo.emulator.requests), default=0)
    report = await run(session, qbo, progress=lambda done, expected: seen.append((done, expected)))

    assert [(d.kind, d.local_id) for d in report.discrepancies] == [(MISMATCH, ids[1500])]
    expected_total = sum((r["total"] for r in rows), Decimal("0.00"))
    assert totals(report)["revenue"] == (expected_total, expected_total + Decimal("5.00"))
    invoice_pages = [s for s in statements(qbo, since) if s.startswith("SELECT * FROM Invoice WHERE TxnDate >=")]
    assert [s.split("STARTPOSITION ")[1] for s in invoice_pages] == [
        "1 MAXRESULTS 1000",
        "1001 MAXRESULTS 1000",
        "2001 MAXRESULTS 1000",
    ]
    assert report.objects >= n and report.pages >= 3
    assert seen and seen[-1][0] == report.objects and seen[0][1] is not None and seen[0][1] >= n


async def test_quickbooks_unreachable_raises_the_engine_error(session, biz: Business, qbo: QBOSetup):
    qbo.emulator.faults.append(FaultRule(kind="rate_limit", path="/query", retry_after=120.0))
    with pytest.raises(RetryLater):
        await run(session, qbo)


async def test_cli_exit_codes_progress_and_csv(app, session, biz: Business, qbo: QBOSetup, monkeypatch, tmp_path):
    from rich.console import Console
    from typer.testing import CliRunner

    from fieldhub import cli
    from fieldhub.hub.oauth.env import OAuthEnv

    standalone = OAuthEnv.standalone.__func__  # type: ignore[attr-defined]
    # The command builds its own engine and loop; it reaches the test's database and in-process emulator.
    monkeypatch.setattr(
        OAuthEnv,
        "standalone",
        classmethod(lambda cls, s, e=None: standalone(cls, app.state.settings, app.state.endpoints)),
    )
    monkeypatch.setattr(cli, "get_settings", lambda: app.state.settings)
    monkeypatch.setattr(cli, "console", Console(width=240))  # table cells unwrapped

    async def invoke(*args: str):
        return await asyncio.to_thread(
            CliRunner().invoke, cli.app, ["reconcile", "--connection", str(qbo.connection_id), *args]
        )

    quiet = await invoke("--month", "2025-01")
    assert quiet.exit_code == 0, quiet.output
    assert "Reconciled within $1" in quiet.output and "Nothing to reconcile for January 2025" in quiet.output

    company = qbo.emulator.companies[qbo.realm]
    customer = next(iter(company.objects["Customer"].values()))["Id"]
    line = {"ItemRef": {"value": "1"}, "Qty": Decimal(1), "UnitPrice": Decimal(75), "TaxCodeRef": {"value": "NON"}}
    company.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer},
            "TxnDate": "2026-10-15",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("75.00"), "SalesItemLineDetail": line}],
        },
    )
    out = tmp_path / "october.csv"
    off = await invoke("--month", "2026-10", "--csv", str(out))
    assert off.exit_code == 1, off.output
    assert "Not within $1" in off.output and "In QuickBooks only" in off.output
    assert "reading" in off.output  # the progress bar's label
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [r[1] for r in rows if r[0] == "discrepancy"] == [QBO_ONLY] and rows[-1][1] == "not_within_1"

    bad = await invoke("--month", "October")
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    missing = await asyncio.to_thread(CliRunner().invoke, cli.app, ["reconcile", "--connection", "9999"])
    assert missing.exit_code == 2 and "No connection 9999" in missing.output
    qbo.emulator.faults.append(FaultRule(kind="rate_limit", path="/query", retry_after=120.0))
    down = await invoke("--month", "2026-10")
    assert down.exit_code == 2 and "Nothing was changed" in down.output


async def test_a_stripe_payout_synced_by_the_engine_lines_up_with_its_deposit(session, biz: Business, qbo: QBOSetup):
    """Card payments and a refund through Stripe, their payout recorded as a deposit, all synced by the engine:
    the month reconciles and the payout lines up with the QuickBooks Deposit, fee line included."""
    t = biz.tenant.id
    customer = (await create_customer(session, t, {"display_name": "Harbor Cafe"})).id
    paid = []
    for n, amount in enumerate(("200.00", "99.99")):
        invoice = await _invoice(session, t, customer, f"2026-10-0{n + 5}", amount)
        payment = await record_payment(
            session, t, invoice.id, {"amount": amount, "method": "card", "received_on": "2026-10-20"}
        )
        session.add(
            RemoteLink(
                tenant_id=t,
                provider="stripe",
                kind="payment_intent",
                remote_id=f"pi_rec_{n}",
                local_entity="payment",
                local_id=payment.id,
            )
        )
        paid.append(payment)
    refund = await refund_payment(session, t, paid[0].id, {"amount": "50.00", "refunded_on": "2026-10-21"})
    session.add(
        RemoteLink(
            tenant_id=t, provider="stripe", kind="refund", remote_id="re_rec", local_entity="refund", local_id=refund.id
        )
    )
    deposit = await record_deposit(
        session,
        t,
        source="stripe",
        source_id="po_1RecPayout",
        net=Decimal("240.69"),
        arrival_date=date(2026, 10, 23),
        lines=[
            DepositLineIn(DepositLineKind.PAYMENT, Decimal("200.00"), payment_id=paid[0].id, source_id="txn_1"),
            DepositLineIn(DepositLineKind.FEE, Decimal("-6.10"), source_id="txn_1"),
            DepositLineIn(DepositLineKind.PAYMENT, Decimal("99.99"), payment_id=paid[1].id, source_id="txn_2"),
            DepositLineIn(DepositLineKind.FEE, Decimal("-3.20"), source_id="txn_2"),
            DepositLineIn(DepositLineKind.REFUND, Decimal("-50.00"), refund_id=refund.id, source_id="txn_3"),
        ],
    )
    deposit_id = deposit.id
    await session.commit()
    await drain(session, qbo)
    session.expire_all()

    report = await run(session, qbo)
    assert report.discrepancies == []
    assert totals(report)["deposits"] == (Decimal("240.69"), Decimal("240.69"))
    assert report.within
    [payout] = report.payouts
    assert payout.ok, payout.problems
    assert (payout.deposit_id, payout.payout_id) == (deposit_id, "po_1RecPayout")
    assert payout.remote_id == await remote_id(session, qbo, "deposit", deposit_id)
    assert (payout.books_amount, payout.books_fees, payout.books_date) == (
        Decimal("240.69"),
        Decimal("9.30"),
        date(2026, 10, 23),
    )
