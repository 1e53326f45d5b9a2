"""QuickBooks as a `Ledger`: the protocol's neutral records read from the emulator, both mapping directions agree,
natural keys find what a lost reply made, and QuickBooks' faults come back in plain words."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.protocol import Ledger, Party, Txn
from fieldhub.hub.connections.models import Connection
from fieldhub.providers.quickbooks import mapping
from fieldhub.providers.quickbooks.ledger import customer_fields, parse_time, product
from tests.hub.sync.conftest import QBOSetup, connect_mapped


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


def _customer(**kw: object) -> SimpleNamespace:
    fields = {"display_name": "Ada Lovelace", "company": "Engines Ltd", "email": "ada@example.com", "phone": "555"}
    fields |= {f"{p}_{k}": "" for p in ("billing", "service") for k in ("line1", "line2", "city", "region")}
    fields |= {"billing_postal_code": "", "service_postal_code": "", "billing_country": "", "service_country": ""}
    fields |= {"billing_line1": "1 Main St", "billing_city": "Austin", "billing_country": "US", "active": True}
    return SimpleNamespace(**(fields | kw))


def test_quickbooks_is_the_ledger_found_for_accounting() -> None:
    assert "quickbooks" in [p.key for p in ledgers.providers()]
    assert ledgers.module("stripe") is None  # a payments provider is no ledger


def test_customer_mapping_both_ways_agrees() -> None:
    local = _customer()
    back = customer_fields(mapping.customer_body(local))
    for name, value in back.items():
        assert getattr(local, name) == value, name
    # ISO-3 (what QBO writes since late 2025) reads as ISO-2; a country it can't read is left out.
    assert customer_fields({"BillAddr": {"Line1": "x", "Country": "USA"}})["billing_country"] == "US"
    assert "billing_country" not in customer_fields({"BillAddr": {"Line1": "x", "Country": "Narnia"}})


def test_item_and_time_readers() -> None:
    found = product({"Id": "7", "Name": " Pump ", "Type": "Service", "UnitPrice": 12.5, "SyncToken": "2"})
    assert (found.name, found.version, found.fields["unit_price"], found.fields["kind"]) == (
        "Pump",
        "2",
        Decimal("12.50"),
        "service",
    )
    assert not product({"Id": "8", "Name": "Kit", "Type": "Group"}).importable
    assert parse_time("2026-11-21T12:00:00-0800") == parse_time("2026-11-21T20:00:00Z")


async def test_quickbooks_ledger_reads_the_company(qbo: QBOSetup, session) -> None:
    conn = await session.get(Connection, qbo.connection_id)
    async with ledgers.open_for(qbo.env, conn) as ledger:
        assert isinstance(ledger, Ledger)
        parties = await ledger.parties(others=True)
        assert {p.kind for p in parties} >= {"customer", "vendor"}
        first = next(p for p in parties if p.kind == "customer")
        assert isinstance(first, Party) and first.fields["display_name"] == first.name
        holder = await ledger.name_holder(first.name.upper())
        assert holder is not None and holder.remote_id == first.remote_id
        assert await ledger.read("customer", "999999") is None
        assert [c.remote_id for c in await ledger.find_created("customer", first.name)] == [first.remote_id]
        invoices = [t async for page in ledger.month("invoice", date(2000, 1, 1), date(2100, 1, 1), 5) for t in page]
        assert all(isinstance(t, Txn) and t.kind == "invoice" for t in invoices)
        assert await ledger.count("invoice", date(2000, 1, 1), date(2100, 1, 1)) == len(invoices)
        assert ledger.reads > 0


def test_faults_in_plain_words() -> None:
    ledger = ledgers.module("quickbooks").QuickBooksLedger(adapter=None)  # explain needs no company
    conflict = ledger.explain("6240", {"DisplayName": "Ada"})
    assert "Customer name conflict" in conflict.reason and "Ada" in conflict.reason and conflict.fix
    assert "chart of accounts" in ledger.explain("610").reason
    assert ledger.normalise("Jane  SMITH ") == ledger.normalise("jane smith")
