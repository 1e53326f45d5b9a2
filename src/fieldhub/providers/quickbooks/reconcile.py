"""Monthly reconciliation: fieldhub's books for one month against what QuickBooks holds, record by record.

The five totals (seed 001 step 8, issue 5 item 9), each computed the same way on both sides:

- **Invoiced** — invoices dated in the month, not DRAFT or VOID here; QuickBooks `Invoice.TotalAmt`
  (a voided QBO invoice has TotalAmt 0, so it drops out the same way).
- **Receivables at month end** — invoices dated on or before the month's last day, less the payments
  received on or before it. A refund does not reopen the invoice in QuickBooks (it is its own
  RefundReceipt, booked against the bank), while fieldhub's invoice balance counts refunded money as
  owed again; both sides are therefore compared as invoiced − paid. In QuickBooks: the open `Balance`
  of invoices dated ≤ month end, plus what payments dated after the month end applied to them.
- **Payments received**, **Refunds**, **Bank deposits** — `Payment`, `RefundReceipt`, `Deposit`
  `TotalAmt` dated in the month vs succeeded payments, refunds and deposits (net) here.

Records are matched through the sync ledger's remote ids: a local record with no remote id, or whose
QuickBooks object is gone, is **missing in QuickBooks**; a matched pair whose amounts (or, for
invoices, open balances) differ is an **amount mismatch**; one dated in another month there is a
**date mismatch**; a QuickBooks object of the month that no ledger row points to is **in QuickBooks
only** (typically entered by hand). Every payout-built deposit is also aligned with its QuickBooks
Deposit (found through the ledger, or by the payout id in its PrivateNote or DocNumber): the amount
exact, the date within two business days of the payout's arrival, the processor's fees on fee lines.

QuickBooks is read through the adapter's query API, STARTPOSITION/MAXRESULTS pages of at most 1,000,
ordered by Id; each page is folded into the totals and the per-record comparison and dropped, so only
the month's local records (one small entry each) are held at once. Money is Decimal throughout.
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

from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.money import CENT, ZERO, format_money
from fieldhub.core.payments.models import Deposit, Payment, PaymentStatus, Refund
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.models import LedgerRow
from fieldhub.providers.quickbooks.sync import QuickBooksAdapter

TOLERANCE = Decimal("1.00")  # the guide: "Should match within $1"
PAGE_SIZE = 1000  # QBO's maximum MAXRESULTS
LOOKUP_CHUNK = 30  # ids per `WHERE Id IN (...)` when fetching leftovers
DEPOSIT_DAYS = 2  # business days between a payout's arrival and its deposit in the books
DEPOSIT_WINDOW = timedelta(days=7)  # deposits read around the month, so late-dated ones still match payouts

MISSING = "missing_in_qbo"
MISMATCH = "amount_mismatch"
DATE_MISMATCH = "date_mismatch"
QBO_ONLY = "qbo_only"
KIND_LABELS = {
    MISSING: "Missing in QuickBooks",
    MISMATCH: "Amount mismatch",
    DATE_MISMATCH: "Different date in QuickBooks",
    QBO_ONLY: "In QuickBooks only",
}
ENTITY_LABELS = {"invoice": "Invoice", "payment": "Payment", "refund": "Refund", "deposit": "Deposit"}
REMOTE = {"invoice": "Invoice", "payment": "Payment", "refund": "RefundReceipt", "deposit": "Deposit"}


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

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

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
    qbo_date: date | None = None
    qbo_amount: Decimal | None = None
    qbo_fees: Decimal | None = None
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
    pages: int = 0  # QuickBooks query pages read
    objects: int = 0  # QuickBooks objects read

    @property
    def largest_difference(self) -> Total:
        return max(self.totals, key=lambda t: abs(t.difference))

    @property
    def within(self) -> bool:
        """Every total within $1.00 of QuickBooks."""
        return all(abs(t.difference) <= TOLERANCE for t in self.totals)

    @property
    def verdict(self) -> str:
        worst = self.largest_difference
        if self.within:
            if worst.difference == ZERO:
                return f"Reconciled within $1: every total for {self.month.label} matches QuickBooks to the cent."
            largest = format_money(abs(worst.difference))
            return f"Reconciled within $1: the largest difference is {largest} ({worst.label.lower()})."
        off = [t for t in self.totals if abs(t.difference) > TOLERANCE]
        return (
            f"Not within $1: {', '.join(t.label.lower() for t in off)} "
            f"{'differs' if len(off) == 1 else 'differ'} from QuickBooks; the largest difference is "
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


CSV_HEADER = (
    "section",
    "kind",
    "record",
    "fieldhub",
    "quickbooks",
    "difference",
    "fieldhub_id",
    "quickbooks_id",
    "detail",
)


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def to_csv(report: Report) -> str:
    """One row per total, per discrepancy and per payout that does not line up; amounts as plain decimals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
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
                _amount(p.qbo_amount),
                _amount(p.net - p.qbo_amount) if p.qbo_amount is not None else "",
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
    return f"quickbooks-reconciliation-{report.month.key}.csv"


# ----------------------------------------------------------------------------- reading QuickBooks


def money(value: Any) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0)).quantize(CENT)


def qbo_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _voided(obj: dict[str, Any]) -> bool:
    return obj.get("TxnStatus") == "Voided" or (
        money(obj.get("TotalAmt")) == ZERO and obj.get("PrivateNote") == "Voided"
    )


Progress = Callable[[int, int | None], Any]  # (objects read so far, objects expected or None)


class Reader:
    """Pages through one QuickBooks query after another, counting pages and objects for the progress bar."""

    def __init__(self, adapter: QuickBooksAdapter, progress: Progress | None, page_size: int = PAGE_SIZE) -> None:
        self.adapter = adapter
        self.progress = progress
        self.page_size = page_size
        self.pages = 0
        self.objects = 0
        self.expected: int | None = None

    async def count(self, entity: str, where: str) -> int:
        reply = await self.adapter.query(f"SELECT COUNT(*) FROM {entity} WHERE {where}")
        self.pages += 1
        return int(reply.get("totalCount", 0))

    async def pages_of(self, entity: str, where: str) -> AsyncIterator[list[dict[str, Any]]]:
        start = 1
        while True:
            statement = (
                f"SELECT * FROM {entity} WHERE {where} ORDERBY Id STARTPOSITION {start} MAXRESULTS {self.page_size}"
            )
            rows = list((await self.adapter.query(statement)).get(entity, []))
            self.pages += 1
            self.objects += len(rows)
            if self.progress is not None:
                self.progress(self.objects, self.expected)
            if rows:
                yield rows
            if len(rows) < self.page_size:
                return
            start += len(rows)

    async def by_ids(self, entity: str, ids: Iterable[str]) -> AsyncIterator[dict[str, Any]]:
        wanted = sorted(set(ids), key=lambda i: (len(i), i))
        for n in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = ", ".join(f"'{i}'" for i in wanted[n : n + LOOKUP_CHUNK])
            async for page in self.pages_of(entity, f"Id IN ({chunk})"):
                for obj in page:
                    yield obj


def _between(start: date, end: date) -> str:
    return f"TxnDate >= '{start.isoformat()}' AND TxnDate <= '{end.isoformat()}'"


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
    balance: Decimal | None = None  # invoices: what QuickBooks should show as open (total − payments)
    payout: str = ""  # deposits: the processor's payout id, which the QuickBooks Deposit's note names
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
    for entity in REMOTE:
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
    """Which of these QuickBooks ids a ledger row of this connection points to: remote id → local id."""
    if not remote_ids:
        return {}
    rows = await session.execute(
        select(LedgerRow.remote_id, LedgerRow.local_id).where(
            LedgerRow.connection_id == conn.id, LedgerRow.entity == entity, LedgerRow.remote_id.in_(remote_ids)
        )
    )
    return {str(r.remote_id): r.local_id for r in rows}


async def _elsewhere(
    session: AsyncSession, conn: Connection, entity: str, local_id: int, obj: dict[str, Any]
) -> Discrepancy:
    """A QuickBooks object of the month synced from a local record this month's figures leave out: why."""
    theirs, remote_id = money(obj.get("TotalAmt")), str(obj["Id"])
    _, model, _, counted = _query(entity)
    found = await _locals(session, conn, entity, model.id == local_id)
    if not found:
        detail = "Its fieldhub record was deleted; QuickBooks still counts it."
        label = f"QuickBooks #{remote_id}"
        return Discrepancy(QBO_ONLY, entity, label, books=theirs, remote_id=remote_id, detail=detail)
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
            detail=f"It is {local.status} here, but QuickBooks still counts {format_money(theirs)}.",
            link=local.link,
        )
    return Discrepancy(
        DATE_MISMATCH,
        entity,
        local.label,
        fieldhub=local.amount,
        books=theirs,
        local_id=local_id,
        remote_id=remote_id,
        detail=f"Dated {local.day:%b %-d, %Y} here, {obj.get('TxnDate')} in QuickBooks: counted in different months.",
        link=local.link,
    )


# ----------------------------------------------------------------------------- comparing


def _not_synced(local: Local) -> str:
    if local.ledger_state == "failed":
        return f"Never reached QuickBooks: {local.ledger_reason or 'the sync failed'}."
    if local.ledger_state == "pending":
        return "Not synced yet: waiting in the queue."
    if not local.ledger_state:
        return "Never queued for QuickBooks (was the connection made after this record?)."
    return f"Not in QuickBooks (sync state {local.ledger_state})."


def _tokens(obj: dict[str, Any]) -> set[str]:
    """The words of a QuickBooks object's PrivateNote and DocNumber, to find a marker or a payout id in."""
    text = f"{obj.get('PrivateNote') or ''} {obj.get('DocNumber') or ''}"
    return {word.strip(".,;:()·") for word in text.split()}


class Comparison:
    """One entity: the month's local records by remote id, folded against QuickBooks pages as they arrive.

    A local record whose ledger row has no remote id yet (a create whose reply was lost, a deposit the
    engine has not pushed) can still be recognised by what the adapter writes into QuickBooks: its
    marker "fieldhub <entity> #<id>" (mapping.marker) or, for a deposit, its payout id.
    """

    def __init__(self, entity: str, locals_: list[Local], out: list[Discrepancy]) -> None:
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

    def _recognise(self, obj: dict[str, Any]) -> Local | None:
        if not self.unlinked:
            return None
        marker = re.search(rf"\bfieldhub {self.entity} (#\d+)\b", str(obj.get("PrivateNote") or ""))
        keys = [marker.group(1)] if marker else []
        keys += [word for word in _tokens(obj) if not word.startswith("#")]  # a payout id
        local = next((self.unlinked[k] for k in keys if k in self.unlinked), None)
        if local is not None:
            self.unlinked.pop(f"#{local.id}", None)
            self.unlinked.pop(local.payout, None)
        return local

    def finish(self) -> None:
        """Local records QuickBooks never showed, found by neither remote id nor marker."""
        for local in {id(v): v for v in self.unlinked.values()}.values():
            self._add(MISSING, local, None, _not_synced(local))
        self.unlinked = {}

    def _add(self, kind: str, local: Local | None, obj: dict[str, Any] | None, detail: str, **kw: Any) -> None:
        remote_id = str(obj["Id"]) if obj else (local.remote_id if local else None)
        if local is not None:
            label, local_id, link, mine = local.label, local.id, local.link, local.amount
        else:
            assert obj is not None
            label = str(obj.get("DocNumber") or f"QuickBooks #{obj['Id']}")
            local_id, link, mine = None, "", None
        self.out.append(
            Discrepancy(
                kind,
                self.entity,
                label,
                fieldhub=kw.get("fieldhub", mine),
                books=kw.get("books", money(obj.get("TotalAmt")) if obj else None),
                local_id=local_id,
                remote_id=remote_id,
                detail=detail,
                link=link,
            )
        )

    def match(self, obj: dict[str, Any], month: Month) -> bool:
        """Compare one QuickBooks object with its local record; False when no local record of the month has it."""
        local = self.expected.pop(str(obj["Id"]), None) or self._recognise(obj)
        if local is None:
            return False
        theirs = money(obj.get("TotalAmt"))
        day = qbo_date(obj.get("TxnDate"))
        if _voided(obj):
            self._add(MISMATCH, local, obj, "Voided in QuickBooks, still counted here.")
        elif theirs != local.amount:
            self._add(
                MISMATCH,
                local,
                obj,
                f"{format_money(local.amount)} here, {format_money(theirs)} in QuickBooks.",
            )
        elif local.balance is not None and money(obj.get("Balance")) != local.balance:
            self._add(
                MISMATCH,
                local,
                obj,
                f"Open balance {format_money(local.balance)} here (refunds aside), "
                f"{format_money(money(obj.get('Balance')))} in QuickBooks: a payment is missing on one side.",
                fieldhub=local.balance,
                books=money(obj.get("Balance")),
            )
        if day is not None and day not in month:
            self._add(DATE_MISMATCH, local, obj, f"Dated {local.day:%b %-d, %Y} here, {day:%b %-d, %Y} in QuickBooks.")
        return True

    def only_in_qbo(self, obj: dict[str, Any]) -> None:
        if not _voided(obj):
            self._add(
                QBO_ONLY,
                None,
                obj,
                "No fieldhub record points to it: entered in QuickBooks directly, or synced from another account.",
            )

    def gone(self, obj: dict[str, Any] | None, remote_id: str, month: Month) -> None:
        """A local record whose QuickBooks object was not among the month's: moved to another date, or deleted."""
        local = self.expected.pop(remote_id)
        if obj is None:
            self._add(
                MISSING,
                local,
                None,
                f"QuickBooks has no {REMOTE[self.entity]} {remote_id} any more: deleted there after it synced.",
                books=None,
            )
        else:
            self.expected[remote_id] = local
            self.match(obj, month)


def _fee_lines(obj: dict[str, Any]) -> Decimal:
    """A QuickBooks Deposit's processor fees: its negative direct lines booked as fees (by account or wording)."""
    total = ZERO
    for line in obj.get("Line", []):
        if line.get("LinkedTxn"):
            continue
        amount = money(line.get("Amount"))
        detail = line.get("DepositLineDetail") or {}
        account = detail.get("AccountRef") or {}
        words = f"{line.get('Description', '')} {account.get('name', '')}".lower()
        if amount < ZERO and "fee" in words:
            total -= amount
    return total


def _payout_problems(match: PayoutMatch) -> list[str]:
    problems = []
    if match.qbo_amount is None or match.qbo_date is None:
        return ["No deposit in QuickBooks for this payout."]
    if match.qbo_amount != match.net:
        problems.append(
            f"Amount: the payout is {format_money(match.net)}, the deposit {format_money(match.qbo_amount)}."
        )
    apart = business_days_between(match.arrival_date, match.qbo_date)
    if apart > DEPOSIT_DAYS:
        problems.append(
            f"Date: the payout arrived {match.arrival_date:%b %-d}, the deposit is dated {match.qbo_date:%b %-d} "
            f"({apart} business days apart; at most {DEPOSIT_DAYS})."
        )
    if match.fees and match.qbo_fees != match.fees:
        problems.append(
            f"Fees: {format_money(match.fees)} in processing fees, "
            f"{format_money(match.qbo_fees or ZERO)} on the deposit's fee lines."
        )
    return problems


# ----------------------------------------------------------------------------- the run


async def reconcile_with(
    session: AsyncSession,
    conn: Connection,
    adapter: QuickBooksAdapter,
    month: Month,
    *,
    progress: Progress | None = None,
    page_size: int = PAGE_SIZE,
) -> Report:
    """The month's report, reading QuickBooks through `adapter` (its errors propagate: RetryLater, NeedsReauth)."""
    reader = Reader(adapter, progress, page_size)
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

    in_month = _between(month.start, month.end)
    deposit_window = _between(month.start - DEPOSIT_WINDOW, month.end + DEPOSIT_WINDOW)
    after_end = f"TxnDate > '{month.end.isoformat()}'"
    open_by_end = f"TxnDate <= '{month.end.isoformat()}' AND Balance > '0'"
    reads = (
        ("invoice", "Invoice", in_month),
        ("payment", "Payment", in_month),
        ("refund", "RefundReceipt", in_month),
        ("deposit", "Deposit", deposit_window),
    )
    reader.expected = sum([await reader.count(remote, where) for _, remote, where in reads]) + sum(
        [await reader.count("Invoice", open_by_end), await reader.count("Payment", after_end)]
    )

    # Payouts: the deposits built from a processor's payout, to be found among QuickBooks deposits.
    payouts = {r.id: PayoutMatch(r.id, r.payout, r.day, r.amount, r.fees) for r in local["deposit"]}
    by_remote = {r.remote_id: r.id for r in local["deposit"] if r.remote_id}
    by_payout = {p.payout_id: p for p in payouts.values()}

    def align(obj: dict[str, Any]) -> None:
        match = payouts.get(by_remote.get(str(obj["Id"]), -1))
        if match is None:
            words = _tokens(obj)
            match = next((p for pid, p in by_payout.items() if pid and pid in words), None)
        if match is None or match.remote_id is not None:
            return
        match.remote_id = str(obj["Id"])
        match.qbo_date = qbo_date(obj.get("TxnDate"))
        match.qbo_amount = money(obj.get("TotalAmt"))
        match.qbo_fees = _fee_lines(obj)

    for entity, remote, where in reads:
        key = {"invoice": "revenue", "payment": "payments", "refund": "refunds", "deposit": "deposits"}[entity]
        comparison = Comparison(entity, local[entity], discrepancies)
        async for page in reader.pages_of(remote, where):
            strangers: list[dict[str, Any]] = []
            for obj in page:
                day = qbo_date(obj.get("TxnDate"))
                if entity == "deposit":
                    align(obj)
                if day not in month:
                    # A deposit from the days around the month: it matters only if it is a payout of the month's.
                    comparison.match(obj, month)
                    continue
                totals[key].books += money(obj.get("TotalAmt"))
                if not comparison.match(obj, month):
                    strangers.append(obj)
            owned = await _ledger_owners(session, conn, entity, [str(o["Id"]) for o in strangers])
            for obj in strangers:
                local_id = owned.get(str(obj["Id"]))
                if local_id is None:
                    comparison.only_in_qbo(obj)
                elif not _voided(obj):
                    discrepancies.append(await _elsewhere(session, conn, entity, local_id, obj))
        # Local records of the month whose object QuickBooks did not list in it: deleted, or dated elsewhere.
        leftovers = list(comparison.expected)
        seen: set[str] = set()
        async for obj in reader.by_ids(remote, leftovers):
            seen.add(str(obj["Id"]))
            comparison.gone(obj, str(obj["Id"]), month)
            if entity == "deposit":
                align(obj)
        for remote_id in leftovers:
            if remote_id not in seen:
                comparison.gone(None, remote_id, month)
        comparison.finish()

    # Receivables at month end in QuickBooks: open balances of invoices dated by then, plus what later
    # payments took off them.
    open_total = ZERO
    async for page in reader.pages_of("Invoice", open_by_end):
        open_total += sum((money(o.get("Balance")) for o in page), ZERO)
    later: dict[str, Decimal] = {}
    async for page in reader.pages_of("Payment", after_end):
        for payment in page:
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if link.get("TxnType") == "Invoice":
                        invoice_id = str(link.get("TxnId"))
                        later[invoice_id] = later.get(invoice_id, ZERO) + money(line.get("Amount"))
    async for invoice in reader.by_ids("Invoice", list(later)):
        day = qbo_date(invoice.get("TxnDate"))
        if day is not None and day <= month.end:
            open_total += later[str(invoice["Id"])]
    totals["receivables"].books = open_total

    matches = list(payouts.values())
    for match in matches:
        match.problems = _payout_problems(match)
    discrepancies.sort(key=lambda d: (list(REMOTE).index(d.entity), d.kind, d.local_id or 0, d.remote_id or ""))
    return Report(
        month,
        conn.account_name,
        list(totals.values()),
        discrepancies,
        sorted(matches, key=lambda m: (m.arrival_date, m.deposit_id)),
        pages=reader.pages,
        objects=reader.objects,
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
    """Open a client for the connection and build the month's report; a paused connection is NeedsReauth."""
    if conn.status != ConnectionStatus.CONNECTED:
        raise NeedsReauth(conn.sync_error or "QuickBooks is not connected. Reconnect it, then run this again.")
    async with client_for(env, conn, **(client_options or {})) as client:
        adapter = QuickBooksAdapter(conn, client, env.settings)
        return await reconcile_with(session, conn, adapter, month, progress=progress, page_size=page_size)


# ----------------------------------------------------------------------------- the terminal


def print_report(report: Report, console: Any) -> None:
    """The page's content for `fieldhub reconcile`: totals, verdict, discrepancies, payouts (Rich)."""
    from rich.table import Table

    totals = Table(title=f"{report.company or 'QuickBooks'} · {report.month.label}", title_justify="left")
    totals.add_column("")
    for name in ("fieldhub", "QuickBooks", "Difference"):
        totals.add_column(name, justify="right")
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
        for name in ("What", "Record", "fieldhub", "QuickBooks", "Why"):
            table.add_column(name, justify="right" if name in ("fieldhub", "QuickBooks") else "left")
        for d in report.discrepancies:
            table.add_row(
                d.kind_label,
                f"{ENTITY_LABELS[d.entity]} {d.label}" + (f" (QBO #{d.remote_id})" if d.remote_id else ""),
                "—" if d.fieldhub is None else format_money(d.fieldhub),
                "—" if d.books is None else format_money(d.books),
                d.detail,
            )
        console.print(table)
    if report.payouts:
        table = Table(title="Payouts ↔ bank deposits", title_justify="left")
        for name in ("Payout", "Arrived", "Amount", "Deposit", "Lines up"):
            table.add_column(name, justify="right" if name == "Amount" else "left")
        for p in report.payouts:
            deposit = f"#{p.remote_id} {p.qbo_date or ''}" if p.remote_id else "—"
            table.add_row(
                p.payout_id,
                p.arrival_date.isoformat(),
                format_money(p.net),
                deposit,
                "[green]yes[/]" if p.ok else "[red]no[/] " + " ".join(p.problems),
            )
        console.print(table)
    console.print(f"[dim]Read {report.objects:,} QuickBooks records in {report.pages} requests.[/]")
