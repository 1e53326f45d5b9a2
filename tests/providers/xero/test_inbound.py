"""Changes made in Xero come in through the accounting capability (issue 16 item 3): paid in Xero → paid here, once
and with no echo; a contact edited there, newest edit wins; Xero's signed webhooks (and its Intent to Receive)
answered as Xero requires: an empty 200, or 401 to a wrong signature."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from fieldhub.capabilities.accounting import inbound
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.payments.models import Payment
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from tests.conftest import Business
from tests.providers.xero.hub import XeroSetup, books_of, drain


@pytest.fixture
async def hooked(app, xero: XeroSetup) -> XeroSetup:
    # Webhooks go straight into this app, when the test says so.
    xero.emulator.webhooks.transport = httpx.ASGITransport(app=app)
    xero.emulator.webhooks.deliver = False
    return xero


async def test_issue16_item3_paid_in_xero_is_paid_here_once_with_no_echo(session, biz: Business, hooked: XeroSetup):
    xero = hooked
    made = await books_of(session, biz, 1)
    await drain(session, xero)
    await inbound.poll(xero.env, xero.connection_id)  # the cursor starts now
    invoice = made["invoice"][0]
    remote = next(i for i in xero.books.invoices.values() if i["Reference"] == f"fieldhub invoice #{invoice.id}")
    xero.emulator.clock.advance(2)
    xero.books.pay(
        {
            "Invoice": {"InvoiceID": remote["InvoiceID"]},
            "Account": {"Code": "090"},
            "Amount": remote["AmountDue"],
            "Reference": "cheque 42",
        }
    )
    # The invoice's webhook wakes the capability; the poll reads the payment (Xero sends no payment events).
    assert [d.responses[-1] for d in await xero.emulator.webhooks.flush(force=True)] == ["200"]
    await inbound.poll(xero.env, xero.connection_id)
    await inbound.poll(xero.env, xero.connection_id)  # again: nothing new
    await session.commit()
    local = await session.get(Invoice, invoice.id, populate_existing=True)
    assert local is not None and local.status == "PAID" and local.balance == Decimal("0.00")
    payments = list(await session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)))
    assert sorted(p.amount for p in payments) == sorted([Decimal("5.00"), remote["Total"] - Decimal("5.00")])
    row = await session.scalar(
        select(LedgerRow).where(LedgerRow.entity == "payment", LedgerRow.local_id == max(p.id for p in payments))
    )
    assert row is not None and row.state == LedgerState.SYNCED  # it came from Xero: nothing goes back
    before = len(xero.books.payments)
    await drain(session, xero)
    assert len(xero.books.payments) == before


async def test_issue16_item3_a_contact_edited_in_xero_comes_back_newest_edit_wins(
    session, biz: Business, hooked: XeroSetup
):
    xero = hooked
    made = await books_of(session, biz, 1)
    await drain(session, xero)
    conn = await session.get(Connection, xero.connection_id)
    conn.settings = {**conn.settings, "customer_direction": "two_way"}
    await session.commit()
    await inbound.poll(xero.env, xero.connection_id)
    customer = made["customer"][0]
    contact = next(c for c in xero.books.contacts.values() if c["Name"] == customer.display_name)
    xero.emulator.clock.advance(120)
    xero.books.save_contact({"EmailAddress": "new-address@example.com"}, contact)
    assert [d.responses[-1] for d in await xero.emulator.webhooks.flush(force=True)] == ["200"]
    await inbound.poll(xero.env, xero.connection_id)
    await session.commit()
    local = await session.get(Customer, customer.id, populate_existing=True)
    assert local is not None and local.email == "new-address@example.com"


async def test_issue16_item4_webhooks_answer_as_xero_requires(client, hooked: XeroSetup) -> None:
    xero = hooked
    intent = await xero.emulator.webhooks.intent_to_receive()
    assert intent["status"] == "OK", intent["attempts"]  # 200 with no body, 401, 200, 401
    wrong = await client.post("/webhooks/xero", content=b'{"events":[]}', headers={"x-xero-signature": "nope"})
    assert wrong.status_code == 401


async def test_issue16_item3_the_tenant_is_the_one_this_consent_connected(app, owner, session) -> None:
    """A second consent for the other organisation: each connection holds the tenant its own consent chose
    (GET /connections?authEventId= with the token's authentication_event_id), not merely the newest."""
    from fieldhub.providers.xero.emulator import ORGANISATIONS
    from tests.hub.oauth.conftest import consent

    emulator = app.state.endpoints.emulators["xero"]
    other = emulator.connect(next(a for a in emulator.oauth.accounts if a.id == ORGANISATIONS[1].id), "older-event")
    other["updated"] = emulator.clock.now() + 86_400  # listed as the newest connection while this consent runs
    await consent(owner, "xero", account=ORGANISATIONS[0].id)
    connection = await session.scalar(select(Connection).where(Connection.provider == "xero"))
    assert connection is not None and connection.account_id == ORGANISATIONS[0].id
