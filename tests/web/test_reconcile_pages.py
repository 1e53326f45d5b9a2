"""The Monthly reconciliation page and its CSV: verdict, totals, discrepancies with links, payouts, empty
state, the error page when QuickBooks can't be reached, and who may see it."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import select
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup, connect_mapped
from tests.providers.quickbooks.test_sync import drain

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice
from fieldhub.core.payments.deposits import DepositLineIn, record_deposit
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.models import LedgerRow


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


def page_url(qbo: QBOSetup, month: str = "2026-10", csv_: bool = False) -> str:
    path = "reconcile.csv" if csv_ else "reconcile"
    return f"/settings/integrations/quickbooks/{qbo.connection_id}/{path}?month={month}"


async def october(session, biz: Business, qbo: QBOSetup) -> dict[str, int]:
    """One invoice of 150.00 paid 100.00 in October, synced through the engine; a payout with no deposit."""
    t = biz.tenant.id
    customer = await create_customer(session, t, {"display_name": "Lakeside Bakery"})
    invoice = await create_invoice(
        session,
        t,
        {
            "customer_id": customer.id,
            "issue_date": "2026-10-14",
            "status": "OPEN",
            "lines": [{"description": "Boiler service", "unit_price": "150.00"}],
        },
    )
    await send_invoice(session, t, invoice.id)
    payment = await record_payment(session, t, invoice.id, {"amount": "100.00", "received_on": "2026-10-16"})
    ids = {"invoice": invoice.id, "payment": payment.id}
    await session.commit()
    await drain(session, qbo)
    session.expire_all()
    return ids


def text(response) -> str:
    """The page's words, tags and icons dropped."""
    return " ".join(unescape(re.sub(r"<svg.*?</svg>|<[^>]+>", " ", response.text, flags=re.S)).split())


async def test_the_settings_page_links_to_the_reconciliation(owner, qbo: QBOSetup):
    page = await owner.get("/settings/integrations/quickbooks")
    assert page.status_code == 200
    assert f'href="/settings/integrations/quickbooks/{qbo.connection_id}/reconcile"' in page.text
    assert "Monthly reconciliation" in page.text


async def test_a_reconciled_month_then_a_typed_in_invoice(owner, session, biz: Business, qbo: QBOSetup):
    ids = await october(session, biz, qbo)
    page = await owner.get(page_url(qbo))
    assert page.status_code == 200, page.text
    body = text(page)
    assert 'data-verdict="within"' in page.text
    assert "Reconciled within $1: every total for October 2026 matches QuickBooks to the cent." in body
    assert 'value="2026-10"' in page.text  # the month picker shows the month
    assert "Invoiced $150.00 $150.00 $0.00" in body
    assert "Receivables at month end $50.00 $50.00 $0.00" in body
    assert "Payments received $100.00 $100.00 $0.00" in body
    assert "No payouts arrived in October 2026." in body
    assert f"{page_url(qbo, csv_=True)}" in unescape(page.text)

    # The bookkeeper types an invoice into QuickBooks and changes our payment there.
    company = qbo.emulator.companies[qbo.realm]
    customer = next(iter(company.objects["Customer"].values()))["Id"]
    line = {"ItemRef": {"value": "1"}, "Qty": Decimal(1), "UnitPrice": Decimal(75), "TaxCodeRef": {"value": "NON"}}
    typed = company.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer},
            "TxnDate": "2026-10-15",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("75.00"), "SalesItemLineDetail": line}],
        },
    )
    paid = await session.scalar(
        select(LedgerRow.remote_id).where(LedgerRow.entity == "payment", LedgerRow.local_id == ids["payment"])
    )
    company.objects["Payment"][paid]["TotalAmt"] = Decimal("90.00")
    page = await owner.get(page_url(qbo))
    body = text(page)
    assert 'data-verdict="not-within"' in page.text
    assert "Not within $1" in body and "$75.00" in body
    assert 'data-kind="qbo_only"' in page.text and f"QuickBooks Online #{typed['Id']}" in body
    assert 'data-kind="amount_mismatch"' in page.text
    # The mismatched payment links to its invoice here.
    assert f'<a href="/invoices/{ids["invoice"]}">#{ids["payment"]} on ' in page.text

    download = await owner.get(page_url(qbo, csv_=True))
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="quickbooks-reconciliation-2026-10.csv"'
    rows = list(csv.reader(io.StringIO(download.text)))
    sections = [r[0] for r in rows[1:]]
    assert sections == ["total"] * 5 + ["discrepancy"] * 2 + ["verdict"]
    assert {r[1] for r in rows if r[0] == "discrepancy"} == {"amount_mismatch", "qbo_only"}
    assert rows[-1][1] == "not_within_1"


async def test_payouts_table(owner, session, biz: Business, qbo: QBOSetup):
    t = biz.tenant.id
    lines = [
        DepositLineIn(DepositLineKind.PAYMENT, Decimal("200.00"), source_id="ch_1"),
        DepositLineIn(DepositLineKind.FEE, Decimal("-6.10"), source_id="ch_1"),
    ]
    await record_deposit(
        session,
        t,
        source="stripe",
        source_id="po_1Page",
        net=Decimal("193.90"),
        arrival_date=date(2026, 10, 21),
        lines=lines,
    )
    await session.commit()
    page = await owner.get(page_url(qbo))
    body = text(page)
    assert 'data-payout="po_1Page" data-ok="no"' in page.text
    assert "No deposit in QuickBooks for this payout." in body
    assert "Bank deposits $193.90 $0.00 $193.90" in body


async def test_empty_month_and_a_month_that_is_not_one(owner, qbo: QBOSetup):
    page = await owner.get(page_url(qbo, "2025-01"))
    assert page.status_code == 200
    assert "data-empty" in page.text and "Nothing to reconcile for January 2025" in text(page)
    bad = await owner.get(page_url(qbo, "2026-13"))
    assert bad.status_code == 400
    assert "is not a month: write it as YYYY-MM" in text(bad)
    assert (await owner.get(page_url(qbo, "2026-13", csv_=True))).status_code == 400


async def test_quickbooks_unreachable_or_needing_reauth_shows_an_error_page(owner, session, qbo: QBOSetup):
    qbo.emulator.faults.append(FaultRule(kind="rate_limit", path="/query", retry_after=120.0))
    page = await owner.get(page_url(qbo))
    assert page.status_code == 503
    assert "QuickBooks Online can't be reached right now" in text(page) and "data-reconcile-error" in page.text
    assert (await owner.get(page_url(qbo, csv_=True))).status_code == 503
    qbo.emulator.faults.clear()

    conn = await session.get(Connection, qbo.connection_id)
    conn.status = ConnectionStatus.NEEDS_REAUTH
    await session.commit()
    page = await owner.get(page_url(qbo))
    assert page.status_code == 409
    assert "Reconnect it on the integration page" in text(page)


async def test_only_owner_or_admin_and_only_their_own_connection(client, make_client, biz, other_biz, qbo):
    async with make_client() as tech:
        await tech.login(biz.tech.email)
        assert (await tech.get(page_url(qbo))).status_code == 403
        assert (await tech.get(page_url(qbo, csv_=True))).status_code == 403
    async with make_client() as admin:
        await admin.login(biz.admin.email)
        assert (await admin.get(page_url(qbo, "2025-01"))).status_code == 200
    async with make_client() as other:
        await other.login(other_biz.owner.email)
        assert (await other.get(page_url(qbo))).status_code == 404
        assert (await other.get(page_url(qbo, csv_=True))).status_code == 404
