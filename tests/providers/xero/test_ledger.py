"""Xero as a `Ledger` (issue 16 item 3): the protocol's neutral records read back from the emulator after a sync,
both mapping directions agree, natural keys find what a lost reply made, refusals come back in plain words."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.protocol import Ledger, Party, Txn
from fieldhub.core.invoices.service import create_invoice, send_invoice
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.providers.xero import sync
from fieldhub.providers.xero.ledger import XeroLedger, customer_fields, product
from tests.conftest import Business
from tests.providers.xero.hub import TENANT, XeroSetup, books_of, drain


def test_xero_is_a_ledger_and_its_mappings_agree_both_ways() -> None:
    assert "xero" in [p.key for p in ledgers.providers()] and ledgers.name_of("xero") == "Xero"
    fields = {"display_name": "Ada Lovelace", "company": "", "email": "ada@example.com", "phone": "555", "active": True}
    fields |= {f"{p}_{k}": "" for p in ("billing", "service") for k in ("line1", "line2", "city", "region")}
    fields |= {"billing_postal_code": "", "service_postal_code": ""}
    fields |= {"billing_line1": "1 Main St", "billing_city": "Austin", "service_line1": "9 Site Rd"}
    local = SimpleNamespace(**fields, billing_country="US", service_country="")
    back = customer_fields(sync.contact_body(local))
    for name, value in back.items():
        assert getattr(local, name) == value, name
    found = product(
        {"ItemID": "i1", "Code": "PUMP", "Name": " Pump ", "SalesDetails": {"UnitPrice": 12.5, "TaxType": "OUTPUT"}}
    )
    assert (found.name, found.fields["sku"], found.fields["unit_price"], found.fields["taxable"]) == (
        "Pump",
        "PUMP",
        Decimal("12.50"),
        True,
    )


def test_refusals_in_plain_words() -> None:
    ledger = XeroLedger(adapter=None)  # type: ignore[arg-type] - explain needs no organisation
    conflict = ledger.explain("name_conflict", {"Name": "Ada"})
    assert "Customer name conflict" in conflict.reason and "Ada" in conflict.reason and conflict.fix
    assert "chart of accounts" in ledger.explain("account").reason
    assert ledger.normalise("Jane  SMITH ") == ledger.normalise("jane smith")


async def test_issue16_item3_xero_ledger_reads_the_organisation(session, biz: Business, xero: XeroSetup) -> None:
    made = await books_of(session, biz, 3)
    await drain(session, xero)
    conn = await session.get(Connection, xero.connection_id)
    today = utcnow().date()
    async with ledgers.open_for(xero.env, conn) as ledger:
        assert isinstance(ledger, Ledger)
        parties = await ledger.parties()
        assert sorted(p.name for p in parties) == [c.display_name for c in made["customer"]]
        first = next(p for p in parties if p.name == "Customer 000")
        assert isinstance(first, Party) and first.fields["billing_line1"] == "0 Mill Lane" and first.email
        holder = await ledger.name_holder("CUSTOMER 000")
        assert holder is not None and holder.remote_id == first.remote_id
        assert [c.remote_id for c in await ledger.find_created("customer", "Customer 000")] == [first.remote_id]
        assert len(await ledger.products()) == 2
        invoices = [t async for page in ledger.month("invoice", today - timedelta(days=1), today, 2) for t in page]
        assert len(invoices) == 3 and all(isinstance(t, Txn) and t.kind == "invoice" for t in invoices)
        assert await ledger.count("invoice", today - timedelta(days=1), today) == 3
        assert await ledger.count("invoice", date(2000, 1, 1), date(2000, 1, 31)) == 0
        by_number = {t.number: t for t in invoices}
        local = made["invoice"][0]
        remote = by_number[local.number]
        assert remote.amount == local.total and remote.balance == local.total - Decimal("5.00")
        assert await ledger.income_accounts(remote) == {"200"}
        payments = [t async for page in ledger.payments_after(today - timedelta(days=1), 100) for t in page]
        assert len(payments) == 3 and await ledger.count_payments_after(today - timedelta(days=1)) == 3
        paid = next(p for p in payments if p.links[0].remote_id == remote.remote_id)
        assert paid.amount == Decimal("5.00") and paid.customer_id == remote.customer_id and paid.deposit_to == "090"
        marker = f"fieldhub payment #{made['payment'][0].id}"
        assert [p.remote_id for p in await ledger.find_created("payment", marker, day=today)] == [paid.remote_id]
        assert await ledger.count_open_invoices(today) == 3
        assert [t.remote_id async for t in ledger.by_ids("invoice", [remote.remote_id])] == [remote.remote_id]
        assert await ledger.read("invoice", "00000000-0000-0000-0000-000000000000") is None
        since = utcnow() - timedelta(hours=1)
        page = await ledger.changed_since(since, ["customer", "invoice"])
        assert {c.kind for c in page.changes} == {"customer", "invoice"} and page.complete
        assert len(page.changes) == 6
        capped = await ledger.changed_since(since, ["customer", "invoice"], limit=2)
        assert len(capped.changes) == 2 and not capped.complete
        # An edit in Xero is a change after the last read; nothing else is.
        xero.emulator.clock.advance(5)
        books = xero.books
        books.save_contact({"EmailAddress": "new@example.com"}, books.contacts[first.remote_id])
        newer = await ledger.changed_since(page.until + timedelta(seconds=1), ["customer", "invoice"])
        assert [c.remote_id for c in newer.changes] == [first.remote_id]
        pages = [p async for p in ledger.everything("customer", 2)]
        assert [len(p.changes) for p in pages] == [2, 1]
        assert ledger.reads > 10
    # A test sync's clean-up: payment deleted, invoice voided.
    extra = await create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": made["customer"][0].id, "lines": [{"description": "x", "unit_price": "1"}]},
    )
    await send_invoice(session, biz.tenant.id, extra.id)
    await session.commit()
    await drain(session, xero)
    async with ledgers.open_for(xero.env, conn) as ledger:
        remote = next(i for i in xero.books.invoices.values() if i["Reference"] == f"fieldhub invoice #{extra.id}")
        await ledger.remove("invoice", remote["InvoiceID"])
        voided = await ledger.read("invoice", remote["InvoiceID"])
        assert isinstance(voided, Txn) and voided.voided
    assert TENANT in xero.emulator.organisations


async def test_issue16_item3_a_month_synced_to_xero_reconciles_within_a_dollar(
    session, biz: Business, xero: XeroSetup
) -> None:
    from fieldhub.capabilities.accounting.reconcile import month_of, reconcile, to_csv
    from fieldhub.core.invoices.service import refund_payment
    from fieldhub.core.payments import deposits
    from fieldhub.core.payments.models import DepositLineKind

    made = await books_of(session, biz, 3)
    await refund_payment(session, biz.tenant.id, made["payment"][0].id, {"amount": "2.00"})
    await deposits.record_deposit(
        session,
        biz.tenant.id,
        source="stripe",
        source_id="po_recon",
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
    conn = await session.get(Connection, xero.connection_id)
    report = await reconcile(xero.env, session, conn, month_of(utcnow().date()))
    assert report.within and report.verdict.startswith("Reconciled within $1"), (report.verdict, report.discrepancies)
    assert "xero" in to_csv(report).splitlines()[0]
