"""Monthly reconciliation: fieldhub's books for one month against what the ledger holds, record by record.

The five totals (seed 001 step 8, issue 5 item 9), each computed the same way on both sides:

- **Invoiced** — invoices dated in the month, not DRAFT or VOID here; the ledger's invoice totals
  (a voided one is left out the same way).
- **Receivables at month end** — invoices dated on or before the month's last day, less the payments
  received on or before it. A refund does not reopen the invoice in the ledger (a QuickBooks
  RefundReceipt, a Xero CreditNote), while fieldhub's invoice balance counts refunded money as owed again;
  both sides are therefore compared as invoiced − paid. In the ledger: the open balance of invoices dated
  ≤ month end, plus what payments dated after the month end applied to them.
- **Payments received**, **Refunds**, **Bank deposits** — the ledger's payments, refunds and deposits
  dated in the month vs succeeded payments, refunds and deposits (net) here.

Records are matched through the sync ledger's remote ids: a local record with no remote id, or whose
object there is gone, is **missing in <ledger>**; a matched pair whose amounts (or, for invoices, open
balances) differ is an **amount mismatch**; one dated in another month there is a **date mismatch**; an
object of the month that no ledger row points to is **in <ledger> only** (typically entered by hand).
Every payout-built deposit is also aligned with its deposit there (found through the ledger rows, or by
the payout id in its note or number): the amount exact, the date within two business days of the
payout's arrival, the processor's fees on fee lines.

The ledger is read through the protocol (`Ledger.month`, `by_ids`, `open_invoices`, `payments_after`),
pages of at most 1,000 in id order; each page is folded into the totals and the per-record comparison and
dropped, so only the month's local records (one small entry each) are held at once. Money is Decimal.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.protocol import Ledger, Txn
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.money import ZERO, format_money
from fieldhub.core.payments.models import Deposit, Payment, PaymentStatus, Refund
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.models import LedgerRow

TOLERANCE = Decimal("1.00")  # the guide: "Should match within $1"
PAGE_SIZE = 1000  # the most a ledger is asked for in one page
DEPOSIT_DAYS = 2  # business days between a payout's arrival and its deposit in the books
DEPOSIT_WINDOW = timedelta(days=7)  # deposits read around the month, so late-dated ones still match payouts

MISSING = "missing_in_qbo"
MISMATCH = "amount_mismatch"
DATE_MISMATCH = "date_mismatch"
QBO_ONLY = "qbo_only"
KIND_LABELS = {
    MISSING: "Missing in {name}",
    MISMATCH: "Amount mismatch",
    DATE_MISMATCH: "Different date in {name}",
    QBO_ONLY: "In {name} only",
}
ENTITY_LABELS = {"invoice": "Invoice", "payment": "Payment", "refund": "Refund", "deposit": "Deposit"}
ENTITIES = ("invoice", "payment", "refund", "deposit")


# ----------------------------------------------------------------------------- months


@dataclass(frozen=True)
class Month:
    start: date
    end: date

    @property
    def key(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def label(self) -> str:
        return f"{self.start:%B %Y}"

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def month_of(day: date) -> Month:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return Month(start, end)


def last_month(today: date | None = None) -> Month:
    return month_of((today or date.today()).replace(day=1) - timedelta(days=1))


def parse_month(text: str) -> Month:
    """ "2026-10" → October 2026; anything else raises ValueError with words a person can act on."""
    value = (text or "").strip()
    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return month_of(date(int(year), int(month), 1))
    except ValueError:
        raise ValueError(f"{value!r} is not a month: write it as YYYY-MM, e.g. 2026-10.") from None


def business_days_between(a: date, b: date) -> int:
    """Weekdays from the earlier date to the later one (Fri → Mon is 1)."""
    lo, hi = min(a, b), max(a, b)
    days = 0
    day = lo
    while day < hi:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days += 1
    return days


# ----------------------------------------------------------------------------- the report


@dataclass
class Total:
    key: str
    label: str
    fieldhub: Decimal = ZERO
    books: Decimal = ZERO

    @property
    def difference(self) -> Decimal:
        return self.fieldhub - self.books


@dataclass
class Discrepancy:
    kind: str
    entity: str
    label: str
    fieldhub: Decimal | None = None
    books: Decimal | None = None
    local_id: int | None = None
    remote_id: str | None = None
    detail: str = ""
    link: str = ""  # the local record's page
    books_name: str = "the ledger"

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind].format(name=self.books_name)

    @property
    def difference(self) -> Decimal | None:
        return (self.fieldhub or ZERO) - (self.books or ZERO)


@dataclass
class PayoutMatch:
    deposit_id: int
    payout_id: str
    arrival_date: date
    net: Decimal
    fees: Decimal
    remote_id: str | None = None
    books_date: date | None = None
    books_amount: Decimal | None = None
    books_fees: Decimal | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    month: Month
    company: str
    totals: list[Total]
    discrepancies: list[Discrepancy]
    payouts: list[PayoutMatch]
    pages: int = 0  # requests made to the ledger
    objects: int = 0  # objects read from the ledger
    books_name: str = "the ledger"  # the ledger's name, as pages say it ("QuickBooks")
    books_key: str = "ledger"  # its provider key (the CSV's column and file name)

    @property
    def largest_difference(self) -> Total:
        return max(self.totals, key=lambda t: abs(t.difference))

    @property
    def within(self) -> bool:
        """Every total within $1.00 of the ledger."""
        return all(abs(t.difference) <= TOLERANCE for t in self.totals)

    @property
    def verdict(self) -> str:
        worst = self.largest_difference
        if self.within:
            if worst.difference == ZERO:
                return (
                    f"Reconciled within $1: every total for {self.month.label} matches {self.books_name} to the cent."
                )
            largest = format_money(abs(worst.difference))
            return f"Reconciled within $1: the largest difference is {largest} ({worst.label.lower()})."
        off = [t for t in self.totals if abs(t.difference) > TOLERANCE]
        return (
            f"Not within $1: {', '.join(t.label.lower() for t in off)} "
            f"{'differs' if len(off) == 1 else 'differ'} from {self.books_name}; the largest difference is "
            f"{format_money(abs(worst.difference))} ({worst.label.lower()})."
        )

    @property
    def empty(self) -> bool:
        """Nothing on either side for the month: no figures, no records, no payouts."""
        return (
            all(t.fieldhub == ZERO and t.books == ZERO for t in self.totals)
            and not self.discrepancies
            and not self.payouts
        )

    @property
    def payout_problems(self) -> list[PayoutMatch]:
        return [p for p in self.payouts if not p.ok]


def csv_header(key: str) -> tuple[str, ...]:
    return ("section", "kind", "record", "fieldhub", key, "difference", "fieldhub_id", f"{key}_id", "detail")


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def to_csv(report: Report) -> str:
    """One row per total, per discrepancy and per payout that does not line up; amounts as plain decimals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_header(report.books_key))
    for t in report.totals:
        writer.writerow(
            ("total", t.key, t.label, _amount(t.fieldhub), _amount(t.books), _amount(t.difference), "", "", "")
        )
    for d in report.discrepancies:
        writer.writerow(
            (
                "discrepancy",
                d.kind,
                f"{ENTITY_LABELS[d.entity]} {d.label}",
                _amount(d.fieldhub),
                _amount(d.books),
                _amount(d.difference),
                d.local_id or "",
                d.remote_id or "",
                d.detail,
            )
        )
    for p in report.payout_problems:
        writer.writerow(
            (
                "payout",
                "payout_deposit",
                f"Payout {p.payout_id}",
                _amount(p.net),
                _amount(p.books_amount),
                _amount(p.net - p.books_amount) if p.books_amount is not None else "",
                p.deposit_id,
                p.remote_id or "",
                "; ".join(p.problems),
            )
        )
    writer.writerow(
        ("verdict", "within_1" if report.within else "not_within_1", report.verdict, "", "", "", "", "", "")
    )
    return out.getvalue()


def csv_filename(report: Report) -> str:
    return f"{report.books_key}-reconciliation-{report.month.key}.csv"


# ----------------------------------------------------------------------------- reading the ledger


Progress = Callable[[int, int | None], Any]  # (objects read so far, objects expected or None)


class Reader:
    """Pages through the ledger's reads, counting objects for the progress bar (the ledger counts requests)."""

    def __init__(self, ledger: Ledger, progress: Progress | None, page_size: int = PAGE_SIZE) -> None:
        self.ledger = ledger
        self.progress = progress
        self.page_size = page_size
        self.objects = 0
        self.expected: int | None = None

    async def pages_of(self, pages: AsyncIterator[list[Txn]]) -> AsyncIterator[list[Txn]]:
        async for rows in pages:
            self.objects += len(rows)
            if self.progress is not None:
                self.progress(self.objects, self.expected)
            if rows:
                yield rows

    def month(self, entity: str, start: date, end: date) -> AsyncIterator[list[Txn]]:
        return self.pages_of(self.ledger.month(entity, start, end, self.page_size))

    async def by_ids(self, entity: str, ids: Iterable[str]) -> AsyncIterator[Txn]:
        async for obj in self.ledger.by_ids(entity, ids, self.page_size):
            self.objects += 1
            yield obj


# ----------------------------------------------------------------------------- local records


@dataclass
class Local:
    entity: str
    id: int
    label: str
    amount: Decimal
    day: date
    link: str
    remote_id: str | None
    ledger_state: str = ""
    ledger_reason: str = ""
    balance: Decimal | None = None  # invoices: what the ledger should show as open (total − payments)
    payout: str = ""  # deposits: the processor's payout id, which the ledger's deposit note names
    fees: Decimal = ZERO  # deposits: the processor's fees taken out of the payout
    status: str = ""  # invoices and payments: their status here


def _query(entity: str) -> tuple[Any, Any, Any, Any]:
    """One entity's local records: its select (uniform column names), model, date column, and the condition
    for being counted in the books (not a draft or void invoice, not a pending or failed payment)."""
    if entity == "invoice":
        paid = (
            select(func.sum(Payment.amount))
            .where(Payment.invoice_id == Invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
            .correlate(Invoice)
            .scalar_subquery()
            .label("paid")
        )
        columns: tuple[Any, ...] = (
            Invoice.id,
            Invoice.number,
            Invoice.total.label("amount"),
            Invoice.issue_date.label("day"),
        )
        stmt: Any = select(*columns, Invoice.status, paid)
        return stmt, Invoice, Invoice.issue_date, Invoice.status.not_in((InvoiceStatus.DRAFT, InvoiceStatus.VOID))
    if entity == "payment":
        columns = (Payment.id, Invoice.number, Payment.amount, Payment.received_on.label("day"), Payment.invoice_id)
        stmt = select(*columns, Payment.status).join(Invoice, Invoice.id == Payment.invoice_id)
        return stmt, Payment, Payment.received_on, Payment.status == PaymentStatus.SUCCEEDED
    if entity == "refund":
        columns = (Refund.id, Invoice.number, Refund.amount, Refund.refunded_on.label("day"), Refund.invoice_id)
        return select(*columns).join(Invoice, Invoice.id == Refund.invoice_id), Refund, Refund.refunded_on, true()
    columns = (Deposit.id, Deposit.source, Deposit.source_id, Deposit.net.label("amount"), Deposit.fees)
    return select(*columns, Deposit.arrival_date.label("day")), Deposit, Deposit.arrival_date, true()


def _local(entity: str, row: Any) -> Local:
    m = row._mapping
    if entity == "deposit":
        label, link = f"{m['source']} payout {m['source_id']}", ""
    elif entity == "invoice":
        label, link = m["number"], f"/invoices/{m['id']}"
    else:
        label, link = f"#{m['id']} on {m['number']}", f"/invoices/{m['invoice_id']}"
    return Local(
        entity,
        m["id"],
        label,
        m["amount"],
        m["day"],
        link,
        m["remote_id"],
        str(m["state"] or ""),
        m["error_reason"] or "",
        balance=m["amount"] - (m["paid"] or ZERO) if entity == "invoice" else None,
        payout=m.get("source_id", ""),
        fees=m.get("fees", ZERO),
        status=str(m.get("status", "")).lower(),
    )


async def _locals(session: AsyncSession, conn: Connection, entity: str, *conditions: Any) -> list[Local]:
    """The connection's tenant's records of one entity meeting `conditions`, each with its ledger row's state."""
    stmt, model, _, _ = _query(entity)
    stmt = stmt.add_columns(LedgerRow.remote_id, LedgerRow.state, LedgerRow.error_reason).outerjoin(
        LedgerRow,
        (LedgerRow.connection_id == conn.id) & (LedgerRow.entity == entity) & (LedgerRow.local_id == model.id),
    )
    rows = await session.execute(stmt.where(model.tenant_id == conn.tenant_id, *conditions).order_by(model.id))
    return [_local(entity, row) for row in rows]


async def _local_records(session: AsyncSession, conn: Connection, month: Month) -> dict[str, list[Local]]:
    """The month's records of every entity that counts in the books."""
    found = {}
    for entity in ENTITIES:
        _, _, day, counted = _query(entity)
        found[entity] = await _locals(session, conn, entity, day.between(month.start, month.end), counted)
    return found


async def _local_receivables(session: AsyncSession, tenant_id: int, end: date) -> Decimal:
    """Invoiced − paid for invoices dated on or before `end` (not draft or void), payments received by `end`."""
    counted = (
        Invoice.tenant_id == tenant_id,
        Invoice.issue_date <= end,
        Invoice.status.not_in((InvoiceStatus.DRAFT, InvoiceStatus.VOID)),
    )
    invoiced = await session.scalar(select(func.sum(Invoice.total)).where(*counted))
    paid = await session.scalar(
        select(func.sum(Payment.amount))
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(*counted, Payment.status == PaymentStatus.SUCCEEDED, Payment.received_on <= end)
    )
    return (invoiced or ZERO) - (paid or ZERO)


async def _ledger_owners(session: AsyncSession, conn: Connection, entity: str, remote_ids: list[str]) -> dict[str, int]:
    """Which of these remote ids a ledger row of this connection points to: remote id → local id."""
    if not remote_ids:
        return {}
    rows = await session.execute(
        select(LedgerRow.remote_id, LedgerRow.local_id).where(
            LedgerRow.connection_id == conn.id, LedgerRow.entity == entity, LedgerRow.remote_id.in_(remote_ids)
        )
    )
    return {str(r.remote_id): r.local_id for r in rows}


async def _elsewhere(
    session: AsyncSession, conn: Connection, ledger: Ledger, entity: str, local_id: int, obj: Txn
) -> Discrepancy:
    """An object of the month there, synced from a local record this month's figures leave out: why."""
    name, theirs, remote_id = ledger.name, obj.amount, obj.remote_id
    _, model, _, counted = _query(entity)
    found = await _locals(session, conn, entity, model.id == local_id)
    if not found:
        detail = f"Its fieldhub record was deleted; {name} still counts it."
        label = f"{name} #{remote_id}"
        return Discrepancy(QBO_ONLY, entity, label, books=theirs, remote_id=remote_id, detail=detail, books_name=name)
    local = found[0]
    if not await _locals(session, conn, entity, model.id == local_id, counted):
        return Discrepancy(
            MISMATCH,
            entity,
            local.label,
            fieldhub=ZERO,
            books=theirs,
            local_id=local_id,
            remote_id=remote_id,
            detail=f"It is {local.status} here, but {name} still counts {format_money(theirs)}.",
            link=local.link,
            books_name=name,
        )
    return Discrepancy(
        DATE_MISMATCH,
        entity,
        local.label,
        fieldhub=local.amount,
        books=theirs,
        local_id=local_id,
        remote_id=remote_id,
        detail=f"Dated {local.day:%b %-d, %Y} here, {obj.day} in {name}: counted in different months.",
        link=local.link,
        books_name=name,
    )


# ----------------------------------------------------------------------------- comparing


def _not_synced(local: Local, name: str) -> str:
    if local.ledger_state == "failed":
        return f"Never reached {name}: {local.ledger_reason or 'the sync failed'}."
    if local.ledger_state == "pending":
        return "Not synced yet: waiting in the queue."
    if not local.ledger_state:
        return f"Never queued for {name} (was the connection made after this record?)."
    return f"Not in {name} (sync state {local.ledger_state})."


class Comparison:
    """One entity: the month's local records by remote id, folded against the ledger's pages as they arrive.

    A local record whose ledger row has no remote id yet (a create whose reply was lost, a deposit the
    engine has not pushed) can still be recognised by what the adapter writes into the ledger: its
    marker "fieldhub <entity> #<id>" in the note or, for a deposit, its payout id.
    """

    def __init__(self, ledger: Ledger, entity: str, locals_: list[Local], out: list[Discrepancy]) -> None:
        self.ledger = ledger
        self.name = ledger.name
        self.entity = entity
        self.out = out
        self.expected: dict[str, Local] = {}
        self.unlinked: dict[str, Local] = {}
        for local in locals_:
            if local.remote_id:
                self.expected[local.remote_id] = local
            else:
                self.unlinked[f"#{local.id}"] = local
                if local.payout:
                    self.unlinked[local.payout] = local

    def _recognise(self, obj: Txn) -> Local | None:
        if not self.unlinked:
            return None
        marker = re.search(rf"\bfieldhub {self.entity} (#\d+)\b", obj.note)
        keys = [marker.group(1)] if marker else []
        keys += [word for word in obj.words if not word.startswith("#")]  # a payout id
        local = next((self.unlinked[k] for k in keys if k in self.unlinked), None)
        if local is not None:
            self.unlinked.pop(f"#{local.id}", None)
            self.unlinked.pop(local.payout, None)
        return local

    def finish(self) -> None:
        """Local records the ledger never showed, found by neither remote id nor marker."""
        for local in {id(v): v for v in self.unlinked.values()}.values():
            self._add(MISSING, local, None, _not_synced(local, self.name))
        self.unlinked = {}

    def _add(self, kind: str, local: Local | None, obj: Txn | None, detail: str, **kw: Any) -> None:
        remote_id = obj.remote_id if obj else (local.remote_id if local else None)
        if local is not None:
            label, local_id, link, mine = local.label, local.id, local.link, local.amount
        else:
            assert obj is not None
            label = obj.number or f"{self.name} #{obj.remote_id}"
            local_id, link, mine = None, "", None
        self.out.append(
            Discrepancy(
                kind,
                self.entity,
                label,
                fieldhub=kw.get("fieldhub", mine),
                books=kw.get("books", obj.amount if obj else None),
                local_id=local_id,
                remote_id=remote_id,
                detail=detail,
                link=link,
                books_name=self.name,
            )
        )

    def match(self, obj: Txn, month: Month) -> bool:
        """Compare one object there with its local record; False when no local record of the month has it."""
        local = self.expected.pop(obj.remote_id, None) or self._recognise(obj)
        if local is None:
            return False
        name, theirs = self.name, obj.amount
        if obj.voided:
            self._add(MISMATCH, local, obj, f"Voided in {name}, still counted here.")
        elif theirs != local.amount:
            self._add(MISMATCH, local, obj, f"{format_money(local.amount)} here, {format_money(theirs)} in {name}.")
        elif local.balance is not None and (obj.balance or ZERO) != local.balance:
            self._add(
                MISMATCH,
                local,
                obj,
                f"Open balance {format_money(local.balance)} here (refunds aside), "
                f"{format_money(obj.balance or ZERO)} in {name}: a payment is missing on one side.",
                fieldhub=local.balance,
                books=obj.balance or ZERO,
            )
        if obj.day is not None and obj.day not in month:
            self._add(DATE_MISMATCH, local, obj, f"Dated {local.day:%b %-d, %Y} here, {obj.day:%b %-d, %Y} in {name}.")
        return True

    def only_in_books(self, obj: Txn) -> None:
        if not obj.voided:
            self._add(
                QBO_ONLY,
                None,
                obj,
                f"No fieldhub record points to it: entered in {self.name} directly, or synced from another account.",
            )

    def gone(self, obj: Txn | None, remote_id: str, month: Month) -> None:
        """A local record whose object there was not among the month's: moved to another date, or deleted."""
        local = self.expected.pop(remote_id)
        if obj is None:
            what = self.ledger.object_name(self.entity)
            self._add(
                MISSING,
                local,
                None,
                f"{self.name} has no {what} {remote_id} any more: deleted there after it synced.",
                books=None,
            )
        else:
            self.expected[remote_id] = local
            self.match(obj, month)


def _payout_problems(match: PayoutMatch, name: str) -> list[str]:
    problems = []
    if match.books_amount is None or match.books_date is None:
        return [f"No deposit in {name} for this payout."]
    if match.books_amount != match.net:
        problems.append(
            f"Amount: the payout is {format_money(match.net)}, the deposit {format_money(match.books_amount)}."
        )
    apart = business_days_between(match.arrival_date, match.books_date)
    if apart > DEPOSIT_DAYS:
        problems.append(
            f"Date: the payout arrived {match.arrival_date:%b %-d}, the deposit is dated {match.books_date:%b %-d} "
            f"({apart} business days apart; at most {DEPOSIT_DAYS})."
        )
    if match.fees and match.books_fees != match.fees:
        problems.append(
            f"Fees: {format_money(match.fees)} in processing fees, "
            f"{format_money(match.books_fees or ZERO)} on the deposit's fee lines."
        )
    return problems


# ----------------------------------------------------------------------------- the run


async def reconcile_with(
    session: AsyncSession,
    conn: Connection,
    ledger: Ledger,
    month: Month,
    *,
    progress: Progress | None = None,
    page_size: int = PAGE_SIZE,
) -> Report:
    """The month's report, reading the ledger (its errors propagate: RetryLater, NeedsReauth)."""
    reader = Reader(ledger, progress, page_size)
    local = await _local_records(session, conn, month)
    discrepancies: list[Discrepancy] = []
    totals = {
        "revenue": Total("revenue", "Invoiced"),
        "receivables": Total("receivables", "Receivables at month end"),
        "payments": Total("payments", "Payments received"),
        "refunds": Total("refunds", "Refunds"),
        "deposits": Total("deposits", "Bank deposits"),
    }
    for key, entity in (("revenue", "invoice"), ("payments", "payment"), ("refunds", "refund")):
        totals[key].fieldhub = sum((r.amount for r in local[entity]), ZERO)
    totals["deposits"].fieldhub = sum((r.amount for r in local["deposit"]), ZERO)
    totals["receivables"].fieldhub = await _local_receivables(session, conn.tenant_id, month.end)

    reads = (
        ("invoice", month.start, month.end),
        ("payment", month.start, month.end),
        ("refund", month.start, month.end),
        ("deposit", month.start - DEPOSIT_WINDOW, month.end + DEPOSIT_WINDOW),
    )
    reader.expected = sum([await ledger.count(entity, start, end) for entity, start, end in reads]) + sum(
        [await ledger.count_open_invoices(month.end), await ledger.count_payments_after(month.end)]
    )

    # Payouts: the deposits built from a processor's payout, to be found among the ledger's deposits.
    payouts = {r.id: PayoutMatch(r.id, r.payout, r.day, r.amount, r.fees) for r in local["deposit"]}
    by_remote = {r.remote_id: r.id for r in local["deposit"] if r.remote_id}
    by_payout = {p.payout_id: p for p in payouts.values()}

    def align(obj: Txn) -> None:
        match = payouts.get(by_remote.get(obj.remote_id, -1))
        if match is None:
            match = next((p for pid, p in by_payout.items() if pid and pid in obj.words), None)
        if match is None or match.remote_id is not None:
            return
        match.remote_id = obj.remote_id
        match.books_date = obj.day
        match.books_amount = obj.amount
        match.books_fees = obj.fees

    for entity, start, end in reads:
        key = {"invoice": "revenue", "payment": "payments", "refund": "refunds", "deposit": "deposits"}[entity]
        comparison = Comparison(ledger, entity, local[entity], discrepancies)
        async for page in reader.month(entity, start, end):
            strangers: list[Txn] = []
            for obj in page:
                if entity == "deposit":
                    align(obj)
                if obj.day not in month:
                    # A deposit from the days around the month: it matters only if it is a payout of the month's.
                    comparison.match(obj, month)
                    continue
                totals[key].books += obj.amount
                if not comparison.match(obj, month):
                    strangers.append(obj)
            owned = await _ledger_owners(session, conn, entity, [o.remote_id for o in strangers])
            for obj in strangers:
                local_id = owned.get(obj.remote_id)
                if local_id is None:
                    comparison.only_in_books(obj)
                elif not obj.voided:
                    discrepancies.append(await _elsewhere(session, conn, ledger, entity, local_id, obj))
        # Local records of the month whose object the ledger did not list in it: deleted, or dated elsewhere.
        leftovers = list(comparison.expected)
        seen: set[str] = set()
        async for obj in reader.by_ids(entity, leftovers):
            seen.add(obj.remote_id)
            comparison.gone(obj, obj.remote_id, month)
            if entity == "deposit":
                align(obj)
        for remote_id in leftovers:
            if remote_id not in seen:
                comparison.gone(None, remote_id, month)
        comparison.finish()

    # Receivables at month end there: open balances of invoices dated by then, plus what later payments
    # took off them.
    open_total = ZERO
    async for page in reader.pages_of(ledger.open_invoices(month.end, page_size)):
        open_total += sum((o.balance or ZERO for o in page), ZERO)
    later: dict[str, Decimal] = {}
    async for page in reader.pages_of(ledger.payments_after(month.end, page_size)):
        for payment in page:
            for link in payment.links:
                if link.kind == "invoice":
                    later[link.remote_id] = later.get(link.remote_id, ZERO) + link.amount
    async for invoice in reader.by_ids("invoice", list(later)):
        if invoice.day is not None and invoice.day <= month.end:
            open_total += later[invoice.remote_id]
    totals["receivables"].books = open_total

    matches = list(payouts.values())
    for match in matches:
        match.problems = _payout_problems(match, ledger.name)
    discrepancies.sort(key=lambda d: (ENTITIES.index(d.entity), d.kind, d.local_id or 0, d.remote_id or ""))
    return Report(
        month,
        conn.account_name,
        list(totals.values()),
        discrepancies,
        sorted(matches, key=lambda m: (m.arrival_date, m.deposit_id)),
        pages=ledger.reads,
        objects=reader.objects,
        books_name=ledger.name,
        books_key=ledger.key,
    )


async def reconcile(
    env: OAuthEnv,
    session: AsyncSession,
    conn: Connection,
    month: Month,
    *,
    progress: Progress | None = None,
    client_options: dict[str, Any] | None = None,
    page_size: int = PAGE_SIZE,
) -> Report:
    """Open the connection's ledger and build the month's report; a paused connection is NeedsReauth."""
    if conn.status != ConnectionStatus.CONNECTED:
        name = ledgers.name_of(conn.provider)
        raise NeedsReauth(conn.sync_error or f"{name} is not connected. Reconnect it, then run this again.")
    async with ledgers.open_for(env, conn, **(client_options or {})) as ledger:
        return await reconcile_with(session, conn, ledger, month, progress=progress, page_size=page_size)


# ----------------------------------------------------------------------------- the terminal


def print_report(report: Report, console: Any) -> None:
    """The page's content for `fieldhub reconcile`: totals, verdict, discrepancies, payouts (Rich)."""
    from rich.table import Table

    name = report.books_name
    totals = Table(title=f"{report.company or name} · {report.month.label}", title_justify="left")
    totals.add_column("")
    for column in ("fieldhub", name, "Difference"):
        totals.add_column(column, justify="right")
    for t in report.totals:
        style = "red" if abs(t.difference) > TOLERANCE else ""
        totals.add_row(
            t.label, format_money(t.fieldhub), format_money(t.books), format_money(t.difference), style=style
        )
    console.print(totals)
    if report.empty:
        console.print(f"Nothing to reconcile for {report.month.label}.")
    console.print(f"[{'green' if report.within else 'red'}]{report.verdict}[/]")
    if report.discrepancies:
        count = len(report.discrepancies)
        table = Table(title=f"{count} discrepanc{'y' if count == 1 else 'ies'}", title_justify="left")
        for column in ("What", "Record", "fieldhub", name, "Why"):
            table.add_column(column, justify="right" if column in ("fieldhub", name) else "left")
        for d in report.discrepancies:
            table.add_row(
                d.kind_label,
                f"{ENTITY_LABELS[d.entity]} {d.label}" + (f" ({name} #{d.remote_id})" if d.remote_id else ""),
                "—" if d.fieldhub is None else format_money(d.fieldhub),
                "—" if d.books is None else format_money(d.books),
                d.detail,
            )
        console.print(table)
    if report.payouts:
        table = Table(title="Payouts ↔ bank deposits", title_justify="left")
        for column in ("Payout", "Arrived", "Amount", "Deposit", "Lines up"):
            table.add_column(column, justify="right" if column == "Amount" else "left")
        for p in report.payouts:
            deposit = f"#{p.remote_id} {p.books_date or ''}" if p.remote_id else "—"
            table.add_row(
                p.payout_id,
                p.arrival_date.isoformat(),
                format_money(p.net),
                deposit,
                "[green]yes[/]" if p.ok else "[red]no[/] " + " ".join(p.problems),
            )
        console.print(table)
    console.print(f"[dim]Read {report.objects:,} {name} records in {report.pages} requests.[/]")
