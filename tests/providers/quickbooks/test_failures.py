"""The guide's three common failures (seed 001 step 7), each reproduced against the QuickBooks emulator through
the real engine, shown on the Failed list with its reason and fix, fixed the way the guide says, and retried
to success through the web routes.
"""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import select

from fieldhub.capabilities.accounting.conflicts import candidates
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, send_invoice
from fieldhub.core.items.service import create_item, create_tax_rate
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent, RunStatus
from fieldhub.providers.quickbooks.emulator import CA_REALM
from tests.conftest import Business
from tests.hub.oauth.conftest import consent
from tests.hub.sync.conftest import MAPPING, QBOSetup, connect_mapped


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


def base(qbo: QBOSetup) -> str:
    return f"/settings/integrations/quickbooks/{qbo.connection_id}"


async def row_of(session, qbo: QBOSetup, entity: str, local_id: int) -> LedgerRow:
    row = await session.scalar(
        select(LedgerRow)
        .where(LedgerRow.connection_id == qbo.connection_id, LedgerRow.entity == entity, LedgerRow.local_id == local_id)
        .execution_options(populate_existing=True)
    )
    await session.commit()
    assert row is not None, (entity, local_id)
    return row


async def failed_list(owner, qbo: QBOSetup) -> str:
    r = await owner.get(f"{base(qbo)}/records?state=failed")
    assert r.status_code == 200, r.text
    return unescape(r.text)


async def invoice_for(session, biz: Business, name: str, **line) -> tuple[Customer, object]:
    tenant = biz.tenant.id
    customer = await create_customer(
        session, tenant, {"display_name": name, "email": f"{name[:4].lower()}@example.com"}
    )
    invoice = await create_invoice(
        session,
        tenant,
        {"customer_id": customer.id, "lines": [{"description": "Service call", "unit_price": "150.00", **line}]},
    )
    await send_invoice(session, tenant, invoice.id)
    await session.commit()
    return customer, invoice


def named(qbo: QBOSetup, entity: str, name: str) -> list[dict]:
    return [o for o in qbo.objects(entity).values() if o.get("DisplayName") == name]


# ----------------------------------------------------------------------------- "Customer name conflict"


async def test_name_conflict_with_a_qbo_customer_is_linked_never_duplicated(owner, session, biz, qbo: QBOSetup):
    # "Jordan Smith" is already a customer in the QuickBooks company.
    customer, invoice = await invoice_for(session, biz, "Jordan Smith")
    run = await qbo.sync()
    assert run.status == RunStatus.FAILED and run.failed == 1, run.errors
    row = await row_of(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.FAILED and row.error_code == "6240"
    assert len(named(qbo, "Customer", "Jordan Smith")) == 1  # nothing created silently

    text = await failed_list(owner, qbo)
    assert "Customer name conflict: a customer, vendor or employee named “Jordan Smith” already exists" in text
    assert "rename or merge the other one in QuickBooks" in text
    assert f"/records/{row.id}/resolve" in text

    page = await owner.get(f"{base(qbo)}/records/{row.id}/resolve")
    assert page.status_code == 200, page.text
    assert 'data-holder="Customer"' in page.text and "Link to the existing" in page.text
    existing = named(qbo, "Customer", "Jordan Smith")[0]["Id"]
    r = await owner.submit(f"{base(qbo)}/records/{row.id}/link", {"remote_id": existing})
    assert r.status_code == 303, r.text

    row = await row_of(session, qbo, "customer", customer.id)
    assert (row.state, row.remote_id) == (LedgerState.SYNCED, existing)
    events = list(await session.scalars(select(RecordEvent).where(RecordEvent.ledger_id == row.id)))
    assert "linked" in {e.action for e in events}
    # The invoice that waited for its customer now goes, to that customer.
    run = await qbo.sync(trigger="retry")
    assert run.status == RunStatus.SUCCESS, run.errors
    remote = [o for o in qbo.objects("Invoice").values() if o.get("PrivateNote") == f"fieldhub invoice #{invoice.id}"]
    assert len(remote) == 1 and remote[0]["CustomerRef"]["value"] == existing
    assert len(named(qbo, "Customer", "Jordan Smith")) == 1
    assert "Nothing failed" in await failed_list(owner, qbo)


async def test_name_conflict_with_a_vendor_takes_the_stable_suggested_name(owner, session, biz, qbo: QBOSetup):
    # "Home Depot" is a vendor in QuickBooks: a customer can't be linked to it, only renamed.
    customer = await create_customer(
        session, biz.tenant.id, {"display_name": "Home Depot", "service_city": "Austin", "email": "hd@example.com"}
    )
    await session.commit()
    await qbo.sync()
    row = await row_of(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.FAILED and "Customer name conflict" in row.error_reason

    pages = [await owner.get(f"{base(qbo)}/records/{row.id}/resolve") for _ in range(2)]
    suggestions = [re.search(r'value="([^"]+)" size="40"', unescape(p.text)).group(1) for p in pages]
    assert suggestions == ["Home Depot (Austin)"] * 2  # stable: the same customer, the same suggestion
    assert 'data-holder="Vendor"' in pages[0].text and "data-link" not in pages[0].text

    # A name QuickBooks already uses is refused with the reason, nothing changed.
    r = await owner.submit(f"{base(qbo)}/records/{row.id}/rename", {"display_name": "Emily Platt"})
    assert r.status_code == 400 and "QuickBooks already has an employee called “Emily Platt”" in unescape(r.text)
    assert (await session.get(Customer, customer.id, populate_existing=True)).display_name == "Home Depot"

    r = await owner.submit(f"{base(qbo)}/records/{row.id}/rename", {"display_name": suggestions[0]})
    assert r.status_code == 303, r.text
    run = await qbo.sync(trigger="retry")
    assert run.status == RunStatus.SUCCESS, run.errors
    row = await row_of(session, qbo, "customer", customer.id)
    assert row.state == LedgerState.SYNCED
    assert qbo.objects("Customer")[row.remote_id]["DisplayName"] == "Home Depot (Austin)"
    assert named(qbo, "Customer", "Home Depot") == []
    assert len(named(qbo, "Vendor", "Home Depot")) == 1


# ----------------------------------------------------------------------------- "Invalid tax rate"


async def test_invalid_tax_rate_then_the_rate_is_set_up_in_quickbooks_and_retried(app, owner, session, biz):
    # A Canadian company (rate codes per line): fieldhub charges Nova Scotia HST 15 %, which QuickBooks lacks.
    r, _ = await consent(owner, "quickbooks", account=CA_REALM)
    assert r.status_code == 303, r.text
    conn = await session.scalar(select(Connection).where(Connection.provider == "quickbooks"))
    conn.settings = {"account_mapping": dict(MAPPING)}
    await session.commit()
    qbo = QBOSetup(app, env_for(app), conn.id, app.state.endpoints.emulators["quickbooks"], CA_REALM, [])

    rate = await create_tax_rate(session, biz.tenant.id, {"name": "HST NS", "rate": "15"})
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Cape Breton Bakery"})
    invoice = await create_invoice(
        session,
        biz.tenant.id,
        {
            "customer_id": customer.id,
            "tax_rate_id": rate.id,
            "lines": [{"description": "Boiler service", "unit_price": "200.00", "taxable": True}],
        },
    )
    await send_invoice(session, biz.tenant.id, invoice.id)
    await session.commit()
    assert invoice.total == Decimal("230.00")

    run = await qbo.sync()
    assert run.failed == 1, run.errors
    row = await row_of(session, qbo, "invoice", invoice.id)
    assert row.state == LedgerState.FAILED
    text = await failed_list(owner, qbo)
    assert "Invalid tax rate: QuickBooks has no sales tax code at 15 % (HST NS)" in text
    assert "Set up that rate in QuickBooks (Taxes → Sales tax)" in text
    assert not any(o.get("PrivateNote") == f"fieldhub invoice #{invoice.id}" for o in qbo.objects("Invoice").values())

    # Retrying before the fix fails the same way (and is still shown).
    r = await owner.submit(f"{base(qbo)}/records/{row.id}/retry")
    assert r.status_code == 303
    await qbo.sync(trigger="retry")
    assert (await row_of(session, qbo, "invoice", invoice.id)).state == LedgerState.FAILED

    # The fix the guide gives: the bookkeeper creates the matching rate in QuickBooks (Taxes → Sales tax).
    company = qbo.emulator.companies[CA_REALM]
    company.objects["TaxRate"]["90"] = {
        "Id": "90",
        "Name": "HST NS",
        "RateValue": Decimal("15"),
        "AgencyRef": {"value": "1"},
        "Active": True,
        "SpecialTaxType": "NONE",
        "DisplayType": "ReadOnly",
        "SyncToken": "0",
    }
    company.objects["TaxCode"]["90"] = {
        "Id": "90",
        "Name": "HST NS",
        "Active": True,
        "Taxable": True,
        "TaxGroup": False,
        "SyncToken": "0",
        "SalesTaxRateList": {
            "TaxRateDetail": [{"TaxRateRef": {"value": "90"}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]
        },
        "PurchaseTaxRateList": {"TaxRateDetail": []},
    }
    r = await owner.submit(f"{base(qbo)}/records/{row.id}/retry")
    assert r.status_code == 303
    run = await qbo.sync(trigger="retry")
    assert run.status == RunStatus.SUCCESS, run.errors
    row = await row_of(session, qbo, "invoice", invoice.id)
    assert row.state == LedgerState.SYNCED
    remote = qbo.objects("Invoice")[row.remote_id]
    assert remote["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"] == "90"
    assert Decimal(str(remote["TotalAmt"])) == invoice.total
    assert "Nothing failed" in await failed_list(owner, qbo)


# ----------------------------------------------------------------------------- "Account not found"


async def test_account_not_found_then_remapped_on_the_mapping_page_and_retried(owner, session, biz, qbo: QBOSetup):
    item = await create_item(
        session, biz.tenant.id, {"name": "Copper fitting", "kind": "product", "unit_price": "4.20"}
    )
    await session.commit()
    # The bookkeeper tidies the chart of accounts: "Sales of Product Income" (2) goes, "Parts Income" comes.
    emu, company = qbo.emulator, qbo.emulator.companies[qbo.realm]
    emu.write(company, "Account", "update", {"Id": "2", "Active": False, "sparse": True}, bookkeeper=True)
    parts = emu.write(
        company,
        "Account",
        "create",
        {"Name": "Parts Income", "AccountType": "Income", "AccountSubType": "SalesOfProductIncome"},
        bookkeeper=True,
    )

    run = await qbo.sync()
    assert run.failed == 1, run.errors
    row = await row_of(session, qbo, "item", item.id)
    assert (row.state, row.error_code) == (LedgerState.FAILED, "610")
    text = await failed_list(owner, qbo)
    assert "Account not found: your chart of accounts changed; re-run the field mapping" in text
    assert "Open QuickBooks → Field mapping, choose the accounts again and save, then retry." in text

    # Re-run step 3: the mapping page offers the live chart (the new account, not the inactive one).
    page = await owner.get(f"{base(qbo)}/mapping")
    select_html = re.search(r'<select id="m-product_revenue".*?</select>', page.text, re.S).group(0)
    assert f'value="{parts["Id"]}"' in select_html and 'value="2"' not in select_html
    conn = await session.get(Connection, qbo.connection_id, populate_existing=True)
    chosen = {**conn.settings["account_mapping"], "product_revenue": parts["Id"]}
    await session.commit()
    r = await owner.submit(f"{base(qbo)}/mapping", {**chosen, "confirmed": "yes"})
    assert r.status_code == 303, r.text

    r = await owner.submit(f"{base(qbo)}/records/{row.id}/retry")
    assert r.status_code == 303
    run = await qbo.sync(trigger="retry")
    assert run.status == RunStatus.SUCCESS, run.errors
    row = await row_of(session, qbo, "item", item.id)
    assert row.state == LedgerState.SYNCED
    assert qbo.objects("Item")[row.remote_id]["IncomeAccountRef"]["value"] == parts["Id"]
    assert "Nothing failed" in await failed_list(owner, qbo)


# ----------------------------------------------------------------------------- the "Services" item, kept


async def test_the_services_item_is_read_once_per_connection_and_again_after_a_refusal(
    owner, session, biz, qbo: QBOSetup
):
    def services_reads() -> int:
        return sum(1 for r in qbo.api_requests() if r.path.endswith("/query") and "Services" in (r.query or ""))

    # Hand-typed lines are booked under the company's "Services" item: a run per invoice reads it only once.
    await invoice_for(session, biz, "Patrick Customer")
    assert (await qbo.sync()).status == RunStatus.SUCCESS
    await invoice_for(session, biz, "Samuel Customer")
    assert (await qbo.sync()).status == RunStatus.SUCCESS
    assert services_reads() == 1
    services = next(o for o in qbo.objects("Item").values() if o["Name"] == "Services")

    # The bookkeeper makes it inactive: the next invoice is refused, and the refusal drops what was kept.
    emu, company = qbo.emulator, qbo.emulator.companies[qbo.realm]
    emu.write(company, "Item", "update", {"Id": services["Id"], "Active": False, "sparse": True}, bookkeeper=True)
    _, third = await invoice_for(session, biz, "Leena Customer")
    await qbo.sync()
    row = await row_of(session, qbo, "invoice", third.id)
    assert row.state == LedgerState.FAILED
    emu.write(company, "Item", "update", {"Id": services["Id"], "Active": True, "sparse": True}, bookkeeper=True)
    r = await owner.submit(f"{base(qbo)}/records/{row.id}/retry")
    assert r.status_code == 303
    assert (await qbo.sync(trigger="retry")).status == RunStatus.SUCCESS
    assert (await row_of(session, qbo, "invoice", third.id)).state == LedgerState.SYNCED
    assert services_reads() == 2  # read again after the refusal, not taken from what was kept


def test_issue15_item8_name_conflict_suggestions_read_as_a_person_would_write_them() -> None:
    """City, company, email, then "(2)", "(3)"...: never a machine-made "(C29)"."""
    bare = Customer(id=29, tenant_id=1, display_name="Jane Smith")
    assert candidates(bare)[:3] == ["Jane Smith (2)", "Jane Smith (3)", "Jane Smith (4)"]
    full = Customer(
        id=29, tenant_id=1, display_name="Jane Smith", service_city="Evanston", company="Smith Dental",
        email="jane@smithdental.example",
    )  # fmt: skip
    assert candidates(full)[:4] == [
        "Jane Smith (Evanston)",
        "Jane Smith (Smith Dental)",
        "Jane Smith (jane@smithdental.example)",
        "Jane Smith (2)",
    ]
    assert not any(re.search(r"\(C\d", name) for name in candidates(bare) + candidates(full))
    long = Customer(id=29, tenant_id=1, display_name="x" * 120)
    assert all(len(name) <= 100 for name in candidates(long))
