"""The guided $1 test sync through the web routes, against the in-process QuickBooks emulator."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import func, select

from fieldhub.capabilities.accounting.testsync import TEST_NAME
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.payments.models import Payment
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from tests.hub.sync.conftest import QBOSetup, connect_mapped


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    """Overrides the emulator-only `qbo` of this folder: a hub connection with its accounts mapped."""
    return await connect_mapped(app, owner, session)


def url(qbo: QBOSetup, path: str = "") -> str:
    return f"/settings/integrations/quickbooks/{qbo.connection_id}/test-sync{path}"


def checks(html: str) -> dict[str, tuple[bool, str]]:
    """data-check → (ok, remote id) from the checklist."""
    found = {}
    for m in re.finditer(r'data-check="(\w+)" data-ok="(yes|no)">(.*?)</li>', html, re.S):
        rid = re.search(r"data-remote-id>([^<]+)<", m.group(3))
        found[m.group(1)] = (m.group(2) == "yes", rid.group(1) if rid else "")
    return found


async def count(session, model) -> int:
    n = await session.scalar(select(func.count()).select_from(model))
    await session.commit()
    return int(n or 0)


async def test_one_dollar_test_lands_checks_each_object_and_reruns_without_duplicates(owner, session, qbo: QBOSetup):
    invoices_before = len(qbo.objects("Invoice"))
    r = await owner.submit(url(qbo), {"amount": "1.00"})
    assert r.status_code == 200, r.text
    found = checks(r.text)
    assert set(found) == {"customer", "invoice", "payment"}
    assert all(ok for ok, _ in found.values()), unescape(r.text)
    # The ids shown are the objects in QuickBooks, and they are what the guide asked for.
    customer = qbo.objects("Customer")[found["customer"][1]]
    invoice = qbo.objects("Invoice")[found["invoice"][1]]
    payment = qbo.objects("Payment")[found["payment"][1]]
    assert customer["DisplayName"] == TEST_NAME
    assert invoice["CustomerRef"]["value"] == customer["Id"] and Decimal(str(invoice["TotalAmt"])) == Decimal("1.00")
    assert Decimal(str(invoice["Balance"])) == 0
    assert Decimal(str(payment["TotalAmt"])) == Decimal("1.00")
    assert payment["Line"][0]["LinkedTxn"][0]["TxnId"] == invoice["Id"]
    assert len(qbo.objects("Invoice")) == invoices_before + 1

    # Again: the same records, nothing new on either side.
    seen = {e: len(qbo.objects(e)) for e in ("Customer", "Invoice", "Payment")}
    r = await owner.submit(url(qbo), {"amount": "1.00"})
    assert r.status_code == 200 and checks(r.text) == found
    assert {e: len(qbo.objects(e)) for e in seen} == seen
    assert await count(session, Invoice) == 1 and await count(session, Payment) == 1
    names = await session.scalars(select(Customer.display_name))
    assert list(names) == [TEST_NAME]

    # The page shows the last result.
    page = await owner.get(url(qbo))
    assert checks(page.text) == found and "Delete test records" in page.text


async def test_delete_test_records_removes_them_on_both_sides(owner, session, qbo: QBOSetup):
    r = await owner.submit(url(qbo))
    found = checks(r.text)
    assert all(ok for ok, _ in found.values()), unescape(r.text)
    r = await owner.submit(url(qbo, "/delete"))
    assert r.status_code == 200, r.text
    assert "Test records deleted" in r.text
    assert found["payment"][1] not in qbo.objects("Payment")
    assert found["invoice"][1] not in qbo.objects("Invoice")
    customer = qbo.objects("Customer")[found["customer"][1]]
    assert customer["Active"] is False  # QBO never deletes names
    for model in (Customer, Invoice, Payment, LedgerRow):
        assert await count(session, model) == 0, model
    conn = await session.get(Connection, qbo.connection_id, populate_existing=True)
    assert "test_sync" not in (conn.settings or {})
    # The name is free again in QuickBooks: a new test lands as a new customer (even where the database
    # hands the new records the deleted ones' ids, their creates are not mistaken for the old ones).
    r = await owner.submit(url(qbo))
    again = checks(r.text)
    assert all(ok for ok, _ in again.values()), unescape(r.text)
    assert again["customer"][1] != found["customer"][1] and again["invoice"][1] != found["invoice"][1]


async def test_zero_dollar_test_and_unmapped_accounts_are_refused_in_plain_words(owner, session, qbo: QBOSetup):
    seen = len(qbo.emulator.requests)
    r = await owner.submit(url(qbo), {"amount": "0.00"})
    assert r.status_code == 400
    text = unescape(r.text)
    assert "QuickBooks refuses zero-dollar invoices" in text and "Run the test with $1.00" in text
    # Nothing was created on either side.
    assert await count(session, Invoice) == 0 and await count(session, Customer) == 0
    assert len(qbo.emulator.requests) == seen

    # Nor does the test run before the accounts are mapped.
    conn = await session.get(Connection, qbo.connection_id)
    conn.settings = {}
    await session.commit()
    r = await owner.submit(url(qbo))
    assert r.status_code == 400
    assert "Map your chart of accounts first" in unescape(r.text) and "/mapping" in r.text
    assert await count(session, Invoice) == 0


async def test_a_failure_shows_on_the_checklist_with_its_reason(owner, session, qbo: QBOSetup):
    # The bookkeeper already has a vendor called "Test Customer ZZ": QuickBooks refuses the customer (6240).
    company = qbo.emulator.companies[qbo.realm]
    company.create("Vendor", {"DisplayName": TEST_NAME})
    r = await owner.submit(url(qbo))
    assert r.status_code == 200, r.text
    found = checks(r.text)
    assert found["customer"][0] is False and found["invoice"][0] is False and found["payment"][0] is False
    text = unescape(r.text)
    assert "Customer name conflict" in text
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "customer"))
    assert row.state == LedgerState.FAILED
