"""The backfill after first connect: bring fieldhub and a QuickBooks company that both already have records in step.

A dry run first (`plan`) counts what would happen, changing nothing:

- **match**: the same record on both sides — customers by email (or by name when neither side has an
  email), items by name. They are linked in the ledger; nothing is sent or created.
- **create here**: QuickBooks customers and items fieldhub doesn't have; imported through the core services.
- **create in QuickBooks**: fieldhub records QuickBooks doesn't have; exported through the engine's ledger.
- **collide**: a customer whose name QuickBooks already uses for someone with a different email (or for a
  vendor or employee). Neither side is changed; the person renames one side and runs the backfill again.

`start` then does it. Imports write ledger rows already `synced` (remote id and version of the object
they came from) in the same transaction as the record, so nothing echoes back to QuickBooks. Exports
become ledger rows `pending` and the engine sends them, with its idempotency keys. Every step looks for
an existing ledger row first, so running the backfill again creates nothing new.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item
from fieldhub.core.payments.models import Deposit, Payment, PaymentStatus, Refund
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation, RecordEvent, RunStatus, SyncRun, history_body
from fieldhub.hub.sync.runs import RunCounts
from fieldhub.providers.quickbooks.sync import QuickBooksAdapter
from fieldhub.providers.quickbooks.testsync import TestSyncRefused, sync_until_settled

PAGE = 1000
SETTINGS_KEY = "backfill"
IMPORTED_ITEM_TYPES = ("Service", "NonInventory", "Inventory")
# QBO has said ISO-3 country codes since late 2025; fieldhub keeps ISO-2.
COUNTRIES = {"USA": "US", "CAN": "CA", "GBR": "GB", "AUS": "AU", "NZL": "NZ", "IRL": "IE", "MEX": "MX", "IND": "IN"}


class BackfillRefused(TestSyncRefused):
    """The backfill can't start (not connected, accounts not mapped): a message and where to fix it."""


def normalise(name: str) -> str:
    """QuickBooks compares names ignoring case and runs of spaces."""
    return re.sub(r"\s+", " ", name or "").strip().casefold()


def _email(value: str | None) -> str:
    return (value or "").strip().casefold()


def remote_email(obj: dict[str, Any]) -> str:
    return _email((obj.get("PrimaryEmailAddr") or {}).get("Address"))


@dataclass
class Collision:
    local: Customer
    remote_name: str
    remote_kind: str  # customer | vendor | employee
    remote_id: str
    remote_email: str


@dataclass
class Plan:
    customer_match: list[tuple[Customer, dict[str, Any]]] = field(default_factory=list)
    customer_import: list[dict[str, Any]] = field(default_factory=list)
    customer_export: list[Customer] = field(default_factory=list)
    customer_collide: list[Collision] = field(default_factory=list)
    customer_known: int = 0  # already in the ledger (an earlier backfill, or synced since)
    item_match: list[tuple[Item, dict[str, Any]]] = field(default_factory=list)
    item_import: list[dict[str, Any]] = field(default_factory=list)
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
    from fieldhub.hub.connections import mapping

    if conn.status != ConnectionStatus.CONNECTED:
        raise BackfillRefused("QuickBooks is not connected: reconnect it first.")
    if not mapping.mapping_complete(conn):
        raise BackfillRefused(
            "Map your chart of accounts first: exported items and invoices need their accounts.",
            mapping.mapping_link(conn),
            "Open the field mapping",
        )


async def read_all(adapter: QuickBooksAdapter, entity: str, where: str = "") -> list[dict[str, Any]]:
    """Every active object of one entity, a page of 1,000 at a time."""
    found: list[dict[str, Any]] = []
    start = 1
    while True:
        page = (await adapter.query(f"SELECT * FROM {entity}{where} STARTPOSITION {start} MAXRESULTS {PAGE}")).get(
            entity, []
        )
        found.extend(page)
        if len(page) < PAGE:
            return found
        start += PAGE


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
    async with client_for(env, conn, **dict(client_options or {})) as client:
        adapter = QuickBooksAdapter(conn, client, env.settings)
        remote_customers = await read_all(adapter, "Customer")
        others = [("vendor", o) for o in await read_all(adapter, "Vendor")]
        others += [("employee", o) for o in await read_all(adapter, "Employee")]
        remote_items = [i for i in await read_all(adapter, "Item") if i.get("Type") in IMPORTED_ITEM_TYPES]
    out = Plan()
    await _plan_customers(session, conn, out, remote_customers, others)
    await _plan_items(session, conn, out, remote_items)
    if include_transactions:
        await _plan_transactions(session, conn, out)
    return out


async def _plan_customers(
    session: AsyncSession,
    conn: Connection,
    out: Plan,
    remote: list[dict[str, Any]],
    others: list[tuple[str, dict[str, Any]]],
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
    out.customer_known = len(known_remote & {str(o["Id"]) for o in remote})
    for obj in remote:
        if str(obj["Id"]) in known_remote:
            continue
        email = remote_email(obj)
        match = by_email.get(email) if email else None
        if match is None:
            same_name = by_name.get(normalise(obj.get("DisplayName", "")))
            if same_name is not None and same_name.id not in claimed:
                if not email and not same_name.email:
                    match = same_name  # same name and neither side has an email: the same customer
                else:
                    claimed.add(same_name.id)
                    out.customer_collide.append(
                        Collision(same_name, obj.get("DisplayName", ""), "customer", str(obj["Id"]), email)
                    )
                    continue
        if match is not None and match.id not in claimed:
            claimed.add(match.id)
            out.customer_match.append((match, obj))
        else:
            out.customer_import.append(obj)
    # What is left here goes to QuickBooks, unless QuickBooks already uses its name for someone else.
    taken: dict[str, tuple[str, dict[str, Any]]] = {}
    for kind, obj in [("customer", o) for o in remote] + others:
        taken.setdefault(normalise(obj.get("DisplayName", "")), (kind, obj))
    for c in free:
        if c.id in claimed:
            continue
        holder = taken.get(normalise(c.display_name))
        if holder is not None:
            kind, obj = holder
            out.customer_collide.append(
                Collision(c, obj.get("DisplayName", ""), kind, str(obj["Id"]), remote_email(obj))
            )
        else:
            out.customer_export.append(c)


async def _plan_items(session: AsyncSession, conn: Connection, out: Plan, remote: list[dict[str, Any]]) -> None:
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
    out.item_known = len(known_remote & {str(o["Id"]) for o in remote})
    for obj in remote:
        if str(obj["Id"]) in known_remote:
            continue
        match = by_name.get(normalise(obj.get("Name", "")))
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


def customer_data(obj: dict[str, Any]) -> dict[str, Any]:
    """A QuickBooks Customer as fieldhub's customer fields."""
    data: dict[str, Any] = {
        "display_name": str(obj.get("DisplayName", "")).strip()[:200],
        "company": str(obj.get("CompanyName", ""))[:200],
        "email": str((obj.get("PrimaryEmailAddr") or {}).get("Address", "")).strip(),
        "phone": str((obj.get("PrimaryPhone") or {}).get("FreeFormNumber", ""))[:40],
    }
    for prefix, key in (("billing", "BillAddr"), ("service", "ShipAddr")):
        address = obj.get(key) or {}
        data[f"{prefix}_line1"] = str(address.get("Line1", ""))[:200]
        data[f"{prefix}_line2"] = str(address.get("Line2", ""))[:200]
        data[f"{prefix}_city"] = str(address.get("City", ""))[:100]
        data[f"{prefix}_region"] = str(address.get("CountrySubDivisionCode", ""))[:100]
        data[f"{prefix}_postal_code"] = str(address.get("PostalCode", ""))[:20]
        country = str(address.get("Country", "")).strip().upper()
        country = COUNTRIES.get(country, country)
        if len(country) == 2:
            data[f"{prefix}_country"] = country
    return data


def item_data(obj: dict[str, Any]) -> dict[str, Any]:
    try:
        price = Decimal(str(obj.get("UnitPrice", "0") or "0")).quantize(Decimal("0.01"))
    except InvalidOperation:
        price = Decimal("0.00")
    return {
        "name": str(obj.get("Name", "")).strip()[:100],
        "sku": str(obj.get("Sku", ""))[:100],
        "description": str(obj.get("Description", ""))[:4000],
        "unit_price": max(price, Decimal("0.00")),
        "kind": "service" if obj.get("Type") == "Service" else "product",
        "taxable": bool(obj.get("Taxable", False)),
    }


async def _settled_row(
    session: AsyncSession, conn: Connection, entity: str, record: Any, obj: dict[str, Any], action: str, run_id: int
) -> None:
    """Record `record` as in step with QuickBooks object `obj`: a synced ledger row, nothing to send."""
    row = await session.scalar(
        select(LedgerRow).where(
            LedgerRow.connection_id == conn.id, LedgerRow.entity == entity, LedgerRow.local_id == record.id
        )
    )
    if row is None:  # a match (no event was emitted) or a provider that doesn't export this entity
        row = LedgerRow(tenant_id=conn.tenant_id, connection_id=conn.id, entity=entity, local_id=record.id)
        session.add(row)
    version = int(getattr(record, "version", 1) or 1)
    row.remote_id = str(obj["Id"])
    row.remote_version = str(obj.get("SyncToken", "")) or None
    row.local_version = version
    row.synced_version = version
    row.state = LedgerState.SYNCED
    row.operation = Operation.UPSERT
    row.attempts = 0
    row.idempotency_key = None
    row.error_code = row.error_reason = row.error_fix = ""
    row.synced_at = utcnow()
    await session.flush()
    name = obj.get("DisplayName") or obj.get("Name") or ""
    session.add(
        RecordEvent(
            ledger_id=row.id,
            run_id=run_id,
            action=action,
            summary=f"{action} {entity} #{record.id} with QuickBooks {entity} {obj['Id']} “{name}” (backfill)",
            received=history_body({k: obj[k] for k in ("Id", "SyncToken", "DisplayName", "Name") if k in obj}),
        )
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
    """Run the backfill: link matches, import what QuickBooks has, export what fieldhub has; then Sync Now."""
    work = await plan(env, session, conn, include_transactions=include_transactions, client_options=client_options)
    result = Result(collisions=len(work.customer_collide))
    tenant = conn.tenant_id
    # What is linked and brought in here is a run of its own in the history, counted per entity; what
    # goes to QuickBooks is counted by the engine's runs that send it.
    started = time.monotonic()
    run = SyncRun(tenant_id=tenant, connection_id=conn.id, trigger="backfill", direction="import", errors=[])
    session.add(run)
    await session.flush()
    counts, notes = RunCounts(), list[dict[str, Any]]()
    for customer, obj in work.customer_match:
        await _settled_row(session, conn, "customer", customer, obj, "linked", run.id)
        counts.add("customer", "linked")
    for item, obj in work.item_match:
        await _settled_row(session, conn, "item", item, obj, "linked", run.id)
        counts.add("item", "linked")
    for entity, objects, make, data in (
        ("customer", work.customer_import, create_customer, customer_data),
        ("item", work.item_import, create_item, item_data),
    ):
        for obj in objects:
            try:  # input is checked before anything is written: a refusal leaves nothing behind
                record = await make(session, tenant, data(obj))
            except ValidationFailed as e:
                name = obj.get("DisplayName") or obj.get("Name") or ""
                result.skipped.append(f"{entity.capitalize()} “{name}” was not imported: {e}")
                counts.add(entity, "failed")
                line = {"entity": entity, "remote_id": str(obj.get("Id", "")), "code": "not_imported"}
                notes.append(line | {"reason": result.skipped[-1]})
                continue
            await _settled_row(session, conn, entity, record, obj, "imported", run.id)
            counts.add(entity, "created")
    for c in work.customer_collide:
        notes.append(
            {
                "entity": "customer",
                "local_id": c.local.id,
                "code": "collision",
                "reason": f"“{c.local.display_name}” is the name of a QuickBooks {c.remote_kind} too: left as it is.",
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
