"""The backfill after first connect: bring fieldhub and a ledger's company that both already have records in step.

A dry run first (`plan`) counts what would happen, changing nothing:

- **match**: the same record on both sides — customers by email (or by name when neither side has an
  email), items by name. They are linked in the ledger; nothing is sent or created.
- **create here**: the ledger's customers and items fieldhub doesn't have; imported through the core services.
- **create there**: fieldhub records the ledger doesn't have; exported through the engine's ledger rows.
- **collide**: a customer whose name the ledger already uses for someone with a different email (or, in
  QuickBooks, for a vendor or employee). Neither side is changed; the person renames one side and runs the
  backfill again.

`start` then does it. Imports write ledger rows already `synced` (remote id and version of the object
they came from) in the same transaction as the record, so nothing echoes back to the ledger. Exports
become ledger rows `pending` and the engine sends them, with its idempotency keys. Every step looks for
an existing ledger row first, so running the backfill again creates nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.common import Refused, require_ready, sync_until_settled
from fieldhub.capabilities.accounting.protocol import Party, Product
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item
from fieldhub.core.payments.models import Deposit, Payment, PaymentStatus, Refund
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation, RecordEvent, RunStatus, SyncRun, history_body
from fieldhub.hub.sync.runs import RunCounts

SETTINGS_KEY = "backfill"
# Column widths of fieldhub's customer and item fields: a longer value from the ledger is cut to fit.
WIDTHS = {"display_name": 200, "company": 200, "phone": 40, "name": 100, "sku": 100, "description": 4000}
WIDTHS |= {f"{p}_{k}": w for p in ("billing", "service") for k, w in (("line1", 200), ("line2", 200))}
WIDTHS |= {f"{p}_{k}": w for p in ("billing", "service") for k, w in (("city", 100), ("region", 100))}
WIDTHS |= {f"{p}_postal_code": 20 for p in ("billing", "service")}


class BackfillRefused(Refused):
    """The backfill can't start (not connected, accounts not mapped): a message and where to fix it."""


def _email(value: str | None) -> str:
    return (value or "").strip().casefold()


def _fit(fields: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """The ledger's record as fieldhub's fields for a create: these keys only, each cut to its column."""
    out = {k: v for k, v in fields.items() if k in keep}
    for key, width in WIDTHS.items():
        if isinstance(out.get(key), str):
            out[key] = out[key][:width]
    return out


CUSTOMER_FIELDS = (
    "display_name",
    "company",
    "email",
    "phone",
    *(
        f"{p}_{k}"
        for p in ("billing", "service")
        for k in ("line1", "line2", "city", "region", "postal_code", "country")
    ),
)
ITEM_FIELDS = ("name", "sku", "description", "unit_price", "kind", "taxable")


@dataclass
class Collision:
    local: Customer
    remote_name: str
    remote_kind: str  # customer | vendor | employee
    remote_id: str
    remote_email: str


@dataclass
class Plan:
    books_name: str = "the ledger"
    customer_match: list[tuple[Customer, Party]] = field(default_factory=list)
    customer_import: list[Party] = field(default_factory=list)
    customer_export: list[Customer] = field(default_factory=list)
    customer_collide: list[Collision] = field(default_factory=list)
    customer_known: int = 0  # already in the ledger (an earlier backfill, or synced since)
    item_match: list[tuple[Item, Product]] = field(default_factory=list)
    item_import: list[Product] = field(default_factory=list)
    item_export: list[Item] = field(default_factory=list)
    item_known: int = 0
    invoice_export: list[int] = field(default_factory=list)
    payment_export: list[int] = field(default_factory=list)
    refund_export: list[int] = field(default_factory=list)
    deposit_export: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "customers": {
                "match": len(self.customer_match),
                "create_here": len(self.customer_import),
                "create_in_qbo": len(self.customer_export),
                "collide": len(self.customer_collide),
                "already_linked": self.customer_known,
            },
            "items": {
                "match": len(self.item_match),
                "create_here": len(self.item_import),
                "create_in_qbo": len(self.item_export),
                "collide": 0,
                "already_linked": self.item_known,
            },
            "invoices": {"create_in_qbo": len(self.invoice_export)},
            "payments": {"create_in_qbo": len(self.payment_export)},
            "refunds": {"create_in_qbo": len(self.refund_export)},
            "deposits": {"create_in_qbo": len(self.deposit_export)},
        }

    def transactions(self) -> list[tuple[str, Any, list[int]]]:
        """The existing money records to send, in the engine's order: (entity, model, ids)."""
        return [
            ("invoice", Invoice, self.invoice_export),
            ("payment", Payment, self.payment_export),
            ("refund", Refund, self.refund_export),
            ("deposit", Deposit, self.deposit_export),
        ]

    @property
    def nothing_to_do(self) -> bool:
        return not any(
            (
                self.customer_match,
                self.customer_import,
                self.customer_export,
                self.item_match,
                self.item_import,
                self.item_export,
                self.invoice_export,
                self.payment_export,
                self.refund_export,
                self.deposit_export,
            )
        )


@dataclass
class Result:
    linked: int = 0
    imported: int = 0
    queued: int = 0
    exported: int = 0
    failed: int = 0
    skipped: list[str] = field(default_factory=list)
    collisions: int = 0


def _check(conn: Connection) -> None:
    try:
        require_ready(conn, "first", "exported items and invoices need their accounts.")
    except Refused as e:
        raise BackfillRefused(e.message, e.link, e.link_text) from None


async def _ledger(session: AsyncSession, conn: Connection, entity: str) -> tuple[set[int], set[str]]:
    rows = (
        await session.execute(
            select(LedgerRow.local_id, LedgerRow.remote_id).where(
                LedgerRow.connection_id == conn.id, LedgerRow.entity == entity
            )
        )
    ).all()
    return {r[0] for r in rows}, {r[1] for r in rows if r[1]}


async def plan(
    env: OAuthEnv,
    session: AsyncSession,
    conn: Connection,
    *,
    include_transactions: bool = False,
    client_options: dict[str, Any] | None = None,
) -> Plan:
    """The dry run: reads both sides, changes nothing."""
    _check(conn)
    async with ledgers.open_for(env, conn, **dict(client_options or {})) as ledger:
        parties = await ledger.parties(others=True)
        remote_items = [i for i in await ledger.products() if i.importable]
        out = Plan(books_name=ledger.name)
        normalise = ledger.normalise
    remote_customers = [p for p in parties if p.kind == "customer"]
    others = [p for p in parties if p.kind != "customer"]
    await _plan_customers(session, conn, out, remote_customers, others, normalise)
    await _plan_items(session, conn, out, remote_items, normalise)
    if include_transactions:
        await _plan_transactions(session, conn, out)
    return out


async def _plan_customers(
    session: AsyncSession,
    conn: Connection,
    out: Plan,
    remote: list[Party],
    others: list[Party],
    normalise: Callable[[str], str],
) -> None:
    known_local, known_remote = await _ledger(session, conn, "customer")
    local = list(
        await session.scalars(
            select(Customer)
            .where(Customer.tenant_id == conn.tenant_id, Customer.active.is_(True))
            .order_by(Customer.id)
        )
    )
    free = [c for c in local if c.id not in known_local]
    by_email: dict[str, Customer] = {}
    by_name: dict[str, Customer] = {}
    for c in free:
        if c.email:
            by_email.setdefault(_email(c.email), c)
        by_name.setdefault(normalise(c.display_name), c)
    claimed: set[int] = set()
    out.customer_known = len(known_remote & {o.remote_id for o in remote})
    for obj in remote:
        if obj.remote_id in known_remote:
            continue
        email = _email(obj.email)
        match = by_email.get(email) if email else None
        if match is None:
            same_name = by_name.get(normalise(obj.name))
            if same_name is not None and same_name.id not in claimed:
                if not email and not same_name.email:
                    match = same_name  # same name and neither side has an email: the same customer
                else:
                    claimed.add(same_name.id)
                    out.customer_collide.append(Collision(same_name, obj.name, "customer", obj.remote_id, email))
                    continue
        if match is not None and match.id not in claimed:
            claimed.add(match.id)
            out.customer_match.append((match, obj))
        else:
            out.customer_import.append(obj)
    # What is left here goes to the ledger, unless it already uses its name for someone else.
    taken: dict[str, Party] = {}
    for obj in remote + others:
        taken.setdefault(normalise(obj.name), obj)
    for c in free:
        if c.id in claimed:
            continue
        holder = taken.get(normalise(c.display_name))
        if holder is not None:
            out.customer_collide.append(Collision(c, holder.name, holder.kind, holder.remote_id, _email(holder.email)))
        else:
            out.customer_export.append(c)


async def _plan_items(
    session: AsyncSession, conn: Connection, out: Plan, remote: list[Product], normalise: Callable[[str], str]
) -> None:
    known_local, known_remote = await _ledger(session, conn, "item")
    local = list(
        await session.scalars(
            select(Item).where(Item.tenant_id == conn.tenant_id, Item.active.is_(True)).order_by(Item.id)
        )
    )
    by_name: dict[str, Item] = {}
    for i in local:
        if i.id not in known_local:
            by_name.setdefault(normalise(i.name), i)
    claimed: set[int] = set()
    out.item_known = len(known_remote & {o.remote_id for o in remote})
    for obj in remote:
        if obj.remote_id in known_remote:
            continue
        match = by_name.get(normalise(obj.name))
        if match is not None and match.id not in claimed:
            claimed.add(match.id)
            out.item_match.append((match, obj))
        else:
            out.item_import.append(obj)
    out.item_export = [i for i in local if i.id not in known_local and i.id not in claimed]


async def _plan_transactions(session: AsyncSession, conn: Connection, out: Plan) -> None:
    known_invoices, _ = await _ledger(session, conn, "invoice")
    known_payments, _ = await _ledger(session, conn, "payment")
    invoices = await session.scalars(
        select(Invoice.id)
        .where(
            Invoice.tenant_id == conn.tenant_id,
            Invoice.status.not_in((InvoiceStatus.DRAFT, InvoiceStatus.VOID)),
        )
        .order_by(Invoice.id)
    )
    out.invoice_export = [i for i in invoices if i not in known_invoices]
    payments = await session.scalars(
        select(Payment.id)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(
            Payment.tenant_id == conn.tenant_id,
            Payment.status == PaymentStatus.SUCCEEDED,
            Invoice.status != InvoiceStatus.VOID,
        )
        .order_by(Payment.id)
    )
    out.payment_export = [p for p in payments if p not in known_payments]
    # Every existing record the books count goes, as real-time sync would have sent it: refunds of payments that
    # count (a pending or failed payment has none), and processor payouts recorded as bank deposits.
    known_refunds, _ = await _ledger(session, conn, "refund")
    refunds = await session.scalars(
        select(Refund.id)
        .join(Payment, Payment.id == Refund.payment_id)
        .join(Invoice, Invoice.id == Refund.invoice_id)
        .where(
            Refund.tenant_id == conn.tenant_id,
            Payment.status == PaymentStatus.SUCCEEDED,
            Invoice.status != InvoiceStatus.VOID,
        )
        .order_by(Refund.id)
    )
    out.refund_export = [r for r in refunds if r not in known_refunds]
    known_deposits, _ = await _ledger(session, conn, "deposit")
    deposits = await session.scalars(select(Deposit.id).where(Deposit.tenant_id == conn.tenant_id).order_by(Deposit.id))
    out.deposit_export = [d for d in deposits if d not in known_deposits]


# ----------------------------------------------------------------------------- start


async def _settled_row(
    session: AsyncSession,
    conn: Connection,
    entity: str,
    record: Any,
    obj: Party | Product,
    action: str,
    run_id: int,
    books_name: str,
) -> None:
    """Record `record` as in step with the ledger's object `obj`: a synced ledger row, nothing to send."""
    row = await session.scalar(
        select(LedgerRow).where(
            LedgerRow.connection_id == conn.id, LedgerRow.entity == entity, LedgerRow.local_id == record.id
        )
    )
    if row is None:  # a match (no event was emitted) or a provider that doesn't export this entity
        row = LedgerRow(tenant_id=conn.tenant_id, connection_id=conn.id, entity=entity, local_id=record.id)
        session.add(row)
    version = int(getattr(record, "version", 1) or 1)
    row.remote_id = obj.remote_id
    row.remote_version = obj.version or None
    row.local_version = version
    row.synced_version = version
    row.state = LedgerState.SYNCED
    row.operation = Operation.UPSERT
    row.attempts = 0
    row.idempotency_key = None
    row.error_code = row.error_reason = row.error_fix = ""
    row.synced_at = utcnow()
    await session.flush()
    summary = f"{action} {entity} #{record.id} with {books_name} {entity} {obj.remote_id} “{obj.name}” (backfill)"
    received = {"Id": obj.remote_id, "Version": obj.version, "Name": obj.name}
    session.add(
        RecordEvent(ledger_id=row.id, run_id=run_id, action=action, summary=summary, received=history_body(received))
    )


async def _queue(session: AsyncSession, conn: Connection, entity: str, records: list[Any]) -> int:
    """Ledger rows `pending` for the engine to export (rows that exist are left to the engine as they are)."""
    queued = 0
    now = utcnow()
    for record in records:
        exists = await session.scalar(
            select(LedgerRow.id).where(
                LedgerRow.connection_id == conn.id, LedgerRow.entity == entity, LedgerRow.local_id == record.id
            )
        )
        if exists is not None:
            continue
        session.add(
            LedgerRow(
                tenant_id=conn.tenant_id,
                connection_id=conn.id,
                entity=entity,
                local_id=record.id,
                local_version=int(getattr(record, "version", 1) or 1),
                state=LedgerState.PENDING,
                operation=Operation.UPSERT,
                next_attempt_at=now,
            )
        )
        queued += 1
    await session.flush()
    return queued


async def start(
    env: OAuthEnv,
    session: AsyncSession,
    conn: Connection,
    *,
    include_transactions: bool = False,
    client_options: dict[str, Any] | None = None,
) -> Result:
    """Run the backfill: link matches, import what the ledger has, export what fieldhub has; then Sync Now."""
    work = await plan(env, session, conn, include_transactions=include_transactions, client_options=client_options)
    result = Result(collisions=len(work.customer_collide))
    tenant = conn.tenant_id
    # What is linked and brought in here is a run of its own in the history, counted per entity; what
    # goes to the ledger is counted by the engine's runs that send it.
    started = time.monotonic()
    run = SyncRun(tenant_id=tenant, connection_id=conn.id, trigger="backfill", direction="import", errors=[])
    session.add(run)
    await session.flush()
    counts, notes = RunCounts(), list[dict[str, Any]]()
    for customer, obj in work.customer_match:
        await _settled_row(session, conn, "customer", customer, obj, "linked", run.id, work.books_name)
        counts.add("customer", "linked")
    for item, product in work.item_match:
        await _settled_row(session, conn, "item", item, product, "linked", run.id, work.books_name)
        counts.add("item", "linked")
    imports: tuple[tuple[str, list[Any], Any, tuple[str, ...]], ...] = (
        ("customer", work.customer_import, create_customer, CUSTOMER_FIELDS),
        ("item", work.item_import, create_item, ITEM_FIELDS),
    )
    for entity, objects, make, keep in imports:
        for obj in objects:
            try:  # input is checked before anything is written: a refusal leaves nothing behind
                record = await make(session, tenant, _fit(obj.fields, keep))
            except ValidationFailed as e:
                result.skipped.append(f"{entity.capitalize()} “{obj.name}” was not imported: {e}")
                counts.add(entity, "failed")
                line = {"entity": entity, "remote_id": obj.remote_id, "code": "not_imported"}
                notes.append(line | {"reason": result.skipped[-1]})
                continue
            await _settled_row(session, conn, entity, record, obj, "imported", run.id, work.books_name)
            counts.add(entity, "created")
    for c in work.customer_collide:
        notes.append(
            {
                "entity": "customer",
                "local_id": c.local.id,
                "code": "collision",
                "reason": f"“{c.local.display_name}” is the name of a {work.books_name} {c.remote_kind} too: "
                "left as it is.",
                "fix": "Rename one side, then run the backfill again.",
            }
        )
    result.linked, result.imported = counts.total("linked"), counts.created
    if counts.entities or notes:
        counts.write(session, run)
        landed = counts.changed + result.linked
        run.status = RunStatus.SUCCESS if not counts.failed else RunStatus.PARTIAL if landed else RunStatus.FAILED
        run.errors = notes[:200]
        run.finished_at = utcnow()
        run.duration_ms = int((time.monotonic() - started) * 1000)
    else:
        await session.delete(run)  # nothing linked or brought in: no run to show
    result.queued += await _queue(session, conn, "customer", work.customer_export)
    result.queued += await _queue(session, conn, "item", work.item_export)
    if include_transactions:
        for entity, model, ids in work.transactions():
            records = list(await session.scalars(select(model).where(model.id.in_(ids))))
            result.queued += await _queue(session, conn, entity, records)
    keys = [("customer", c.id) for c in work.customer_export] + [("item", i.id) for i in work.item_export]
    if include_transactions:
        keys += [(entity, i) for entity, _, ids in work.transactions() for i in ids]
    conn.settings = {
        **(conn.settings or {}),
        SETTINGS_KEY: {"done_at": utcnow().isoformat(), "counts": work.counts()},
    }
    connection_id = conn.id
    await session.commit()
    if keys:
        rows = await sync_until_settled(
            env, session, connection_id, keys, client_options=client_options, trigger="backfill"
        )
        result.exported = sum(1 for r in rows.values() if r.state == LedgerState.SYNCED)
        result.failed = sum(1 for r in rows.values() if r.state == LedgerState.FAILED)
    return result
