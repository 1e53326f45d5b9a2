"""One contract for every ledger: each accounting provider with a ledger module runs the same cases against its
emulator (issue 16, "What it must show"). What differs per ledger — how to connect and map it, and how a
bookkeeper changes something there — is its harness below; every check reads the ledger through the protocol.

A ledger without a harness here is skipped with a reason: add one (`HARNESSES[key]`) with its emulator.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pytest
from sqlalchemy import func, select

from fieldhub.capabilities.accounting import backfill, inbound, ledgers
from fieldhub.capabilities.accounting.protocol import Party, Txn
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer, update_customer
from fieldhub.core.invoices.models import InvoiceStatus
from fieldhub.core.invoices.service import create_invoice, record_payment, refund_payment, send_invoice, void_invoice
from fieldhub.core.payments.deposits import DepositLineIn, record_deposit
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.oauth import tokens
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent
from tests.hub.sync.conftest import connect_mapped


@dataclass
class Setup:
    key: str
    env: Any
    connection_id: int
    emulator: Any
    account: str
    sleeps: list[float]

    async def sync(self, runs: int = 1) -> None:
        from fieldhub.hub.sync.engine import sync_connection

        for _ in range(runs):
            options = {"sleep": self._sleep, "timeout": 2.0}
            await sync_connection(self.env, self.connection_id, trigger="manual", client_options=options)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class Harness(Protocol):
    """What a ledger's contract needs from its emulator, beyond the protocol."""

    async def connect(self, app: Any, owner: Any, session: Any) -> Setup:
        """Connected (its company chosen), the accounts mapped, Auto-Sync on."""
        ...

    async def customer_there(self, owner: Any, setup: Setup, name: str, email: str) -> str:
        """A bookkeeper adds a customer in the ledger; its remote id."""
        ...

    async def edit_customer_there(self, owner: Any, setup: Setup, remote_id: str, phone: str) -> None: ...

    async def pay_there(self, owner: Any, setup: Setup, remote_invoice: str) -> None:
        """A bookkeeper records the invoice paid in full in the ledger."""
        ...

    async def deliver(self, setup: Setup) -> None:
        """The ledger's pending webhooks, sent to the hub (a no-op for a ledger that is only polled)."""
        ...


class QuickBooksHarness:
    async def connect(self, app: Any, owner: Any, session: Any) -> Setup:
        qbo = await connect_mapped(app, owner, session)
        return Setup("quickbooks", qbo.env, qbo.connection_id, qbo.emulator, qbo.realm, qbo.sleeps)

    async def _control(self, owner: Any, setup: Setup, path: str, body: dict[str, Any] | None = None) -> dict:
        # A webhook's time has whole seconds: a change in the very second of fieldhub's own write reads as its echo
        # (hub/sync/echoes.py). A bookkeeper is never that quick.
        changes, now = setup.emulator.companies[setup.account].changes, setup.emulator.clock.now()
        if changes and int(changes[-1].at) == int(now):
            await asyncio.sleep(int(now) + 1.01 - now)
        r = await owner.post(f"/emulators/quickbooks/_emulator/companies/{setup.account}/{path}", json=body or {})
        assert r.status_code == 200, r.text
        return r.json()

    async def customer_there(self, owner: Any, setup: Setup, name: str, email: str) -> str:
        made = await self._control(
            owner, setup, "customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": email}}
        )
        return str(made.get("Customer", made).get("Id"))

    async def edit_customer_there(self, owner: Any, setup: Setup, remote_id: str, phone: str) -> None:
        await self._control(owner, setup, f"customer/{remote_id}", {"PrimaryPhone": {"FreeFormNumber": phone}})

    async def pay_there(self, owner: Any, setup: Setup, remote_invoice: str) -> None:
        await self._control(owner, setup, f"invoice/{remote_invoice}/pay")

    async def deliver(self, setup: Setup) -> None:
        await setup.emulator.webhooks.flush(force=True)


HARNESSES: dict[str, Harness] = {"quickbooks": QuickBooksHarness()}
LEDGERS = [p.key for p in ledgers.providers()]


@pytest.fixture(params=LEDGERS)
def harness(request: pytest.FixtureRequest) -> Harness:
    found = HARNESSES.get(request.param)
    if found is None:
        pytest.skip(f"{request.param} implements the ledger protocol but has no contract harness here yet")
    return found


@pytest.fixture
async def books(harness: Harness, app, owner, session, biz) -> Setup:  # noqa: ANN001
    return await harness.connect(app, owner, session)


async def _conn(session: Any, setup: Setup) -> Connection:
    conn = await session.get(Connection, setup.connection_id, populate_existing=True)
    assert conn is not None
    return conn


async def _row(session: Any, setup: Setup, entity: str, local_id: int) -> LedgerRow | None:
    row = await session.scalar(
        select(LedgerRow)
        .where(
            LedgerRow.connection_id == setup.connection_id, LedgerRow.entity == entity, LedgerRow.local_id == local_id
        )
        .execution_options(populate_existing=True)
    )
    await session.commit()
    return row


async def _read(session: Any, setup: Setup, fn: Any) -> Any:
    conn = await _conn(session, setup)
    async with ledgers.open_for(setup.env, conn, timeout=2.0) as ledger:
        return await fn(ledger)


async def _sent_invoice(session: Any, tenant: int, name: str, amount: str = "150.00") -> Any:
    customer = await create_customer(
        session, tenant, {"display_name": name, "email": f"{name.split()[0].lower()}@example.com"}
    )
    invoice = await create_invoice(
        session,
        tenant,
        {"customer_id": customer.id, "lines": [{"description": "Repair", "quantity": "1", "unit_price": amount}]},
    )
    invoice = await send_invoice(session, tenant, invoice.id)
    await session.commit()
    return invoice


async def _synced_payment(session: Any, books: Setup, tenant: int) -> tuple[Any, Any]:
    invoice = await _sent_invoice(session, tenant, "Robin Park")
    payment = await record_payment(session, tenant, invoice.id, {"amount": "150.00", "method": "card"})
    await session.commit()
    await books.sync(3)
    return invoice, payment


async def test_issue16_item1_import_deduped_by_email(harness: Harness, app, owner, session, biz) -> None:  # noqa: ANN001
    t = biz.tenant.id
    # The business had the customer before it connected the ledger, whose bookkeeper had them too.
    local = await create_customer(session, t, {"display_name": "Avery Quinn", "email": "avery@example.com"})
    await session.commit()
    books = await harness.connect(app, owner, session)
    remote_id = await harness.customer_there(owner, books, "Avery Quinn (office)", "AVERY@example.com")
    conn = await _conn(session, books)
    plan = await backfill.plan(books.env, session, conn, client_options={"timeout": 2.0})
    assert (local.id, remote_id) in {(c.id, p.remote_id) for c, p in plan.customer_match}
    assert remote_id not in {p.remote_id for p in plan.customer_import}
    assert local.id not in {c.id for c in plan.customer_export}
    await backfill.start(books.env, session, await _conn(session, books), client_options={"timeout": 2.0})
    assert (await _row(session, books, "customer", local.id)).remote_id == remote_id
    parties = await _read(session, books, lambda ledger: ledger.parties())
    assert sum(1 for p in parties if p.email.casefold() == "avery@example.com") == 1
    here = await session.scalar(select(func.count()).select_from(Customer).where(Customer.email.ilike("avery@%")))
    assert here == 1


async def test_issue16_item1_open_and_sent_invoices_go_drafts_and_voids_stay(books: Setup, session, biz) -> None:  # noqa: ANN001
    t = biz.tenant.id
    sent = await _sent_invoice(session, t, "Sam Ortiz")
    customer_id = sent.customer_id
    line = [{"description": "Visit", "quantity": "1", "unit_price": "80.00"}]
    draft = await create_invoice(session, t, {"customer_id": customer_id, "lines": line})
    voided = await create_invoice(session, t, {"customer_id": customer_id, "lines": line})
    await void_invoice(session, t, voided.id)
    await session.commit()
    await books.sync(2)
    sent_row = await _row(session, books, "invoice", sent.id)
    assert sent_row is not None and sent_row.state == LedgerState.SYNCED and sent_row.remote_id
    for local in (draft, voided):
        row = await _row(session, books, "invoice", local.id)
        assert row is None or not row.remote_id
    found = await _read(session, books, lambda ledger: ledger.find_created("invoice", sent.number))
    assert [i.remote_id for i in found] == [sent_row.remote_id]
    for local in (draft, voided):
        assert await _read(session, books, lambda ledger, n=local.number: ledger.find_created("invoice", n)) == []


async def test_issue16_item1_a_payment_goes_once_however_often_it_is_retried(books: Setup, session, biz) -> None:  # noqa: ANN001
    t = biz.tenant.id
    invoice = await _sent_invoice(session, t, "Lee Chen")
    await books.sync()
    payment = await record_payment(session, t, invoice.id, {"amount": "150.00", "method": "check"})
    await session.commit()
    # The ledger makes the payment and the reply is lost, twice; the engine retries until it knows.
    books.emulator.faults.append(FaultRule(kind="drop_after_commit", method="POST", count=2))
    for _ in range(6):
        await books.sync()
        row = await _row(session, books, "payment", payment.id)
        if row is not None and row.state == LedgerState.SYNCED:
            break
        row.next_attempt_at = utcnow()
        await session.commit()
    row = await _row(session, books, "payment", payment.id)
    assert row is not None and row.state == LedgerState.SYNCED, (row.state, row.error_reason)
    customer = (await _row(session, books, "customer", invoice.customer_id)).remote_id
    marker = f"fieldhub payment #{payment.id}"
    found = await _read(
        session,
        books,
        lambda ledger: ledger.find_created("payment", marker, customer_id=customer, day=payment.received_on),
    )
    assert [p.remote_id for p in found] == [row.remote_id]


async def test_issue16_item1_a_refund_reaches_the_ledger(books: Setup, session, biz) -> None:  # noqa: ANN001
    t = biz.tenant.id
    _, payment = await _synced_payment(session, books, t)
    refund = await refund_payment(session, t, payment.id, {"amount": "40.00"})
    await session.commit()
    await books.sync(2)
    row = await _row(session, books, "refund", refund.id)
    assert row is not None and row.state == LedgerState.SYNCED and row.remote_id, row and row.error_reason
    day = refund.refunded_on
    refunds = await _read(session, books, lambda ledger: _all(ledger.month("refund", day, day, 100)))
    assert [(r.remote_id, r.amount) for r in refunds] == [(row.remote_id, Decimal("40.00"))]


async def test_issue16_item1_a_payout_becomes_a_deposit_with_its_fees(books: Setup, session, biz) -> None:  # noqa: ANN001
    t = biz.tenant.id
    _, payment = await _synced_payment(session, books, t)
    arrival = date.today()
    lines = [
        DepositLineIn(DepositLineKind.PAYMENT, Decimal("150.00"), payment_id=payment.id, source_id="txn_1"),
        DepositLineIn(DepositLineKind.FEE, Decimal("-4.65"), source_id="txn_1"),
    ]
    deposit = await record_deposit(
        session, t, source="stripe", source_id="po_1Contract", net=Decimal("145.35"), arrival_date=arrival, lines=lines
    )
    await session.commit()
    await books.sync(2)
    row = await _row(session, books, "deposit", deposit.id)
    assert row is not None and row.state == LedgerState.SYNCED and row.remote_id, row and row.error_reason
    week = timedelta(days=7)
    found = await _read(
        session, books, lambda ledger: _all(ledger.month("deposit", arrival - week, arrival + week, 100))
    )
    ours = [d for d in found if d.remote_id == row.remote_id]
    assert [(d.amount, d.fees) for d in ours] == [(Decimal("145.35"), Decimal("4.65"))]
    assert "po_1Contract" in ours[0].words


async def test_issue16_item1_paid_in_the_ledger_is_paid_here(
    harness: Harness, books: Setup, owner, session, biz
) -> None:  # noqa: ANN001
    invoice = await _sent_invoice(session, biz.tenant.id, "Kim Alvarez")
    await books.sync()
    await harness.deliver(books)  # the echoes of our own creates
    remote = (await _row(session, books, "invoice", invoice.id)).remote_id
    await harness.pay_there(owner, books, remote)
    await harness.deliver(books)
    await inbound.poll(books.env, books.connection_id, client_options={"timeout": 2.0})
    from fieldhub.core.invoices.models import Invoice

    paid = await session.get(Invoice, invoice.id, populate_existing=True)
    assert paid.status == InvoiceStatus.PAID and paid.balance == 0
    await books.sync()  # nothing goes back
    txn = await _read(session, books, lambda ledger: ledger.read("invoice", remote))
    assert isinstance(txn, Txn) and txn.balance == 0


async def test_issue16_item1_two_way_customer_newest_edit_wins(
    harness: Harness, books: Setup, owner, session, biz
) -> None:  # noqa: ANN001
    conn = await _conn(session, books)
    conn.settings = {**(conn.settings or {}), "customer_direction": "two_way"}
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Dana Reyes", "phone": "555-0100"})
    await session.commit()
    await books.sync()
    await harness.deliver(books)
    remote = (await _row(session, books, "customer", customer.id)).remote_id
    # Edited here (not sent yet), then there a second later: theirs is newer and wins; ours is logged as lost.
    await update_customer(session, biz.tenant.id, customer.id, {"phone": "555-0111"})
    await session.commit()
    await asyncio.sleep(1.05)
    await harness.edit_customer_there(owner, books, remote, "555-0122")
    await harness.deliver(books)
    await inbound.poll(books.env, books.connection_id, client_options={"timeout": 2.0})
    assert (await session.get(Customer, customer.id, populate_existing=True)).phone == "555-0122"
    row = await _row(session, books, "customer", customer.id)
    actions = list(await session.scalars(select(RecordEvent.action).where(RecordEvent.ledger_id == row.id)))
    assert "conflict" in actions
    there = await _read(session, books, lambda ledger: ledger.read("customer", remote))
    assert isinstance(there, Party) and there.fields["phone"] == "555-0122"


async def test_issue16_item1_an_expired_token_is_refreshed_once_under_the_lock(books: Setup, session) -> None:  # noqa: ANN001
    conn = await _conn(session, books)
    conn.access_expires_at = utcnow() - timedelta(seconds=5)
    await session.commit()
    before = books.emulator.oauth.refresh_requests

    async def read() -> list[Party]:
        async with ledgers.open_for(books.env, conn, timeout=2.0) as ledger:  # each its own client, one session each
            return await ledger.parties()

    found = await asyncio.gather(*(read() for _ in range(4)))
    assert all(found)
    assert books.emulator.oauth.refresh_requests == before + 1


async def test_issue16_item1_a_revoked_grant_needs_reconnect(books: Setup, session, biz) -> None:  # noqa: ANN001
    await books.emulator.oauth.control_revoke()
    conn = await _conn(session, books)
    conn.access_expires_at = utcnow() - timedelta(seconds=5)
    await session.commit()
    await _sent_invoice(session, biz.tenant.id, "Jo March")
    await books.sync()
    conn = await _conn(session, books)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    with pytest.raises(tokens.NeedsReauth):
        await tokens.get_access_token(books.env, conn.id)


async def _all(pages: Any) -> list[Txn]:
    return [t async for page in pages for t in page]
