"""The guided one-dollar test sync (seed 001 step 5), for any ledger.

`run_test_sync` does what the guide asks a person to do by hand: create the customer "Test Customer
ZZ", a $1.00 invoice with one Service Revenue line, mark it paid, press Sync Now, then open the
ledger and look. The looking is done by reading each object back through the ledger protocol: the
customer by its id, the invoice (its customer, its total, the income account its lines book to) and
the payment (its amount, the invoice it pays, the account it was deposited to). A rerun reuses the
same local records, which the ledger rows already know, so nothing is created twice on either side.

`delete_test_records` cleans both sides: in the ledger the payment and the invoice are deleted and the
customer is made inactive (ledgers keep names); here the three records and their ledger rows go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.common import Refused, ledger_rows, require_ready, sync_until_settled
from fieldhub.capabilities.accounting.protocol import NOT_FOUND, Ledger, Party, Txn
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice
from fieldhub.core.jobs.models import Job
from fieldhub.core.payments.models import Payment, PaymentStatus, Refund
from fieldhub.db import utcnow
from fieldhub.hub.connections import mapping
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import ProviderError, Rejected
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent

TEST_NAME = "Test Customer ZZ"
TEST_LINE = "Test service (fieldhub test sync)"
TEST_MEMO = "fieldhub test sync: safe to delete"
SETTINGS_KEY = "test_sync"
ONE_DOLLAR = Decimal("1.00")
MAX_TEST_AMOUNT = Decimal("100.00")

ZERO_DOLLAR = (
    "A $0.00 invoice can't be used for the test. {name} refuses zero-dollar invoices in this flow (some "
    "{name} versions reject them outright), and an invoice of nothing moves no balance, so there would be "
    "nothing to trace. Run the test with $1.00: it lands as a real $1.00 invoice and payment you can follow "
    "through every account, and “Delete test records” removes them from both sides afterwards."
)


TestSyncRefused = Refused


@dataclass
class Check:
    key: str  # customer | invoice | payment
    label: str
    ok: bool
    remote_id: str = ""
    detail: str = ""
    fix: str = ""


# ----------------------------------------------------------------------------- the test sync


def parse_amount(raw: str | Decimal | None, name: str = "The ledger") -> Decimal:
    try:
        value = Decimal(str(raw if raw not in (None, "") else ONE_DOLLAR).replace("$", "").replace(",", "").strip())
    except InvalidOperation:
        raise TestSyncRefused("Enter the test amount in dollars, such as 1.00.") from None
    if not value.is_finite():
        raise TestSyncRefused("Enter the test amount in dollars, such as 1.00.")
    value = value.quantize(Decimal("0.01"))
    if value <= 0:
        raise TestSyncRefused(ZERO_DOLLAR.format(name=name))
    if value > MAX_TEST_AMOUNT:
        raise TestSyncRefused("Keep the test small: $1.00 is enough to trace every step.")
    return value


def test_state(conn: Connection) -> dict[str, Any]:
    return dict((conn.settings or {}).get(SETTINGS_KEY) or {})


def _refusal(conn: Connection) -> None:
    require_ready(conn, "before running the test", "the test checks the invoice lands in your Service Revenue account.")


async def _test_records(
    session: AsyncSession, tenant_id: int, conn: Connection, amount: Decimal
) -> tuple[Customer, Invoice, Payment]:
    """The test's customer, invoice and payment: the ones of an earlier run if they still exist, else new."""
    state = test_state(conn)
    customer = None
    if state.get("customer_id"):
        customer = await session.scalar(
            select(Customer).where(Customer.id == state["customer_id"], Customer.tenant_id == tenant_id)
        )
    if customer is None:
        customer = await session.scalar(
            select(Customer)
            .where(Customer.tenant_id == tenant_id, Customer.display_name == TEST_NAME)
            .order_by(Customer.id)
            .limit(1)
        )
    if customer is None:
        customer = await create_customer(session, tenant_id, {"display_name": TEST_NAME})
    invoice = None
    if state.get("invoice_id"):
        invoice = await session.scalar(
            select(Invoice).where(
                Invoice.id == state["invoice_id"], Invoice.tenant_id == tenant_id, Invoice.customer_id == customer.id
            )
        )
    if invoice is None:
        invoice = await session.scalar(
            select(Invoice)
            .where(
                Invoice.tenant_id == tenant_id,
                Invoice.customer_id == customer.id,
                Invoice.memo == TEST_MEMO,
                Invoice.status != InvoiceStatus.VOID,
            )
            .order_by(Invoice.id.desc())
            .limit(1)
        )
    if invoice is None:
        invoice = await create_invoice(
            session,
            tenant_id,
            {
                "customer_id": customer.id,
                "memo": TEST_MEMO,
                "lines": [{"description": TEST_LINE, "quantity": "1", "unit_price": str(amount), "taxable": False}],
            },
        )
    if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN):
        invoice = await send_invoice(session, tenant_id, invoice.id)
    payment = await session.scalar(
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
        .order_by(Payment.id)
        .limit(1)
    )
    if payment is None:
        # "Mark it Paid manually": a payment for the whole balance.
        payment = await record_payment(
            session, tenant_id, invoice.id, {"amount": str(invoice.balance), "method": "cash", "reference": "TEST"}
        )
    return customer, invoice, payment


async def run_test_sync(
    env: OAuthEnv,
    session: AsyncSession,
    tenant_id: int,
    conn: Connection,
    amount: Decimal | str | None = ONE_DOLLAR,
    *,
    client_options: dict[str, Any] | None = None,
) -> list[Check]:
    """Create (or reuse) the test records, Sync Now, read each back from the ledger; the checklist, saved."""
    value = parse_amount(amount, ledgers.name_of(conn.provider))
    _refusal(conn)
    customer, invoice, payment = await _test_records(session, tenant_id, conn, value)
    ids = {"customer_id": customer.id, "invoice_id": invoice.id, "payment_id": payment.id}
    local_total = invoice.total
    local_name = customer.display_name
    connection_id = conn.id
    conn.settings = {**(conn.settings or {}), SETTINGS_KEY: {**ids, "checks": [], "ran_at": utcnow().isoformat()}}
    await session.commit()

    keys = [("customer", customer.id), ("invoice", invoice.id), ("payment", payment.id)]
    settled = await sync_until_settled(env, session, connection_id, keys, client_options=client_options)
    rows = {entity: settled[(entity, local_id)] for entity, local_id in keys if (entity, local_id) in settled}
    fresh = await session.get(Connection, connection_id, populate_existing=True)
    assert fresh is not None
    checks = await _verify(env, fresh, rows, local_name, local_total, client_options)
    fresh.settings = {
        **(fresh.settings or {}),
        SETTINGS_KEY: {**ids, "checks": [asdict(c) for c in checks], "ran_at": utcnow().isoformat()},
    }
    await session.commit()
    return checks


def _not_there(key: str, label: str, row: LedgerRow | None, name: str) -> Check:
    if row is None:
        return Check(key, label, False, detail=f"fieldhub has not queued it for {name}.", fix="Run the test again.")
    if row.state == LedgerState.FAILED:
        return Check(key, label, False, detail=row.error_reason, fix=row.error_fix)
    if row.state == LedgerState.PENDING:
        why = row.error_reason or "it is waiting for its turn"
        return Check(key, label, False, detail=f"Not sent yet: {why}.", fix="Run the check again in a minute.")
    return Check(key, label, False, detail=row.error_reason or "It was not sent.", fix="Run the test again.")


async def _verify(
    env: OAuthEnv,
    conn: Connection,
    rows: dict[str, LedgerRow],
    name: str,
    total: Decimal,
    client_options: dict[str, Any] | None,
) -> list[Check]:
    accounts = mapping.saved_mapping(conn)
    checks: list[Check] = []
    async with ledgers.open_for(env, conn, **dict(client_options or {})) as ledger:
        try:
            checks.append(await _check_customer(ledger, rows.get("customer"), name))
            checks.append(await _check_invoice(ledger, rows, total, accounts))
            checks.append(await _check_payment(ledger, rows, total, accounts, conn))
        except ProviderError as e:
            check = Check(ledger.key, f"{ledger.name} answered", False, detail=str(e), fix="Run the test again.")
            checks.append(check)
    return checks


async def _check_customer(ledger: Ledger, row: LedgerRow | None, name: str) -> Check:
    label, books = "Customer", ledger.name
    if row is None or not row.remote_id:
        return _not_there("customer", label, row, books)
    obj = await ledger.read("customer", row.remote_id)
    if not isinstance(obj, Party) or not obj.active:
        return Check("customer", label, False, row.remote_id, f"{books} has no active customer with that Id.")
    if obj.name != name:
        return Check("customer", label, False, row.remote_id, f"{books} calls it “{obj.name}”, not “{name}”.")
    return Check("customer", label, True, row.remote_id, f"“{name}” is in {books}.")


async def _check_invoice(ledger: Ledger, rows: dict[str, LedgerRow], total: Decimal, accounts: dict[str, str]) -> Check:
    label, row, books = "Invoice", rows.get("invoice"), ledger.name
    if row is None or not row.remote_id:
        return _not_there("invoice", label, row, books)
    obj = await ledger.read("invoice", row.remote_id)
    if not isinstance(obj, Txn):
        return Check("invoice", label, False, row.remote_id, f"{books} has no invoice with that Id.")
    problems = []
    customer = rows.get("customer")
    if customer is not None and obj.customer_id != customer.remote_id:
        problems.append("it belongs to another customer")
    if obj.amount != total:
        problems.append(f"its total is ${obj.amount}, not ${total}")
    service = accounts.get("service_revenue", "")
    booked = await ledger.income_accounts(obj)
    fix = ""
    if booked and booked != {service}:
        problems.append("its line books to a different income account than your Service Revenue mapping")
        fix = ledger.explain("income_account").fix
    if problems:
        return Check("invoice", label, False, row.remote_id, "; ".join(problems).capitalize() + ".", fix)
    return Check("invoice", label, True, row.remote_id, f"${total} for {obj.number}, booked to Service Revenue.")


async def _check_payment(
    ledger: Ledger, rows: dict[str, LedgerRow], total: Decimal, accounts: dict[str, str], conn: Connection
) -> Check:
    label, row, books = "Payment", rows.get("payment"), ledger.name
    if row is None or not row.remote_id:
        return _not_there("payment", label, row, books)
    obj = await ledger.read("payment", row.remote_id)
    if not isinstance(obj, Txn):
        return Check("payment", label, False, row.remote_id, f"{books} has no payment with that Id.")
    problems = []
    if obj.amount != total:
        problems.append(f"its amount is ${obj.amount}, not ${total}")
    invoice = rows.get("invoice")
    if invoice is None or invoice.remote_id not in {link.remote_id for link in obj.links}:
        problems.append("it is not applied to the test invoice")
    elif isinstance(remote := await ledger.read("invoice", str(invoice.remote_id)), Txn) and remote.balance:
        problems.append(f"the invoice still shows ${remote.balance} due")
    to_bank = (conn.settings or {}).get("deposit_payments_to") == "bank"
    if to_bank and obj.deposit_to != accounts.get("bank_deposit"):
        problems.append("it was not deposited to your Bank Deposit account")
    if problems:
        return Check("payment", label, False, row.remote_id, "; ".join(problems).capitalize() + ".")
    where = "your Bank Deposit account" if to_bank else "Undeposited Funds, ready for the payout's bank deposit"
    return Check("payment", label, True, row.remote_id, f"${total} paid the invoice in full, held in {where}.")


# ----------------------------------------------------------------------------- clean-up


async def delete_test_records(
    env: OAuthEnv,
    session: AsyncSession,
    tenant_id: int,
    conn: Connection,
    *,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Remove the test records from the ledger (payment and invoice deleted, customer made inactive) and here."""
    state = test_state(conn)
    ids = {k: int(state[f"{k}_id"]) for k in ("customer", "invoice", "payment") if state.get(f"{k}_id")}
    if not ids:
        raise TestSyncRefused("There are no test records to delete: run the test first.")
    if ids.get("invoice") and await session.scalar(
        select(func.count()).select_from(Refund).where(Refund.invoice_id == ids["invoice"])
    ):
        raise TestSyncRefused("The test invoice has a refund now: delete the test records by hand.")
    found = await ledger_rows(session, conn.id, list(ids.items()))
    rows = {entity: row for (entity, _), row in found.items()}
    done: list[str] = []
    async with ledgers.open_for(env, conn, **dict(client_options or {})) as ledger:
        # Dependants first: a payment, then the invoice it paid, then the customer.
        for entity, label, action in (
            ("payment", "Payment", "deleted"),
            ("invoice", "Invoice", "deleted"),
            ("customer", "Customer", "made inactive"),
        ):
            row = rows.get(entity)
            if row is None or not row.remote_id:
                continue
            try:
                await ledger.remove(entity, row.remote_id)
            except Rejected as e:
                if e.code != NOT_FOUND:  # already gone there: nothing left to delete
                    raise TestSyncRefused(f"{ledger.name} did not delete the test {entity}: {e.reason}") from None
            done.append(f"{ledger.name}: {label} {row.remote_id} {action}")
    done += await _delete_local(session, tenant_id, conn, ids)
    conn.settings = {k: v for k, v in (conn.settings or {}).items() if k != SETTINGS_KEY}
    await session.commit()
    return done


async def _delete_local(session: AsyncSession, tenant_id: int, conn: Connection, ids: dict[str, int]) -> list[str]:
    done: list[str] = []
    ledger = select(LedgerRow.id).where(
        LedgerRow.connection_id == conn.id,
        LedgerRow.tenant_id == tenant_id,
        (
            ((LedgerRow.entity == "customer") & (LedgerRow.local_id == ids.get("customer", 0)))
            | ((LedgerRow.entity == "invoice") & (LedgerRow.local_id == ids.get("invoice", 0)))
            | ((LedgerRow.entity == "payment") & (LedgerRow.local_id == ids.get("payment", 0)))
        ),
    )
    row_ids = list(await session.scalars(ledger))
    if row_ids:
        await session.execute(delete(RecordEvent).where(RecordEvent.ledger_id.in_(row_ids)))
        await session.execute(delete(LedgerRow).where(LedgerRow.id.in_(row_ids)))
    invoice = await session.scalar(
        select(Invoice)
        .where(Invoice.id == ids.get("invoice", 0), Invoice.tenant_id == tenant_id)
        .options(selectinload(Invoice.lines))
    )
    if invoice is not None:
        payments = list(await session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)))
        for payment in payments:
            await session.delete(payment)
        await session.flush()
        await session.delete(invoice)
        await session.flush()
        done.append(f"fieldhub: invoice {invoice.number} and its payment deleted")
    customer = await session.scalar(
        select(Customer).where(Customer.id == ids.get("customer", 0), Customer.tenant_id == tenant_id)
    )
    if customer is not None:
        used = 0
        for model in (Invoice, Payment, Job, Estimate):
            used += int(
                await session.scalar(
                    select(func.count()).select_from(model).where(model.customer_id == customer.id)  # type: ignore[attr-defined]
                )
                or 0
            )
        if used:
            done.append(f"fieldhub: kept “{customer.display_name}”: other records use it")
        else:
            await session.delete(customer)
            await session.flush()
            done.append(f"fieldhub: customer “{customer.display_name}” deleted")
    return done
