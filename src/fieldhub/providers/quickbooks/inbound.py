"""QuickBooks inbound: changes made in QuickBooks, from webhooks and the CDC catch-up, applied through one function.

`Inbound.apply(entity, id, obj)` is the one path: the webhook handler reads each notified object and
calls it; `poll` (a periodic task, and right after a reconnect) reads Change Data Capture from the
connection's stored cursor and calls it for every object. What each entity does here:

- Payment made in QuickBooks against an invoice that came from here: recorded here with core
  `record_payment` (the invoice becomes PAID or PARTIALLY_PAID). Its ledger row is written already
  synced with the QBO Payment id, and the invoice's row stays in step, so nothing goes back (no echo).
  A payment fieldhub sent itself (marker in PrivateNote, or a ledger row with its id) is never imported.
  Voided or deleted in QuickBooks: the local payment is voided (core `void_payment`), the invoice reopens.
- Invoice voided or deleted in QuickBooks: voided here (core `void_invoice`); refused, logged as a
  conflict and the owner told when payments are recorded on it here. Other invoice edits made there are
  not brought back (fieldhub owns its invoices; its next change overwrites them).
- Customer, two-way: newest edit wins (QBO MetaData.LastUpdatedTime against our updated_at); the losing
  side is logged as a `conflict` in the record's sync history. A customer created in QuickBooks is
  linked to a local customer of the same name, else created here. One-way: edits and new customers in
  QuickBooks are ignored, and logged.

Applying is idempotent — the ledger's remote id and SyncToken say what is already applied — so a
webhook redelivered, and CDC re-reading what a webhook already brought, change nothing. Echoes of
fieldhub's own writes are not even read: a notice whose time (or a CDC object whose SyncToken) is what the
ledger wrote is dropped before any request (hub/sync/echoes.py). Every pass that
changes (or fails to change) something writes an import run to the sync history.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers import service as customers
from fieldhub.core.customers.models import Customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.money import format_money
from fieldhub.core.payments.models import Payment, PaymentMethod, PaymentStatus
from fieldhub.db import utcnow
from fieldhub.hub.connections import mapping as setup
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import Rejected
from fieldhub.hub.notify import notify
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.processes import PROCESS
from fieldhub.hub.sync import echoes
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.engine import (
    LEASE_SECONDS,
    LeaseHeld,
    LeaseKeeper,
    acquire_lease,
    close_interrupted_runs,
    release_lease,
)
from fieldhub.hub.sync.models import (
    LedgerRow,
    LedgerState,
    Operation,
    RecordEvent,
    RunStatus,
    SyncCursor,
    SyncLease,
    SyncRun,
    history_body,
)
from fieldhub.hub.sync.runs import RunCounts
from fieldhub.hub.webhooks.inbox import Deferred, connection_for
from fieldhub.hub.webhooks.models import RemoteLink
from fieldhub.log import get_logger
from fieldhub.providers.quickbooks import mapping
from fieldhub.providers.quickbooks.sync import QuickBooksAdapter

log = get_logger(__name__)
WEBHOOK_LEASE_WAIT = 10.0  # seconds a webhook waits for a running sync before leaving the event to the sweep
# How long a notice that may echo an unconfirmed create of ours is put off before it is read anyway.
DEFER_FOR = timedelta(minutes=10)
KEY = "quickbooks"
CURSOR = "cdc"
ENTITIES = ("Customer", "Invoice", "Payment")  # CDC order; also what webhooks act on
# The records brought in (fieldhub check): customers both ways, payments made in QuickBooks. An invoice voided
# there is applied here too, but invoices are fieldhub's own: other edits to them are not brought back.
IMPORTS = ("customer", "payment")
LOCAL = {"Customer": "customer", "Invoice": "invoice", "Payment": "payment"}
LOOKBACK = timedelta(days=30)  # QBO refuses an older changedSince
MARGIN = timedelta(hours=1)  # start the full re-read a little before QBO would refuse
OVERLAP = timedelta(seconds=2)  # the next window starts a little early: re-reading is harmless, skipping is not
CDC_MAX = 1000  # objects in one CDC reply, across entities: a full reply is not a safe checkpoint
MAX_ROUNDS = 50
PAGE = 1000
PACIFIC_OFFSET = "-08:00"


# ----------------------------------------------------------------------------- small readers


def parse_qbo_time(value: Any) -> datetime | None:
    """`2026-11-21T12:00:00-08:00`, `…-0800` (classic webhooks), `…Z`, with or without fractions; aware UTC."""
    text = str(value or "").strip()
    if not text:
        return None
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text).replace("Z", "+00:00")
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # CloudEvents time has nanoseconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.fromisoformat("2000-01-01T00:00:00" + PACIFIC_OFFSET).tzinfo)
    return moment.astimezone(UTC)


def qbo_since(moment: datetime) -> str:
    """changedSince in UTC with an explicit offset (QBO reads a bare time as Pacific)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _updated_at(obj: dict[str, Any]) -> datetime | None:
    return parse_qbo_time((obj.get("MetaData") or {}).get("LastUpdatedTime"))


def is_void(obj: dict[str, Any]) -> bool:
    """QBO keeps a voided transaction with zero amounts; "Voided" is in its PrivateNote (anchors §3.10)."""
    if str(obj.get("TxnStatus", "")).lower() == "voided":
        return True
    note = str(obj.get("PrivateNote") or "")
    return note.startswith("Voided") and _decimal(obj.get("TotalAmt")) == 0


def is_deleted(obj: dict[str, Any] | None) -> bool:
    return obj is None or str(obj.get("status", "")).lower() == "deleted"


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value is not None else "0"))
    except InvalidOperation:
        return Decimal(0)


def _country(value: Any, current: str) -> str:
    text = str(value or "").strip().upper()
    if len(text) == 2 and text.isalpha():
        return text
    return {"USA": "US", "UNITED STATES": "US", "CANADA": "CA", "CAN": "CA"}.get(text, current)


def customer_fields(obj: dict[str, Any], customer: Customer | None) -> dict[str, Any]:
    """The fields fieldhub sends for a customer, read back from a QBO Customer (absent means blank)."""

    def address(key: str, prefix: str) -> dict[str, Any]:
        addr = obj.get(key) or {}
        country = getattr(customer, f"{prefix}_country", "US") if customer else "US"
        return {
            f"{prefix}_line1": str(addr.get("Line1") or ""),
            f"{prefix}_line2": str(addr.get("Line2") or ""),
            f"{prefix}_city": str(addr.get("City") or ""),
            f"{prefix}_region": str(addr.get("CountrySubDivisionCode") or ""),
            f"{prefix}_postal_code": str(addr.get("PostalCode") or ""),
            f"{prefix}_country": _country(addr.get("Country"), country),
        }

    return {
        "display_name": str(obj.get("DisplayName") or "").strip(),
        "company": str(obj.get("CompanyName") or ""),
        "email": str((obj.get("PrimaryEmailAddr") or {}).get("Address") or ""),
        "phone": str((obj.get("PrimaryPhone") or {}).get("FreeFormNumber") or ""),
        **address("BillAddr", "billing"),
        **address("ShipAddr", "service"),
        "active": obj.get("Active", True) not in (False, "false"),
    }


def _method(obj: dict[str, Any]) -> PaymentMethod:
    name = str((obj.get("PaymentMethodRef") or {}).get("name") or "").lower()
    if "cash" in name:
        return PaymentMethod.CASH
    if any(word in name for word in ("visa", "master", "amex", "american", "discover", "card")):
        return PaymentMethod.CARD
    if any(word in name for word in ("ach", "bank", "transfer", "eft")):
        return PaymentMethod.ACH
    return PaymentMethod.CHECK  # what a bookkeeper records by hand most often


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


# ----------------------------------------------------------------------------- applying


@dataclass
class Inbound:
    """Applies QuickBooks objects to one connection's records inside the caller's transaction, with history."""

    session: AsyncSession
    connection: Connection
    trigger: str
    run: SyncRun | None = None
    counts: RunCounts = field(default_factory=RunCounts)  # per local entity: each entity card counts its own
    errors: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def tenant_id(self) -> int:
        return self.connection.tenant_id

    @property
    def two_way(self) -> bool:
        return setup.customer_direction(self.connection) == setup.TWO_WAY

    # --- history --------------------------------------------------------------------------------
    async def _run(self) -> SyncRun:
        if self.run is None:
            await close_interrupted_runs(self.session, self.connection.id)  # under the lease, as every run
            self.run = SyncRun(
                tenant_id=self.tenant_id,
                connection_id=self.connection.id,
                trigger=self.trigger,
                direction="import",
                entity="",
                status=RunStatus.RUNNING,
                errors=[],
            )
            self.session.add(self.run)
            await self.session.flush()
        return self.run

    async def event(self, row: LedgerRow, action: str, summary: str, received: Any = None) -> None:
        run = await self._run()
        self.session.add(
            RecordEvent(
                ledger_id=row.id,
                run_id=run.id,
                action=action,
                summary=summary[:2000],
                received=history_body(received),
            )
        )

    async def note(self, entity: str, remote_id: str, code: str, reason: str, fix: str = "") -> None:
        """A run-level line for what has no ledger row (a customer created in QuickBooks under one-way sync)."""
        await self._run()
        self.errors.append(
            {
                "entity": LOCAL.get(entity, entity.lower()),
                "remote_id": remote_id,
                "code": code,
                "reason": reason,
                "fix": fix,
            }
        )

    async def fail(self, row: LedgerRow | None, entity: str, remote_id: str, reason: str, fix: str) -> None:
        self.counts.add(LOCAL.get(entity, entity.lower()), "failed")
        if row is not None:
            await self.event(row, "conflict", f"{reason} {fix}".strip())
        await self.note(entity, remote_id, "conflict", reason, fix)

    async def refuse(
        self, row: LedgerRow | None, entity: str, remote_id: str, reason: str, fix: str, *, alert: tuple[str, str, str]
    ) -> None:
        """A change made in QuickBooks that can't be applied here: failed in the run and the record's history,
        and the owner told (`alert`: title, body, link of a "sync.conflict" notification)."""
        await self.fail(row, entity, remote_id, reason, fix)
        title, body, link = alert
        await notify(self.session, self.tenant_id, "sync.conflict", title, body, link=link)

    def tally(self) -> SyncRun | None:
        """The run row's counts and errors brought up to date (it stays running); the caller commits."""
        run = self.run
        if run is None:
            return None
        self.counts.write(self.session, run)
        run.errors = list(self.errors)[:200]
        return run

    def finish(self) -> SyncRun | None:
        """Fill in the run row (if anything happened); the caller commits."""
        run = self.tally()
        if run is None:
            return None
        changed, failed = self.counts.changed, self.counts.failed
        run.status = RunStatus.SUCCESS if not failed else RunStatus.PARTIAL if changed else RunStatus.FAILED
        run.finished_at = utcnow()
        run.duration_ms = int((time.monotonic() - self.started) * 1000)
        return run

    # --- the ledger -----------------------------------------------------------------------------
    async def _row(self, entity: str, *, local_id: int | None = None, remote_id: str | None = None) -> LedgerRow | None:
        stmt = select(LedgerRow).where(LedgerRow.connection_id == self.connection.id, LedgerRow.entity == entity)
        stmt = stmt.where(LedgerRow.local_id == local_id) if local_id is not None else stmt
        stmt = stmt.where(LedgerRow.remote_id == remote_id) if remote_id is not None else stmt
        return (await self.session.scalars(stmt.order_by(LedgerRow.id).limit(1))).first()

    async def _rows(self, entity: str, remote_id: str) -> list[LedgerRow]:
        return list(
            await self.session.scalars(
                select(LedgerRow)
                .where(
                    LedgerRow.connection_id == self.connection.id,
                    LedgerRow.entity == entity,
                    LedgerRow.remote_id == remote_id,
                )
                .order_by(LedgerRow.id)
            )
        )

    async def in_step(
        self, entity: str, local_id: int, version: int, remote_id: str | None, remote_version: str | None
    ) -> LedgerRow:
        """The record as it is now IS what QuickBooks has: synced, nothing to send (this is what stops the echo)."""
        row = await self._row(entity, local_id=local_id)
        if row is None:
            row = LedgerRow(
                tenant_id=self.tenant_id,
                connection_id=self.connection.id,
                entity=entity,
                local_id=local_id,
                local_version=version,
            )
            self.session.add(row)
        row.remote_id = remote_id or row.remote_id
        if remote_version:
            row.remote_version = remote_version
        row.local_version = max(row.local_version or 0, version)
        row.synced_version = row.local_version
        row.state = LedgerState.SYNCED
        row.operation = Operation.UPSERT if row.operation is None else row.operation
        row.attempts = 0
        row.idempotency_key = None
        row.sent_at = None
        row.error_code = row.error_reason = row.error_fix = ""
        row.synced_at = utcnow()
        await self.session.flush()
        return row

    @staticmethod
    def _was_in_step(row: LedgerRow | None) -> bool:
        return row is not None and row.state == LedgerState.SYNCED and row.synced_version >= row.local_version

    # --- the one entry point --------------------------------------------------------------------
    async def apply(self, entity: str, remote_id: str, obj: dict[str, Any] | None) -> bool:
        """Apply one QuickBooks object (None or a `status: Deleted` stub: gone there). True if anything changed."""
        name = next((e for e in ENTITIES if e.lower() == entity.lower()), None)
        if name is None:
            return False
        if is_deleted(obj):
            obj = None
        # What a rolled-back savepoint takes with it: a run row first added inside it, and its counts.
        run, counts, noted = self.run, self.counts.snapshot(), len(self.errors)
        try:
            async with self.session.begin_nested():
                if name == "Payment":
                    return await self._payment(remote_id, obj)
                if name == "Invoice":
                    return await self._invoice(remote_id, obj)
                return await self._customer(remote_id, obj)
        except (ValidationFailed, NotFound, IntegrityError) as e:
            self.run = run
            self.counts.restore(counts)
            del self.errors[noted:]
            # One record that can't be applied must not stop the others; it is in the run's errors.
            reason = "; ".join(e.errors.values()) if isinstance(e, ValidationFailed) else str(e)
            await self.fail(
                None, name, remote_id, f"{name} {remote_id} from QuickBooks could not be applied: {reason}", ""
            )
            return False

    # --- payments -------------------------------------------------------------------------------
    async def _payment(self, remote_id: str, obj: dict[str, Any] | None) -> bool:
        rows = await self._rows("payment", remote_id)
        if obj is None or is_void(obj):
            gone = "deleted" if obj is None else "voided"
            changed = False
            for row in rows:
                changed |= await self._void_payment(row, remote_id, gone, obj)
            return changed
        if rows:
            return False  # ours (sent from here) or already brought in; amounts edited there are not brought back
        if str(obj.get("PrivateNote") or "").startswith(f"{mapping.MARKER} payment #"):
            return False  # fieldhub sent it and has not yet heard back: the engine settles it, never a second one
        changed = False
        for line in obj.get("Line") or []:
            for linked in line.get("LinkedTxn") or []:
                if str(linked.get("TxnType")) != "Invoice":
                    continue
                changed |= await self._import_payment(
                    remote_id, obj, str(linked.get("TxnId")), _decimal(line.get("Amount"))
                )
        return changed

    async def _import_payment(self, remote_id: str, obj: dict[str, Any], invoice_remote: str, amount: Decimal) -> bool:
        invoice_row = await self._row("invoice", remote_id=invoice_remote)
        if invoice_row is None or amount <= 0:
            return False  # an invoice made in QuickBooks, not here: nothing of ours to mark paid
        realm = self.connection.account_id
        link_id = f"{realm}:{remote_id}:{invoice_remote}"
        existing = await self.session.scalar(
            select(RemoteLink.id).where(
                RemoteLink.provider == KEY, RemoteLink.kind == "Payment", RemoteLink.remote_id == link_id
            )
        )
        if existing is not None:
            return False
        invoice = await self.session.get(Invoice, invoice_row.local_id)
        if invoice is None or invoice.tenant_id != self.tenant_id:
            return False
        invoice_in_step = self._was_in_step(invoice_row)
        values = {
            "amount": amount,
            "received_on": _day(obj.get("TxnDate")),
            "method": _method(obj),
            "reference": str(obj.get("PaymentRefNum") or f"QuickBooks payment {remote_id}")[:100],
            "notes": f"Recorded in QuickBooks (Payment {remote_id}).",
        }
        try:
            payment = await invoices.record_payment(self.session, self.tenant_id, invoice.id, values)
        except ValidationFailed as e:
            reason = "; ".join(e.errors.values())
            await self.refuse(
                invoice_row,
                "Payment",
                remote_id,
                f"A {format_money(amount)} payment for {invoice.number} made in QuickBooks was not applied: {reason}",
                "Check the invoice and the payment in QuickBooks.",
                alert=(
                    f"A QuickBooks payment for {invoice.number} was not applied",
                    f"{format_money(amount)} was recorded in QuickBooks, but {reason}",
                    f"/invoices/{invoice.id}",
                ),
            )
            return False
        row = await self.in_step("payment", payment.id, payment.version, remote_id, str(obj.get("SyncToken") or ""))
        if invoice_in_step:
            await self.in_step("invoice", invoice.id, invoice.version, invoice_row.remote_id, None)
        self.session.add(
            RemoteLink(
                tenant_id=self.tenant_id,
                provider=KEY,
                kind="Payment",
                remote_id=link_id,
                local_entity="payment",
                local_id=payment.id,
            )
        )
        await self.session.flush()
        await self.event(
            row,
            "imported",
            f"Payment of {format_money(amount)} on {invoice.number} recorded in QuickBooks (Payment {remote_id})",
            obj,
        )
        self.counts.add("payment", "created")
        return True

    async def _void_payment(self, row: LedgerRow, remote_id: str, gone: str, obj: dict[str, Any] | None) -> bool:
        payment = await self.session.get(Payment, row.local_id)
        if payment is None or payment.tenant_id != self.tenant_id or payment.status == PaymentStatus.VOIDED:
            return False
        invoice_row = await self._row("invoice", local_id=payment.invoice_id)
        invoice_in_step = self._was_in_step(invoice_row)
        try:
            await invoices.void_payment(
                self.session, self.tenant_id, payment.id, f"{gone.title()} in QuickBooks (Payment {remote_id})."
            )
        except ValidationFailed as e:
            reason = "; ".join(e.errors.values())
            await self.refuse(
                row,
                "Payment",
                remote_id,
                f"The payment was {gone} in QuickBooks but not here: {reason}",
                "",
                alert=(
                    f"A payment {gone} in QuickBooks is still recorded here",
                    f"{format_money(payment.amount)}: {reason}",
                    f"/invoices/{payment.invoice_id}",
                ),
            )
            return False
        version = str(obj.get("SyncToken") or "") if obj else None
        await self.in_step("payment", payment.id, payment.version, row.remote_id, version)
        if invoice_in_step and invoice_row is not None:
            invoice = await self.session.get(Invoice, payment.invoice_id)
            assert invoice is not None
            await self.in_step("invoice", invoice.id, invoice.version, invoice_row.remote_id, None)
        await self.event(row, gone, f"Payment {remote_id} was {gone} in QuickBooks: voided here", obj)
        self.counts.add("payment", "deleted")
        return True

    # --- invoices -------------------------------------------------------------------------------
    async def _invoice(self, remote_id: str, obj: dict[str, Any] | None) -> bool:
        row = await self._row("invoice", remote_id=remote_id)
        if row is None:
            return False  # made in QuickBooks: invoices come from here only
        if obj is not None and not is_void(obj):
            return False  # payments arrive as Payments; other edits there are not brought back
        gone = "deleted" if obj is None else "voided"
        invoice = await self.session.get(Invoice, row.local_id)
        if invoice is None or invoice.tenant_id != self.tenant_id:
            return False
        version = str(obj.get("SyncToken") or "") if obj else None
        if invoice.status == InvoiceStatus.VOID:
            if row.state != LedgerState.SYNCED:  # voided on both sides at once: nothing left to send
                await self.in_step("invoice", invoice.id, invoice.version, row.remote_id, version)
                return True
            return False
        try:
            await invoices.void_invoice(self.session, self.tenant_id, invoice.id)
        except ValidationFailed as e:
            reason = "; ".join(e.errors.values())
            await self.refuse(
                row,
                "Invoice",
                remote_id,
                f"{invoice.number} was {gone} in QuickBooks but stays open here: {reason}",
                "Refund or void its payments here, then void the invoice.",
                alert=(
                    f"{invoice.number} was {gone} in QuickBooks",
                    f"It has payments recorded here, so it was not voided: {reason}",
                    f"/invoices/{invoice.id}",
                ),
            )
            return False
        await self.in_step("invoice", invoice.id, invoice.version, row.remote_id, version)
        await self.event(row, gone, f"{invoice.number} was {gone} in QuickBooks: voided here", obj)
        self.counts.add("invoice", "deleted")
        return True

    # --- customers ------------------------------------------------------------------------------
    async def _customer(self, remote_id: str, obj: dict[str, Any] | None) -> bool:
        row = await self._row("customer", remote_id=remote_id)
        if obj is None:
            return await self._customer_gone(row, remote_id)
        token = str(obj.get("SyncToken") or "")
        if row is not None and not _newer_token(token, row.remote_version):
            return False  # what we sent, what we already applied, or an older copy read before a newer one
        if not self.two_way:
            if row is None:
                await self.note(
                    "Customer",
                    remote_id,
                    "ignored",
                    f"“{obj.get('DisplayName', '')}” is a customer made in QuickBooks; one-way sync does not "
                    "bring it here.",
                )
                return False
            row.remote_version = token  # one-way: our next change overwrites theirs; no stale SyncToken on the way
            await self.event(
                row,
                "ignored",
                "Edited in QuickBooks; one-way sync keeps fieldhub's version (sent again with the next change here).",
                obj,
            )
            return True
        if row is None:
            return await self._customer_new(remote_id, obj)
        customer = await self.session.get(Customer, row.local_id)
        if customer is None or customer.tenant_id != self.tenant_id:
            return False
        theirs = _updated_at(obj) or utcnow()
        ours = customer.updated_at
        # The record's own version, not the ledger's: edits made while disconnected never reached the ledger.
        local_pending = max(customer.version, row.local_version) > row.synced_version
        # Only an edit here not yet sent can be newer. QuickBooks stamps whole seconds: theirs happened
        # within [theirs, theirs + 1 s), so ours is newer only from the next second on.
        if local_pending and ours is not None and ours >= theirs + timedelta(seconds=1):
            # Our edit is newer: keep it and send it again over theirs.
            row.remote_version = token
            row.state = LedgerState.PENDING
            row.operation = Operation.UPSERT
            row.next_attempt_at = utcnow()
            await self.event(
                row,
                "conflict",
                f"QuickBooks' edit ({theirs:%Y-%m-%d %H:%M:%S} UTC) is older than fieldhub's "
                f"({ours:%Y-%m-%d %H:%M:%S} UTC): "
                "fieldhub's version is kept and sent to QuickBooks.",
                obj,
            )
            return True
        before = {name: getattr(customer, name) for name in customer_fields(obj, customer)}
        fields = customer_fields(obj, customer)
        await customers.update_customer(self.session, self.tenant_id, customer.id, fields)
        changed = sorted(name for name, value in fields.items() if before.get(name) != getattr(customer, name))
        await self.in_step("customer", customer.id, customer.version, remote_id, token)
        if local_pending:
            at = f"{ours:%Y-%m-%d %H:%M:%S} UTC" if ours else "earlier"
            await self.event(
                row,
                "conflict",
                f"fieldhub's edit ({at}) lost to QuickBooks' newer edit ({theirs:%Y-%m-%d %H:%M:%S} UTC).",
                obj,
            )
        if changed:
            await self.event(row, "updated", "Updated from QuickBooks: " + ", ".join(changed), obj)
            self.counts.add("customer", "updated")
        return bool(changed) or local_pending

    async def _customer_new(self, remote_id: str, obj: dict[str, Any]) -> bool:
        """Two-way: a customer made in QuickBooks. Link a local one of the same name (never a second), else create."""
        fields = customer_fields(obj, None)
        linked_ids = select(LedgerRow.local_id).where(
            LedgerRow.connection_id == self.connection.id, LedgerRow.entity == "customer"
        )
        same = await self.session.scalar(
            select(Customer)
            .where(
                Customer.tenant_id == self.tenant_id,
                Customer.display_name == fields["display_name"],
                Customer.id.not_in(linked_ids),
            )
            .order_by(Customer.id)
            .limit(1)
        )
        if same is not None:
            row = await self.in_step("customer", same.id, same.version, remote_id, str(obj.get("SyncToken") or ""))
            await self.event(row, "imported", f"Linked to QuickBooks customer {remote_id} of the same name", obj)
            theirs = _updated_at(obj) or utcnow()
            if same.updated_at is not None and same.updated_at >= theirs + timedelta(seconds=1):
                row.state = LedgerState.PENDING  # ours is newer: it goes out over theirs
                row.next_attempt_at = utcnow()
                row.remote_version = str(obj.get("SyncToken") or "")
            else:
                await customers.update_customer(self.session, self.tenant_id, same.id, fields)
                await self.in_step("customer", same.id, same.version, remote_id, str(obj.get("SyncToken") or ""))
            self.counts.add("customer", "updated")
            return True
        customer = await customers.create_customer(self.session, self.tenant_id, fields)
        row = await self.in_step("customer", customer.id, customer.version, remote_id, str(obj.get("SyncToken") or ""))
        await self.event(row, "imported", f"Created from QuickBooks customer {remote_id}", obj)
        self.counts.add("customer", "created")
        return True

    async def _customer_gone(self, row: LedgerRow | None, remote_id: str) -> bool:
        """QuickBooks never deletes names; a merge removes one. Two-way: deactivate it here; one-way: log it."""
        if row is None:
            return False
        if not self.two_way:
            if row.error_code == "remote_gone":
                return False
            row.error_code = "remote_gone"
            await self.event(row, "ignored", f"Customer {remote_id} was merged or deleted in QuickBooks; kept here.")
            return True
        customer = await self.session.get(Customer, row.local_id)
        if customer is None or customer.tenant_id != self.tenant_id or not customer.active:
            return False
        await customers.set_customer_active(self.session, self.tenant_id, customer.id, False)
        await self.in_step("customer", customer.id, customer.version, row.remote_id, None)
        await self.event(
            row, "deleted", f"Customer {remote_id} was merged or deleted in QuickBooks: made inactive here"
        )
        self.counts.add("customer", "deleted")
        return True


# ----------------------------------------------------------------------------- reading QuickBooks


async def read(adapter: QuickBooksAdapter, entity: str, remote_id: str) -> dict[str, Any] | None:
    """The object as it is now; None when QuickBooks says it is gone (610 Object Not Found)."""
    try:
        reply = await adapter._call("GET", f"{entity.lower()}/{remote_id}")
    except Rejected as e:
        if e.code == "610":
            return None
        raise
    found = reply.get(entity)
    return found if isinstance(found, dict) else None


def _newer_token(token: str, known: str | None) -> bool:
    """QuickBooks' SyncToken counts up with every change: is `token` a later version than the one we hold?"""
    if not known:
        return True
    if token.isdigit() and known.isdigit():
        return int(token) > int(known)
    return token != known


def _connection_lock(connection_id: int) -> Any:
    """The same row lock the webhook inbox takes: one connection's inbound changes are applied one at a time."""
    return (
        update(Connection)
        .where(Connection.id == connection_id)
        .values(updated_at=Connection.updated_at)
        .execution_options(synchronize_session=False)
    )


# ----------------------------------------------------------------------------- webhooks


def _canonical(entity: str) -> str | None:
    return next((e for e in ENTITIES if e.lower() == entity.lower()), None)


async def apply_notices(
    session: AsyncSession,
    env: OAuthEnv,
    primary: Connection | None,
    notices: Iterable[dict[str, str]],
    *,
    received_at: datetime | None = None,
) -> bool:
    """A webhook's changes, realm by realm (one notification may name several): read each object, apply it.

    Echoes of fieldhub's own writes are dropped first, from the ledger alone (hub/sync/echoes.py): no read,
    no lease. A notice the ledger can't place yet because a create of that entity is still unconfirmed (its
    reply lost to a crash) and that would be read is put off (Deferred: the inbox's sweep brings it back, by
    when the engine has settled the create and the notice is an echo), for at most DEFER_FOR after it came.

    Under each connection's sync lease (LeaseHeld when a run or a poll has it: the inbox leaves the
    event for its sweep). Reading QuickBooks uses sessions of its own (the token, the shared rate
    limiter), so the reads happen with no database lock held — on SQLite a held write lock would stall
    them — and the changes are applied afterwards under the connection's row lock and committed here.
    """
    by_realm: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for notice in notices:
        entity = _canonical(notice["entity"])
        if entity is None:
            continue
        # The newest notice about an object decides whether it is read or known gone.
        by_realm.setdefault(notice["realm"], {})[(entity, notice["id"])] = {**notice, "entity": entity}
    wanted: list[tuple[Connection, list[dict[str, str]]]] = []
    for realm, changes in by_realm.items():
        conn = primary if primary is not None and primary.account_id == realm else None
        conn = conn or await connection_for(session, KEY, realm)
        if conn is None or conn.status != ConnectionStatus.CONNECTED:
            # A company no business here has connected, or one disconnected: the CDC after reconnect catches up.
            log.info("quickbooks.webhook.ignored", realm_known=conn is not None)
            continue
        probe = Inbound(session, conn, "webhook")
        by_notice = {
            echoes.Notice(LOCAL[n["entity"]], n["id"], n["operation"], None, parse_qbo_time(n["at"])): n
            for n in changes.values()
        }
        screened = await echoes.screen(session, conn.id, list(by_notice))
        if screened.echoes:
            log.info("quickbooks.webhook.echoes_dropped", connection_id=conn.id, echoes=len(screened.echoes))
        uncertain = set(screened.uncertain)
        patient = received_at is None or utcnow() - received_at < DEFER_FOR
        chosen = []
        for screened_notice in screened.rest:
            change = by_notice[screened_notice]
            if not await _worth_reading(probe, change["entity"], change["id"], change["operation"]):
                continue
            if screened_notice in uncertain and change["operation"] != "Delete" and patient:
                raise Deferred(f"{change['entity']} {change['id']} may be a create of ours not yet confirmed")
            chosen.append(change)
        if chosen:
            wanted.append((conn, chosen))
    if not wanted:
        return False
    await session.commit()
    # The connection's lease, the one export runs and the CDC poll take: QuickBooks is read and the
    # changes applied with no run of ours in between, so nothing read here is older than what a run
    # just sent, and no run settles over a change applied here. Busy: the event waits for the sweep.
    holder = f"{PROCESS}:webhook:{uuid.uuid4().hex[:8]}"
    held: list[int] = []
    keepers: list[LeaseKeeper] = []
    try:
        for conn, _ in wanted:
            if not await _wait_for_lease(env, conn.id, holder):
                raise LeaseHeld(f"connection {conn.id} is syncing; the webhook is applied after it")
            held.append(conn.id)
            keepers.append(LeaseKeeper(env.sessionmaker, conn.id, holder).start())  # reads may wait on the budget
        changed = False
        for conn, chosen in wanted:
            async with client_for(env, conn) as client:
                adapter = QuickBooksAdapter(conn, client, env.settings)
                objects = []
                for notice in chosen:
                    gone = notice["operation"] == "Delete"
                    objects.append((notice, None if gone else await read(adapter, notice["entity"], notice["id"])))
            await session.execute(_connection_lock(conn.id))
            inbound = Inbound(session, conn, "webhook")
            for notice, obj in objects:
                changed |= await inbound.apply(notice["entity"], notice["id"], obj)
                if notice.get("deleted_id"):  # a merge: the other object is gone
                    changed |= await inbound.apply(notice["entity"], notice["deleted_id"], None)
            inbound.finish()
            await session.commit()  # before the lease goes: a run that follows sees these changes
        return changed
    finally:
        for keeper in keepers:
            await keeper.stop()
        for connection_id in held:
            try:
                async with env.sessionmaker() as fresh:
                    await release_lease(fresh, connection_id, holder)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("quickbooks.webhook.release_failed", connection_id=connection_id)


async def _wait_for_lease(env: OAuthEnv, connection_id: int, holder: str) -> bool:
    """The lease, waiting out a short run (a real-time one takes well under a second) before giving up.

    On a session of its own: a refused take rolls back, which would expire the caller's objects.
    """
    deadline = time.monotonic() + WEBHOOK_LEASE_WAIT
    while True:
        async with env.sessionmaker() as session:
            if await acquire_lease(session, connection_id, holder):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def _worth_reading(inbound: Inbound, entity: str, remote_id: str, operation: str) -> bool:
    """Skip the read (a metered call) when the answer can't matter: echoes of our own creates, invoices not ours."""
    if entity == "Invoice":
        return await inbound._row("invoice", remote_id=remote_id) is not None
    if entity == "Payment" and operation == "Create":
        return await inbound._row("payment", remote_id=remote_id) is None
    if entity == "Customer":
        known = await inbound._row("customer", remote_id=remote_id) is not None
        if not inbound.two_way:
            return known  # one-way: an edit of a linked customer is logged; others are not ours to read
        return not known if operation == "Create" else True
    return True


# ----------------------------------------------------------------------------- CDC catch-up


def _objects(reply: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(entity, object) pairs of a CDC reply, oldest change first."""
    found: list[tuple[str, dict[str, Any]]] = []
    for block in reply.get("CDCResponse") or []:
        for response in (block or {}).get("QueryResponse") or []:
            for entity in ENTITIES:
                for obj in (response or {}).get(entity) or []:
                    if isinstance(obj, dict):
                        found.append((entity, obj))
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda pair: (_updated_at(pair[1]) or epoch, ENTITIES.index(pair[0])))
    return found


async def _cursor(session: AsyncSession, connection_id: int) -> SyncCursor:
    cursor = await session.get(SyncCursor, (connection_id, CURSOR))
    if cursor is None:
        cursor = SyncCursor(connection_id=connection_id, name=CURSOR, value="")
        session.add(cursor)
    return cursor


async def last_polled(session: AsyncSession, connection_id: int) -> datetime | None:
    cursor = await session.get(SyncCursor, (connection_id, CURSOR))
    return cursor.polled_at if cursor is not None else None


@dataclass(frozen=True)
class Polled:
    """A catch-up that ran: its import run, or None when there was nothing to apply (no history row then)."""

    run: SyncRun | None


async def poll(
    env: OAuthEnv,
    connection_id: int,
    *,
    trigger: str = "schedule",
    holder: str | None = None,
    client_options: dict[str, Any] | None = None,
    due_before: datetime | None = None,
    cdc_max: int = CDC_MAX,
) -> Polled | None:
    """Catch up one connection from its CDC cursor under the connection's lease. None if busy or not due.

    `due_before`: poll only if the cursor was last polled before this moment (re-checked under the
    lease, so two workers that both saw it due poll it once).
    """
    holder = holder or f"{PROCESS}:cdc:{uuid.uuid4().hex[:8]}"
    async with env.sessionmaker() as session:
        if not await acquire_lease(session, connection_id, holder):
            return None
        keeper = LeaseKeeper(env.sessionmaker, connection_id, holder).start()  # kept through a long catch-up
        try:
            conn = await session.get(Connection, connection_id)
            if conn is None or conn.status != ConnectionStatus.CONNECTED or conn.provider != KEY:
                return None
            if due_before is not None:
                polled = await last_polled(session, connection_id)
                reconnected = conn.connected_at is not None and (polled is None or conn.connected_at > polled)
                if polled is not None and polled > due_before and not reconnected:
                    await session.rollback()
                    return None
            options = dict(client_options or {})
            return Polled(await _Poll(env, session, conn, trigger, holder, options, cdc_max).run())
        finally:
            await keeper.stop()
            try:
                async with env.sessionmaker() as fresh:
                    await release_lease(fresh, connection_id, holder)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("quickbooks.cdc.release_failed", connection_id=connection_id)


@dataclass
class _Poll:
    env: OAuthEnv
    session: AsyncSession
    conn: Connection
    trigger: str
    holder: str
    client_options: dict[str, Any]
    cdc_max: int = CDC_MAX  # what QuickBooks caps a reply at; a reply this long may have left changes out

    run_id: int | None = None  # the import run as last committed

    async def run(self) -> SyncRun | None:
        session, conn = self.session, self.conn
        connection_id, tenant_id = conn.id, conn.tenant_id
        cursor = await _cursor(session, connection_id)
        now = utcnow()
        since = parse_qbo_time(cursor.value) or conn.connected_at or now
        full = since < now - LOOKBACK + MARGIN
        self.inbound = Inbound(session, conn, self.trigger)
        try:
            async with client_for(self.env, conn, **self.client_options) as client:
                adapter = QuickBooksAdapter(conn, client, self.env.settings)
                if not full:
                    try:
                        await self._cdc(adapter, since)
                    except Rejected as e:
                        if e.code != "2010" or "changedsince" not in e.reason.lower():
                            raise
                        full = True  # QuickBooks' clock says the cursor is too old after all
                if full:
                    await self._full(adapter, since)
        except Exception as e:
            await session.rollback()
            await self._failed(connection_id, tenant_id, e)
            raise
        cursor = await _cursor(session, connection_id)
        cursor.polled_at = utcnow()
        run = self.inbound.finish()
        await session.commit()
        if run is not None:
            log.info(
                "quickbooks.cdc.applied",
                connection_id=connection_id,
                created=run.created,
                updated=run.updated,
                deleted=run.deleted,
                failed=run.failed,
            )
        return run

    async def _commit(self, cursor_at: datetime) -> None:
        """Changes and the cursor that covers them, in one transaction; then keep the lease."""
        session = self.session
        await session.execute(_connection_lock(self.conn.id))
        cursor = await _cursor(session, self.conn.id)
        cursor.value = qbo_since(cursor_at)
        cursor.polled_at = utcnow()
        run = self.inbound.finish()
        if run is not None:
            self.run_id = run.id
        await session.execute(
            update(SyncLease)
            .where(SyncLease.connection_id == self.conn.id, SyncLease.holder == self.holder)
            .values(expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS))
        )
        await session.commit()

    async def _cdc(self, adapter: QuickBooksAdapter, since: datetime) -> None:
        for _ in range(MAX_ROUNDS):
            reply = await adapter._call("GET", "cdc", entities=",".join(ENTITIES), changedSince=qbo_since(since))
            objects = _objects(reply)
            mine = await self._echoes(objects)
            await self.session.execute(_connection_lock(self.conn.id))
            for entity, obj in objects:
                if (entity, str(obj.get("Id", ""))) not in mine:
                    await self.inbound.apply(entity, str(obj.get("Id", "")), obj)
            if len(objects) < self.cdc_max:
                # Everything up to the reply's time is in; the next window starts a little before it.
                server = parse_qbo_time(reply.get("time")) or utcnow()
                await self._commit(max(since, server - OVERLAP))
                return
            # A full reply: only up to the newest change in it is known complete.
            stamps = [at for _, obj in objects if (at := _updated_at(obj)) is not None]
            newest = max(stamps, default=since)
            await self._commit(newest)
            if newest <= since:
                return  # 1,000 changes within one second: the next round continues from here
            since = newest

    async def _echoes(self, objects: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, str]]:
        """The objects of a CDC reply that are fieldhub's own writes, by version (their SyncToken is the one the
        ledger holds): nothing to apply. Not a read saved (the reply has them), but the work of applying each."""
        notices = [
            echoes.Notice(
                LOCAL[entity],
                str(obj.get("Id", "")),
                "Delete" if is_deleted(obj) else "",
                str(obj.get("SyncToken", "")) or None,
                _updated_at(obj),
            )
            for entity, obj in objects
        ]
        screened = await echoes.screen(self.session, self.conn.id, notices)
        return {(next(e for e in ENTITIES if LOCAL[e] == n.entity), n.remote_id) for n in screened.echoes}

    async def _full(self, adapter: QuickBooksAdapter, since: datetime) -> None:
        """The cursor is older than CDC reaches: read everything, and diff ids for what was deleted meanwhile."""
        reason = (
            f"Full re-read of customers, invoices and payments: the last catch-up ({since:%Y-%m-%d}) is more than "
            "30 days ago, beyond what QuickBooks' change feed keeps."
        )
        started: datetime | None = None
        for entity in ENTITIES:
            if entity == "Customer" and not self.inbound.two_way:
                continue  # one-way: customers made or edited there are not brought in
            seen: set[str] = set()
            start = 1
            while True:
                # In id order: a page boundary must not move when something is created or deleted meanwhile.
                statement = f"SELECT * FROM {entity} ORDERBY Id STARTPOSITION {start} MAXRESULTS {PAGE}"
                reply = await adapter._call("GET", "query", query=statement)
                if started is None:  # said once the first read is in (no write is held while reading)
                    started = parse_qbo_time(reply.get("time")) or utcnow()
                    await self.inbound.note("", "", "full_reread", reason)
                rows = [r for r in (reply.get("QueryResponse") or {}).get(entity) or [] if isinstance(r, dict)]
                await self.session.execute(_connection_lock(self.conn.id))
                for obj in rows:
                    seen.add(str(obj.get("Id", "")))
                    await self.inbound.apply(entity, str(obj.get("Id", "")), obj)
                # The run row goes in with the page, counted: a later page that fails finishes this run (_failed).
                run = self.inbound.tally()
                if run is not None:
                    self.run_id = run.id
                await self.session.commit()
                # Kept for the whole read, page by page: no run sends anything until the diff below is done.
                async with self.env.sessionmaker() as fresh:  # its rollback must not expire this session's objects
                    renewed = await acquire_lease(fresh, self.conn.id, self.holder)
                if not renewed:
                    raise LeaseHeld("the lease expired during the full re-read; another worker took over")
                if len(rows) < PAGE:
                    break
                start += PAGE
            if entity in ("Invoice", "Payment"):
                await self._gone(adapter, entity, seen)
        await self._commit((started or utcnow()) - OVERLAP)

    async def _gone(self, adapter: QuickBooksAdapter, entity: str, seen: set[str]) -> None:
        """Synced records whose QuickBooks object was not in the full read, and which QuickBooks then says
        it does not have (610), were deleted there. The read-back keeps a live record from being voided
        here because a page of the read missed it."""
        local = LOCAL[entity]
        missing = sorted(
            {
                rid
                for rid in await self.session.scalars(
                    select(LedgerRow.remote_id).where(
                        LedgerRow.connection_id == self.conn.id,
                        LedgerRow.entity == local,
                        LedgerRow.remote_id.is_not(None),
                    )
                )
                if rid and rid not in seen
            }
        )
        await self.session.commit()  # no transaction open while QuickBooks is read (SQLite: one writer)
        gone = [rid for rid in missing if await read(adapter, entity, rid) is None]
        if not gone:
            return
        await self.session.execute(_connection_lock(self.conn.id))
        for rid in gone:
            await self.inbound.apply(entity, rid, None)
        await self.session.commit()

    async def _failed(self, connection_id: int, tenant_id: int, error: Exception) -> None:
        """A catch-up that could not finish: a failed import run says why; the cursor stays where it was."""
        line = {"code": str(getattr(error, "kind", "") or type(error).__name__), "reason": str(error)[:500], "fix": ""}
        async with self.env.sessionmaker() as session:
            run = await session.get(SyncRun, self.run_id) if self.run_id else None
            if run is None:
                run = SyncRun(
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    trigger=self.trigger,
                    direction="import",
                    entity="",
                    errors=[],
                )
                session.add(run)
            run.errors = [*(run.errors or []), line][:200]
            run.status = RunStatus.PARTIAL if (run.created or run.updated or run.deleted) else RunStatus.FAILED
            run.finished_at = utcnow()
            await session.commit()
