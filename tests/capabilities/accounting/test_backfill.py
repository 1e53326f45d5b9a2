"""The backfill wizard after first connect: a dry run that counts, then Start; no echo, and a rerun adds nothing."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import func, select

from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item
from fieldhub.core.payments.deposits import DepositLineIn, record_deposit
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.hub.webhooks.models import RemoteLink
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup, connect_mapped


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


def url(qbo: QBOSetup) -> str:
    return f"/settings/integrations/quickbooks/{qbo.connection_id}/backfill"


def counts(html: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in re.finditer(r'<tr data-row="(\w+)">(.*?)</tr>', html, re.S):
        out[row.group(1)] = dict(re.findall(r'data-count="(\w+)">([^<]*)<', row.group(2)))
    return out


async def both_sides(session, biz: Business, qbo: QBOSetup) -> dict:
    """A business and a QuickBooks company that each already have customers and items."""
    emu, company = qbo.emulator, qbo.emulator.companies[qbo.realm]
    for body in (
        {"DisplayName": "Oak Street Dental", "PrimaryEmailAddr": {"Address": "office@oakdental.example"}},
        {
            "DisplayName": "Priya Patel",
            "PrimaryEmailAddr": {"Address": "priya@example.com"},
            "CompanyName": "PP Ltd",
            "BillAddr": {"Line1": "9 Elm St", "City": "Austin", "CountrySubDivisionCode": "TX", "Country": "USA"},
        },
    ):
        emu.write(company, "Customer", "create", body, bookkeeper=True)
    # Already in QuickBooks (seed): customers "Mason Realty" and "Jordan Smith" (no emails), vendor "Home Depot",
    # items "Services", "Drain cleaning", "Water heater install", "PEX pipe 1/2in".
    t = biz.tenant.id
    local = {
        "oak": await create_customer(
            session, t, {"display_name": "Oak St. Dental", "email": "OFFICE@oakdental.example"}
        ),
        "mason": await create_customer(session, t, {"display_name": "mason  realty"}),
        "jordan": await create_customer(session, t, {"display_name": "Jordan Smith", "email": "jordan@other.example"}),
        "carlos": await create_customer(session, t, {"display_name": "Carlos Rivera", "email": "carlos@example.com"}),
        "depot": await create_customer(session, t, {"display_name": "Home Depot"}),
        "drain": await create_item(session, t, {"name": "Drain Cleaning", "unit_price": "149.00"}),
        "camera": await create_item(session, t, {"name": "Camera inspection", "unit_price": "89.50"}),
    }
    invoice = await create_invoice(
        session,
        t,
        {"customer_id": local["carlos"].id, "lines": [{"item_id": local["camera"].id, "quantity": "2"}]},
    )
    await send_invoice(session, t, invoice.id)
    local["invoice"] = invoice
    local["payment"] = await record_payment(session, t, invoice.id, {"amount": "50.00"})
    await session.commit()
    return local


async def scalar(session, stmt) -> int:
    value = await session.scalar(stmt)
    await session.commit()
    return int(value or 0)


def posts(qbo: QBOSetup) -> list:
    return [r for r in qbo.api_requests() if r.method == "POST"]


async def test_dry_run_counts_changes_nothing_and_needs_the_mapping(owner, session, biz, qbo: QBOSetup):
    local = await both_sides(session, biz, qbo)
    # The connection is new: nothing is in the ledger (records made before it existed are not queued).
    await session.execute(LedgerRow.__table__.delete())
    await session.commit()
    before = (len(posts(qbo)), await scalar(session, select(func.count()).select_from(Customer)))

    r = await owner.get(url(qbo), params={"transactions": "on"})
    assert r.status_code == 200, r.text
    found = counts(r.text)
    assert found["customers"] == {
        "match": "2",
        "create_here": "1",
        "create_in_qbo": "1",
        "collide": "2",
        "already_linked": "0",
    }
    assert found["items"] == {
        "match": "1",
        "create_here": "3",
        "create_in_qbo": "1",
        "collide": "0",
        "already_linked": "0",
    }
    assert found["invoices"] == {"create_in_qbo": "1"} and found["payments"] == {"create_in_qbo": "1"}
    text = unescape(r.text)
    assert f'data-collision="{local["jordan"].id}"' in text and "customer “Jordan Smith”" in text
    assert f'data-collision="{local["depot"].id}"' in text and "vendor “Home Depot”" in text
    # Nothing changed on either side.
    assert (len(posts(qbo)), await scalar(session, select(func.count()).select_from(Customer))) == before
    assert await scalar(session, select(func.count()).select_from(LedgerRow)) == 0

    # Without an account mapping the backfill doesn't start, and says where to fix it.
    conn = await session.get(Connection, qbo.connection_id)
    conn.settings = {}
    await session.commit()
    r = await owner.get(url(qbo))
    assert r.status_code == 409 and "Map your chart of accounts first" in unescape(r.text) and "/mapping" in r.text


async def test_start_links_imports_exports_without_echo_and_a_rerun_creates_nothing(owner, session, biz, qbo):
    local = await both_sides(session, biz, qbo)
    await session.execute(LedgerRow.__table__.delete())
    await session.commit()
    customers_in_qbo = len(qbo.objects("Customer"))

    r = await owner.submit(url(qbo), {"transactions": "on"})
    assert r.status_code == 200, r.text
    text = re.sub(r"\s+", " ", unescape(r.text))
    assert "Backfill done." in text and "3 matched and linked, 4 created here, 4 created in QuickBooks Online" in text

    rows = {
        (row.entity, row.local_id): row
        for row in await session.scalars(select(LedgerRow).execution_options(populate_existing=True))
    }
    await session.commit()
    # Matches are linked to the existing QuickBooks objects (email match ignores case; name match ignores spacing).
    oak = next(o for o in qbo.objects("Customer").values() if o["DisplayName"] == "Oak Street Dental")
    assert rows[("customer", local["oak"].id)].remote_id == oak["Id"]
    assert rows[("customer", local["mason"].id)].remote_id == "1"
    assert rows[("item", local["drain"].id)].remote_id == "2"
    # Imported through core, marked synced: nothing echoed back.
    priya = await session.scalar(select(Customer).where(Customer.display_name == "Priya Patel"))
    assert (priya.email, priya.company, priya.billing_city, priya.billing_country) == (
        "priya@example.com",
        "PP Ltd",
        "Austin",
        "US",
    )
    assert rows[("customer", priya.id)].state == LedgerState.SYNCED
    pex = await session.scalar(select(Item).where(Item.name == "PEX pipe 1/2in"))
    assert pex.unit_price == Decimal("2.50") and pex.kind == "product"
    sent = [r.body for r in posts(qbo)]
    assert not any("Priya" in b or "PEX pipe" in b or "Water heater" in b for b in sent)
    # Exported through the engine: Carlos, his invoice, its payment and the new item, once each.
    assert [o["DisplayName"] for o in qbo.objects("Customer").values()].count("Carlos Rivera") == 1
    assert len(qbo.objects("Customer")) == customers_in_qbo + 1
    for key in (
        ("customer", local["carlos"].id),
        ("item", local["camera"].id),
        ("invoice", local["invoice"].id),
        ("payment", local["payment"].id),
    ):
        assert rows[key].state == LedgerState.SYNCED and rows[key].remote_id, key
    # Collisions are left alone on both sides.
    assert ("customer", local["jordan"].id) not in rows and ("customer", local["depot"].id) not in rows
    assert [o["DisplayName"] for o in qbo.objects("Customer").values()].count("Jordan Smith") == 1

    # Again: the dry run finds only the collisions, and Start creates nothing anywhere.
    seen = (
        len(posts(qbo)),
        await scalar(session, select(func.count()).select_from(Customer)),
        await scalar(session, select(func.count()).select_from(Item)),
        await scalar(session, select(func.count()).select_from(LedgerRow)),
    )
    r = await owner.get(url(qbo), params={"transactions": "on"})
    found = counts(r.text)
    assert found["customers"] == {
        "match": "0",
        "create_here": "0",
        "create_in_qbo": "0",
        "collide": "2",
        "already_linked": "4",
    }
    assert found["items"]["create_here"] == found["items"]["create_in_qbo"] == found["items"]["match"] == "0"
    assert "data-nothing-to-do" in r.text
    r = await owner.submit(url(qbo), {"transactions": "on"})
    assert r.status_code == 200
    assert (
        len(posts(qbo)),
        await scalar(session, select(func.count()).select_from(Customer)),
        await scalar(session, select(func.count()).select_from(Item)),
        await scalar(session, select(func.count()).select_from(LedgerRow)),
    ) == seen


async def test_internal_notes_jobs_and_estimates_never_leave(owner, session, biz, qbo: QBOSetup):
    """Issue 5 item 6: customers, invoices and payments go (backfilled and live); their internal notes, jobs and
    estimates never do. Every request the emulator saw is searched."""
    from datetime import UTC, datetime, timedelta

    from fieldhub.core.estimates.service import create_estimate
    from fieldhub.core.jobs.service import create_job

    t = biz.tenant.id
    customer = await create_customer(
        session, t, {"display_name": "Noted Nora", "email": "nora@example.com", "notes": "SECRET-CUST gate code 7731"}
    )
    invoice = await create_invoice(
        session,
        t,
        {
            "customer_id": customer.id,
            "notes": "SECRET-INV owner haggles",
            "lines": [{"description": "Boiler flush", "unit_price": "180.00"}],
        },
    )
    await send_invoice(session, t, invoice.id)
    await record_payment(session, t, invoice.id, {"amount": "80.00", "notes": "SECRET-PAY cash in the van"})
    start = datetime.now(UTC) + timedelta(days=1)
    await create_job(
        session,
        t,
        {
            "customer_id": customer.id,
            "title": "SECRET-JOB boiler",
            "notes": "SECRET-JOBNOTE dog bites",
            "scheduled_start": start,
            "scheduled_end": start + timedelta(hours=2),
        },
    )
    await create_estimate(
        session,
        t,
        {
            "customer_id": customer.id,
            "notes": "SECRET-EST",
            "lines": [{"description": "SECRET-ESTLINE", "quantity": "1", "unit_price": "9"}],
        },
    )
    await session.commit()
    await session.execute(LedgerRow.__table__.delete())
    await session.commit()

    r = await owner.submit(url(qbo), {"transactions": "on"})  # the backfill exports the existing records
    assert r.status_code == 200, r.text
    second = await record_payment(session, t, invoice.id, {"amount": "100.00", "notes": "SECRET-PAY2 cheque"})
    await session.commit()
    await qbo.sync()  # and live sync sends the new payment

    assert any(o.get("PrivateNote") == f"fieldhub payment #{second.id}" for o in qbo.objects("Payment").values())
    assert any(o.get("DisplayName") == "Noted Nora" for o in qbo.objects("Customer").values())
    requests = qbo.api_requests()
    assert not [r.path for r in requests if "SECRET" in (r.body or "") or "SECRET" in r.path]
    assert not [r.path for r in requests if r.path.rsplit("/", 1)[-1] in ("estimate", "attachable", "upload")]
    entities = {
        entity for company in qbo.emulator.companies.values() for entity, objs in company.objects.items() if objs
    }
    assert "Estimate" not in entities and "Attachable" not in entities


async def test_issue15_item6_backfill_brings_a_pre_existing_refund_and_the_month_reconciles(
    owner, session, biz, qbo: QBOSetup
):
    """A refund made before QuickBooks was connected used to be left behind by the backfill: the first
    reconciliation was off by exactly its amount. Every existing record goes, refunds included."""
    from fieldhub.capabilities.accounting.reconcile import parse_month, reconcile
    from fieldhub.core.invoices.service import refund_payment

    t = biz.tenant.id
    customer = await create_customer(session, t, {"display_name": "Maple Street Bakery"})
    invoice = await create_invoice(
        session,
        t,
        {
            "customer_id": customer.id,
            "issue_date": "2026-10-03",
            "lines": [{"description": "Oven", "unit_price": "310"}],
        },
    )
    await send_invoice(session, t, invoice.id)
    payment = await record_payment(session, t, invoice.id, {"amount": "310.00", "received_on": "2026-10-06"})
    refund = await refund_payment(session, t, payment.id, {"amount": "32.75", "refunded_on": "2026-10-09"})
    # And a card payment through Stripe whose payout is already recorded as a bank deposit.
    card_invoice = await create_invoice(
        session,
        t,
        {
            "customer_id": customer.id,
            "issue_date": "2026-10-04",
            "lines": [{"description": "Mixer", "unit_price": "90"}],
        },
    )
    await send_invoice(session, t, card_invoice.id)
    card = await record_payment(
        session, t, card_invoice.id, {"amount": "90.00", "method": "card", "received_on": "2026-10-07"}
    )
    session.add(
        RemoteLink(
            tenant_id=t,
            provider="stripe",
            kind="payment_intent",
            remote_id="pi_old",
            local_entity="payment",
            local_id=card.id,
        )
    )
    deposit = await record_deposit(
        session,
        t,
        source="stripe",
        source_id="po_1OldPayout",
        net=Decimal("87.09"),
        arrival_date=date(2026, 10, 9),
        lines=[
            DepositLineIn(DepositLineKind.PAYMENT, Decimal("90.00"), payment_id=card.id, source_id="txn_old"),
            DepositLineIn(DepositLineKind.FEE, Decimal("-2.91"), source_id="txn_old"),
        ],
    )
    await session.commit()
    # The connection is new: nothing of this is in the ledger (records made before it are not queued).
    await session.execute(LedgerRow.__table__.delete())
    await session.commit()

    r = await owner.get(url(qbo), params={"transactions": "on"})
    found = counts(r.text)
    assert found["refunds"] == found["deposits"] == {"create_in_qbo": "1"}
    r = await owner.submit(url(qbo), {"transactions": "on"})
    assert r.status_code == 200, r.text
    receipts = list(qbo.objects("RefundReceipt").values())
    assert [(Decimal(str(o["TotalAmt"])), o.get("PrivateNote")) for o in receipts] == [
        (Decimal("32.75"), f"fieldhub refund #{refund.id}")
    ]

    conn = await session.get(Connection, qbo.connection_id, populate_existing=True)
    report = await reconcile(qbo.env, session, conn, parse_month("2026-10"), client_options={"timeout": 2.0})
    totals = {t.key: (t.fieldhub, t.books) for t in report.totals}
    assert totals["refunds"] == (Decimal("32.75"), Decimal("32.75"))
    assert totals["payments"] == (Decimal("400.00"), Decimal("400.00"))
    assert totals["deposits"] == (Decimal("87.09"), Decimal("87.09"))
    assert report.within and report.discrepancies == [], report.discrepancies
    [payout] = report.payouts
    assert payout.ok and payout.deposit_id == deposit.id, payout.problems
    # A rerun finds them linked: nothing more to send.
    r = await owner.get(url(qbo), params={"transactions": "on"})
    found = counts(r.text)
    assert found["refunds"] == found["deposits"] == {"create_in_qbo": "0"}
