"""Accounting inbound: changes made in the ledger, from webhooks and the change-feed catch-up, applied through one
function.

`Inbound.apply(kind, id, record)` is the one path: a ledger's webhook handler reads each notified object and
calls it (`apply_notices`); `poll` (a periodic task, and right after a reconnect) reads the ledger's changes
since the connection's stored cursor (`Ledger.changed_since`) and calls it for every object. What each kind
does here:

- Payment made in the ledger against an invoice that came from here: recorded here with core
  `record_payment` (the invoice becomes PAID or PARTIALLY_PAID). Its ledger row is written already
  synced with the remote payment id, and the invoice's row stays in step, so nothing goes back (no echo).
  A payment fieldhub sent itself (its marker "fieldhub payment #…" in the note, or a ledger row with its id)
  is never imported. Voided or deleted there: the local payment is voided (core `void_payment`), the
  invoice reopens.
- Invoice voided or deleted there: voided here (core `void_invoice`); refused, logged as a conflict and the
  owner told when payments are recorded on it here. Other invoice edits made there are not brought back
  (fieldhub owns its invoices; its next change overwrites them).
- Customer, two-way: newest edit wins (the ledger's last-updated time against our updated_at); the losing
  side is logged as a `conflict` in the record's sync history. A customer created there is linked to a
  local customer of the same name, else created here. One-way: edits and new customers there are ignored,
  and logged.

Applying is idempotent — the ledger row's remote id and version (`newer_version`) say what is already
applied — so a webhook redelivered, and a poll re-reading what a webhook already brought, change nothing.
Echoes of fieldhub's own writes are not even read: a notice whose time (or a changed object whose version)
is what the ledger wrote is dropped before any request (hub/sync/echoes.py).
Every pass that changes (or fails to change) something writes an import run to the sync history.

The cursor is a moment (aware UTC, stored as text in SyncCursor "cdc"). A ledger whose change feed reaches
back only so far (`Ledger.lookback`: QuickBooks' CDC keeps 30 days) is re-read in full past that, and what
it no longer lists is read back one by one before it counts as deleted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.accounting import ledgers
from fieldhub.capabilities.accounting.protocol import Change, CursorTooOld, Ledger, Party, Record, Txn
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
from fieldhub.hub.notify import notify
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.processes import PROCESS
from fieldhub.hub.sync import echoes
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

log = get_logger(__name__)
WEBHOOK_LEASE_WAIT = 10.0  # seconds a webhook waits for a running sync before leaving the event to the sweep
# How long a notice that may echo an unconfirmed create of ours is put off before it is read anyway.
DEFER_FOR = timedelta(minutes=10)
CURSOR = "cdc"
KINDS = ("customer", "invoice", "payment")  # what is read back, in this order; also what webhooks act on
LABEL = {"customer": "Customer", "invoice": "Invoice", "payment": "Payment"}
MARGIN = timedelta(hours=1)  # start the full re-read a little before the ledger would refuse
OVERLAP = timedelta(seconds=2)  # the next window starts a little early: re-reading is harmless, skipping is not
CDC_MAX = 1000  # objects in one change-feed reply, across kinds: a full reply is not a safe checkpoint
MAX_ROUNDS = 50
PAGE = 1000
MARKER = "fieldhub payment #"  # what the adapters write in a payment's note (reconcile reads it too)


def cursor_text(moment: datetime) -> str:
    """The stored cursor: UTC with an explicit offset, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_cursor(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def payment_method(words: str) -> PaymentMethod:
    """How a payment made there was paid, from the ledger's words for its method ("Visa", "Check")."""
    name = words.lower()
    if "cash" in name:
        return PaymentMethod.CASH
    if any(word in name for word in ("visa", "master", "amex", "american", "discover", "card")):
        return PaymentMethod.CARD
    if any(word in name for word in ("ach", "bank", "transfer", "eft")):
        return PaymentMethod.ACH
    return PaymentMethod.CHECK  # what a bookkeeper records by hand most often


def customer_fields(party: Party, customer: Customer | None) -> dict[str, Any]:
    """The fields fieldhub sends for a customer as the ledger has them; a country it can't say stays ours."""
    fields = dict(party.fields)
    for prefix in ("billing", "service"):
        fields.setdefault(f"{prefix}_country", getattr(customer, f"{prefix}_country", "US") if customer else "US")
    return fields


# ----------------------------------------------------------------------------- applying


@dataclass
class Inbound:
    """Applies the ledger's records to one connection's records inside the caller's transaction, with history."""

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
    def books(self) -> str:
        return ledgers.name_of(self.connection.provider)

    def newer(self, version: str, known: str | None) -> bool:
        """Is `version` a later one than the ledger row's (the ledger module's `newer_version`)?"""
        module = ledgers.module(self.connection.provider)
        assert module is not None
        return bool(module.newer_version(version, known))

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

    async def event(self, row: LedgerRow, action: str, summary: str, received: Record | None = None) -> None:
        run = await self._run()
        self.session.add(
            RecordEvent(
                ledger_id=row.id,
                run_id=run.id,
                action=action,
                summary=summary[:2000],
                received=history_body(received.raw if received is not None else None),
            )
        )

    async def note(self, entity: str, remote_id: str, code: str, reason: str, fix: str = "") -> None:
        """A run-level line for what has no ledger row (a customer created there under one-way sync)."""
        await self._run()
        self.errors.append(
            {
                "entity": entity,
                "remote_id": remote_id,
                "code": code,
                "reason": reason,
                "fix": fix,
            }
        )

    async def fail(self, row: LedgerRow | None, entity: str, remote_id: str, reason: str, fix: str) -> None:
        self.counts.add(entity, "failed")
        if row is not None:
            await self.event(row, "conflict", f"{reason} {fix}".strip())
        await self.note(entity, remote_id, "conflict", reason, fix)

    async def refuse(
        self, row: LedgerRow | None, entity: str, remote_id: str, reason: str, fix: str, *, alert: tuple[str, str, str]
    ) -> None:
        """A change made in the ledger that can't be applied here: failed in the run and the record's history,
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
        """The record as it is now IS what the ledger has: synced, nothing to send (this is what stops the echo)."""
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
    async def apply(self, kind: str, remote_id: str, obj: Record | None) -> bool:
        """Apply one of the ledger's records (None: gone there). True if anything changed."""
        if kind not in KINDS:
            return False
        # What a rolled-back savepoint takes with it: a run row first added inside it, and its counts.
        run, counts, noted = self.run, self.counts.snapshot(), len(self.errors)
        try:
            async with self.session.begin_nested():
                if kind == "payment":
                    return await self._payment(remote_id, obj if isinstance(obj, Txn) else None)
                if kind == "invoice":
                    return await self._invoice(remote_id, obj if isinstance(obj, Txn) else None)
                return await self._customer(remote_id, obj if isinstance(obj, Party) else None)
        except (ValidationFailed, NotFound, IntegrityError) as e:
            self.run = run
            self.counts.restore(counts)
            del self.errors[noted:]
            # One record that can't be applied must not stop the others; it is in the run's errors.
            reason = "; ".join(e.errors.values()) if isinstance(e, ValidationFailed) else str(e)
            said = f"{LABEL[kind]} {remote_id} from {self.books} could not be applied: {reason}"
            await self.fail(None, kind, remote_id, said, "")
            return False

    # --- payments -------------------------------------------------------------------------------
    async def _payment(self, remote_id: str, obj: Txn | None) -> bool:
        rows = await self._rows("payment", remote_id)
        if obj is None or obj.voided:
            gone = "deleted" if obj is None else "voided"
            changed = False
            for row in rows:
                changed |= await self._void_payment(row, remote_id, gone, obj)
            return changed
        if rows:
            return False  # ours (sent from here) or already brought in; amounts edited there are not brought back
        if obj.note.startswith(MARKER):
            return False  # fieldhub sent it and has not yet heard back: the engine settles it, never a second one
        changed = False
        for link in obj.links:
            if link.kind == "invoice":
                changed |= await self._import_payment(remote_id, obj, link.remote_id, link.amount)
        return changed

    async def _import_payment(self, remote_id: str, obj: Txn, invoice_remote: str, amount: Decimal) -> bool:
        invoice_row = await self._row("invoice", remote_id=invoice_remote)
        if invoice_row is None or amount <= 0:
            return False  # an invoice made there, not here: nothing of ours to mark paid
        provider, books = self.connection.provider, self.books
        link_id = f"{self.connection.account_id}:{remote_id}:{invoice_remote}"
        existing = await self.session.scalar(
            select(RemoteLink.id).where(
                RemoteLink.provider == provider, RemoteLink.kind == "Payment", RemoteLink.remote_id == link_id
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
            "received_on": obj.day,
            "method": payment_method(obj.method),
            "reference": (obj.reference or f"{books} payment {remote_id}")[:100],
            "notes": f"Recorded in {books} (Payment {remote_id}).",
        }
        try:
            payment = await invoices.record_payment(self.session, self.tenant_id, invoice.id, values)
        except ValidationFailed as e:
            reason = "; ".join(e.errors.values())
            await self.refuse(
                invoice_row,
                "payment",
                remote_id,
                f"A {format_money(amount)} payment for {invoice.number} made in {books} was not applied: {reason}",
                f"Check the invoice and the payment in {books}.",
                alert=(
                    f"A {books} payment for {invoice.number} was not applied",
                    f"{format_money(amount)} was recorded in {books}, but {reason}",
                    f"/invoices/{invoice.id}",
                ),
            )
            return False
        row = await self.in_step("payment", payment.id, payment.version, remote_id, obj.version)
        if invoice_in_step:
            await self.in_step("invoice", invoice.id, invoice.version, invoice_row.remote_id, None)
        self.session.add(
            RemoteLink(
                tenant_id=self.tenant_id,
                provider=provider,
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
            f"Payment of {format_money(amount)} on {invoice.number} recorded in {books} (Payment {remote_id})",
            obj,
        )
        self.counts.add("payment", "created")
        return True

    async def _void_payment(self, row: LedgerRow, remote_id: str, gone: str, obj: Txn | None) -> bool:
        payment = await self.session.get(Payment, row.local_id)
        if payment is None or payment.tenant_id != self.tenant_id or payment.status == PaymentStatus.VOIDED:
            return False
        invoice_row = await self._row("invoice", local_id=payment.invoice_id)
        invoice_in_step = self._was_in_step(invoice_row)
        try:
            await invoices.void_payment(
                self.session, self.tenant_id, payment.id, f"{gone.title()} in {self.books} (Payment {remote_id})."
            )
        except ValidationFailed as e:
            reason = "; ".join(e.errors.values())
            await self.refuse(
                row,
                "payment",
                remote_id,
                f"The payment was {gone} in {self.books} but not here: {reason}",
                "",
                alert=(
                    f"A payment {gone} in {self.books} is still recorded here",
                    f"{format_money(payment.amount)}: {reason}",
                    f"/invoices/{payment.invoice_id}",
                ),
            )
            return False
        version = obj.version if obj else None
        await self.in_step("payment", payment.id, payment.version, row.remote_id, version)
        if invoice_in_step and invoice_row is not None:
            invoice = await self.session.get(Invoice, payment.invoice_id)
            assert invoice is not None
            await self.in_step("invoice", invoice.id, invoice.version, invoice_row.remote_id, None)
        await self.event(row, gone, f"Payment {remote_id} was {gone} in {self.books}: voided here", obj)
        self.counts.add("payment", "deleted")
        return True

    # --- invoices -------------------------------------------------------------------------------
    async def _invoice(self, remote_id: str, obj: Txn | None) -> bool:
        row = await self._row("invoice", remote_id=remote_id)
        if row is None:
            return False  # made there: invoices come from here only
        if obj is not None and not obj.voided:
            return False  # payments arrive as Payments; other edits there are not brought back
        gone = "deleted" if obj is None else "voided"
        invoice = await self.session.get(Invoice, row.local_id)
        if invoice is None or invoice.tenant_id != self.tenant_id:
            return False
        version = obj.version if obj else None
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
                "invoice",
                remote_id,
                f"{invoice.number} was {gone} in {self.books} but stays open here: {reason}",
                "Refund or void its payments here, then void the invoice.",
                alert=(
                    f"{invoice.number} was {gone} in {self.books}",
                    f"It has payments recorded here, so it was not voided: {reason}",
                    f"/invoices/{invoice.id}",
                ),
            )
            return False
        await self.in_step("invoice", invoice.id, invoice.version, row.remote_id, version)
        await self.event(row, gone, f"{invoice.number} was {gone} in {self.books}: voided here", obj)
        self.counts.add("invoice", "deleted")
        return True

    # --- customers ------------------------------------------------------------------------------
    async def _customer(self, remote_id: str, obj: Party | None) -> bool:
        row = await self._row("customer", remote_id=remote_id)
        if obj is None:
            return await self._customer_gone(row, remote_id)
        token, books = obj.version, self.books
        if row is not None and not self.newer(token, row.remote_version):
            return False  # what we sent, what we already applied, or an older copy read before a newer one
        if not self.two_way:
            if row is None:
                await self.note(
                    "customer",
                    remote_id,
                    "ignored",
                    f"“{obj.name}” is a customer made in {books}; one-way sync does not bring it here.",
                )
                return False
            row.remote_version = token  # one-way: our next change overwrites theirs; no stale SyncToken on the way
            await self.event(
                row,
                "ignored",
                f"Edited in {books}; one-way sync keeps fieldhub's version (sent again with the next change here).",
                obj,
            )
            return True
        if row is None:
            return await self._customer_new(remote_id, obj)
        customer = await self.session.get(Customer, row.local_id)
        if customer is None or customer.tenant_id != self.tenant_id:
            return False
        theirs = obj.updated_at or utcnow()
        ours = customer.updated_at
        # The record's own version, not the ledger's: edits made while disconnected never reached the ledger.
        local_pending = max(customer.version, row.local_version) > row.synced_version
        # Only an edit here not yet sent can be newer. Ledgers stamp whole seconds: theirs happened
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
                f"{_possessive(books)} edit ({theirs:%Y-%m-%d %H:%M:%S} UTC) is older than fieldhub's "
                f"({ours:%Y-%m-%d %H:%M:%S} UTC): "
                f"fieldhub's version is kept and sent to {books}.",
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
                f"fieldhub's edit ({at}) lost to {_possessive(books)} newer edit ({theirs:%Y-%m-%d %H:%M:%S} UTC).",
                obj,
            )
        if changed:
            await self.event(row, "updated", f"Updated from {books}: " + ", ".join(changed), obj)
            self.counts.add("customer", "updated")
        return bool(changed) or local_pending

    async def _customer_new(self, remote_id: str, obj: Party) -> bool:
        """Two-way: a customer made there. Link a local one of the same name (never a second), else create."""
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
            row = await self.in_step("customer", same.id, same.version, remote_id, obj.version)
            await self.event(row, "imported", f"Linked to {self.books} customer {remote_id} of the same name", obj)
            theirs = obj.updated_at or utcnow()
            if same.updated_at is not None and same.updated_at >= theirs + timedelta(seconds=1):
                row.state = LedgerState.PENDING  # ours is newer: it goes out over theirs
                row.next_attempt_at = utcnow()
                row.remote_version = obj.version
            else:
                await customers.update_customer(self.session, self.tenant_id, same.id, fields)
                await self.in_step("customer", same.id, same.version, remote_id, obj.version)
            self.counts.add("customer", "updated")
            return True
        customer = await customers.create_customer(self.session, self.tenant_id, fields)
        row = await self.in_step("customer", customer.id, customer.version, remote_id, obj.version)
        await self.event(row, "imported", f"Created from {self.books} customer {remote_id}", obj)
        self.counts.add("customer", "created")
        return True

    async def _customer_gone(self, row: LedgerRow | None, remote_id: str) -> bool:
        """Ledgers keep names; a merge (or a deletion) removes one. Two-way: deactivate it here; one-way: log it."""
        if row is None:
            return False
        if not self.two_way:
            if row.error_code == "remote_gone":
                return False
            row.error_code = "remote_gone"
            await self.event(row, "ignored", f"Customer {remote_id} was merged or deleted in {self.books}; kept here.")
            return True
        customer = await self.session.get(Customer, row.local_id)
        if customer is None or customer.tenant_id != self.tenant_id or not customer.active:
            return False
        await customers.set_customer_active(self.session, self.tenant_id, customer.id, False)
        await self.in_step("customer", customer.id, customer.version, row.remote_id, None)
        await self.event(
            row, "deleted", f"Customer {remote_id} was merged or deleted in {self.books}: made inactive here"
        )
        self.counts.add("customer", "deleted")
        return True


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _connection_lock(connection_id: int) -> Any:
    """The same row lock the webhook inbox takes: one connection's inbound changes are applied one at a time."""
    return (
        update(Connection)
        .where(Connection.id == connection_id)
        .values(updated_at=Connection.updated_at)
        .execution_options(synchronize_session=False)
    )


# ----------------------------------------------------------------------------- webhooks


async def apply_notices(
    session: AsyncSession,
    env: OAuthEnv,
    provider: str,
    primary: Connection | None,
    notices: Iterable[dict[str, str]],
    *,
    received_at: datetime | None = None,
) -> bool:
    """A webhook's changes, account by account (one notification may name several): read each object, apply it.

    `notices`: {"account", "kind", "id", "operation" (Create, Update, Delete, Merge, Void…), "at" (when the
    ledger says it changed, ISO 8601), "deleted_id" (a merge's other object, optional)}.

    Echoes of fieldhub's own writes are dropped first, from the ledger alone (hub/sync/echoes.py): no read,
    no lease. A notice the ledger can't place yet because a create of that kind is still unconfirmed (its
    reply lost to a crash) and that would be read is put off (Deferred: the inbox's sweep brings it back, by
    when the engine has settled the create and the notice is an echo), for at most DEFER_FOR after it came.

    Under each connection's sync lease (LeaseHeld when a run or a poll has
    it: the inbox leaves the event for its sweep). Reading the ledger uses sessions of its own (the token,
    the shared rate limiter), so the reads happen with no database lock held — on SQLite a held write lock
    would stall them — and the changes are applied afterwards under the connection's row lock and committed.
    """
    by_account: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for notice in notices:
        if notice["kind"] not in KINDS:
            continue
        # The newest notice about an object decides whether it is read or known gone.
        by_account.setdefault(notice["account"], {})[(notice["kind"], notice["id"])] = notice
    wanted: list[tuple[Connection, list[dict[str, str]]]] = []
    for account, changes in by_account.items():
        conn = primary if primary is not None and primary.account_id == account else None
        conn = conn or await connection_for(session, provider, account)
        if conn is None or conn.status != ConnectionStatus.CONNECTED:
            # A company no business here has connected, or one disconnected: the poll after reconnect catches up.
            log.info("accounting.webhook.ignored", provider=provider, account_known=conn is not None)
            continue
        probe = Inbound(session, conn, "webhook")
        by_notice = {
            echoes.Notice(n["kind"], n["id"], n["operation"], None, parse_cursor(n.get("at"))): n
            for n in changes.values()
        }
        screened = await echoes.screen(session, conn.id, list(by_notice))
        if screened.echoes:
            log.info("accounting.webhook.echoes_dropped", connection_id=conn.id, echoes=len(screened.echoes))
        uncertain = set(screened.uncertain)
        patient = received_at is None or utcnow() - received_at < DEFER_FOR
        chosen = []
        for screened_notice in screened.rest:
            change = by_notice[screened_notice]
            if not await _worth_reading(probe, change["kind"], change["id"], change["operation"]):
                continue
            if screened_notice in uncertain and change["operation"] != "Delete" and patient:
                raise Deferred(f"{change['kind']} {change['id']} may be a create of ours not yet confirmed")
            chosen.append(change)
        if chosen:
            wanted.append((conn, chosen))
    if not wanted:
        return False
    await session.commit()
    # The connection's lease, the one export runs and the poll take: the ledger is read and the changes
    # applied with no run of ours in between, so nothing read here is older than what a run just sent, and
    # no run settles over a change applied here. Busy: the event waits for the sweep.
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
            async with ledgers.open_for(env, conn) as ledger:
                objects = []
                for notice in chosen:
                    gone = notice["operation"] == "Delete"
                    objects.append((notice, None if gone else await ledger.read(notice["kind"], notice["id"])))
            await session.execute(_connection_lock(conn.id))
            inbound = Inbound(session, conn, "webhook")
            for notice, obj in objects:
                changed |= await inbound.apply(notice["kind"], notice["id"], obj)
                if notice.get("deleted_id"):  # a merge: the other object is gone
                    changed |= await inbound.apply(notice["kind"], notice["deleted_id"], None)
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
                log.warning("accounting.webhook.release_failed", connection_id=connection_id)


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


async def _worth_reading(inbound: Inbound, kind: str, remote_id: str, operation: str) -> bool:
    """Skip the read (a metered call) when the answer can't matter: echoes of our own creates, invoices not ours."""
    if kind == "invoice":
        return await inbound._row("invoice", remote_id=remote_id) is not None
    if kind == "payment" and operation == "Create":
        return await inbound._row("payment", remote_id=remote_id) is None
    if kind == "customer":
        known = await inbound._row("customer", remote_id=remote_id) is not None
        if not inbound.two_way:
            return known  # one-way: an edit of a linked customer is logged; others are not ours to read
        return not known if operation == "Create" else True
    return True


# ----------------------------------------------------------------------------- the catch-up


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
    """Catch up one connection from its cursor under the connection's lease. None if busy or not due.

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
            if conn is None or conn.status != ConnectionStatus.CONNECTED or not ledgers.is_ledger(conn.provider):
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
                log.warning("accounting.poll.release_failed", connection_id=connection_id)


@dataclass
class _Poll:
    env: OAuthEnv
    session: AsyncSession
    conn: Connection
    trigger: str
    holder: str
    client_options: dict[str, Any]
    cdc_max: int = CDC_MAX  # what the ledger caps a reply at; a reply this long may have left changes out

    run_id: int | None = None  # the import run as last committed

    async def run(self) -> SyncRun | None:
        session, conn = self.session, self.conn
        connection_id, tenant_id = conn.id, conn.tenant_id
        cursor = await _cursor(session, connection_id)
        now = utcnow()
        since = parse_cursor(cursor.value) or conn.connected_at or now
        self.inbound = Inbound(session, conn, self.trigger)
        try:
            async with ledgers.open_for(self.env, conn, **self.client_options) as ledger:
                full = ledger.lookback is not None and since < now - ledger.lookback + MARGIN
                if not full:
                    try:
                        await self._changes(ledger, since)
                    except CursorTooOld:
                        full = True  # the ledger's clock says the cursor is too old after all
                if full:
                    await self._full(ledger, since)
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
                "accounting.poll.applied",
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
        cursor.value = cursor_text(cursor_at)
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

    async def _changes(self, ledger: Ledger, since: datetime) -> None:
        for _ in range(MAX_ROUNDS):
            page = await ledger.changed_since(since, KINDS, self.cdc_max)
            mine = await self._echoes(page.changes)
            await self.session.execute(_connection_lock(self.conn.id))
            for change in page.changes:
                if (change.kind, change.remote_id) not in mine:
                    await self.inbound.apply(change.kind, change.remote_id, change.record)
            if page.complete:
                # Everything up to the reply's time is in; the next window starts a little before it.
                await self._commit(max(since, page.until - OVERLAP))
                return
            # A full reply: only up to the newest change in it is known complete.
            await self._commit(page.until)
            if page.until <= since:
                return  # a full reply's worth of changes within one second: the next round continues from here
            since = page.until

    async def _echoes(self, changes: list[Change]) -> set[tuple[str, str]]:
        """The changed objects that are fieldhub's own writes, by version (the one the ledger row holds): nothing
        to apply. Not a read saved (the reply has them), but the work of applying each."""
        notices = [
            echoes.Notice(
                c.kind,
                c.remote_id,
                "Delete" if c.record is None else "",
                (c.record.version or None) if c.record is not None else None,
                c.record.updated_at if c.record is not None else None,
            )
            for c in changes
        ]
        screened = await echoes.screen(self.session, self.conn.id, notices)
        return {(n.entity, n.remote_id) for n in screened.echoes}

    async def _full(self, ledger: Ledger, since: datetime) -> None:
        """The cursor is older than the change feed reaches: read everything, and diff ids for what was deleted."""
        days = ledger.lookback.days if ledger.lookback else 0
        reason = (
            f"Full re-read of customers, invoices and payments: the last catch-up ({since:%Y-%m-%d}) is more than "
            f"{days} days ago, beyond what {_possessive(ledger.name)} change feed keeps."
        )
        started: datetime | None = None
        for kind in KINDS:
            if kind == "customer" and not self.inbound.two_way:
                continue  # one-way: customers made or edited there are not brought in
            seen: set[str] = set()
            async for page in ledger.everything(kind, PAGE):
                if started is None:  # said once the first read is in (no write is held while reading)
                    started = page.until
                    await self.inbound.note("", "", "full_reread", reason)
                await self.session.execute(_connection_lock(self.conn.id))
                for change in page.changes:
                    seen.add(change.remote_id)
                    await self.inbound.apply(kind, change.remote_id, change.record)
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
            if kind in ("invoice", "payment"):
                await self._gone(ledger, kind, seen)
        await self._commit((started or utcnow()) - OVERLAP)

    async def _gone(self, ledger: Ledger, kind: str, seen: set[str]) -> None:
        """Synced records whose object was not in the full read, and which the ledger then says it does not
        have, were deleted there. The read-back keeps a live record from being voided here because a page of
        the read missed it."""
        missing = sorted(
            {
                rid
                for rid in await self.session.scalars(
                    select(LedgerRow.remote_id).where(
                        LedgerRow.connection_id == self.conn.id,
                        LedgerRow.entity == kind,
                        LedgerRow.remote_id.is_not(None),
                    )
                )
                if rid and rid not in seen
            }
        )
        await self.session.commit()  # no transaction open while the ledger is read (SQLite: one writer)
        gone = [rid for rid in missing if await ledger.read(kind, rid) is None]
        if not gone:
            return
        await self.session.execute(_connection_lock(self.conn.id))
        for rid in gone:
            await self.inbound.apply(kind, rid, None)
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
