"""The export run: push one connection's due ledger rows to its provider, in dependency order, never twice.

Every step that matters is committed before the next one starts:

1. A create's idempotency key (and `sent_at`) is committed to its ledger row BEFORE the request goes
   out. If the process dies after the provider committed but before we heard back, the next run
   finds the key still on the row and sends the same key again (QBO `requestid`, `Idempotency-Key`):
   the provider answers with the original object. Providers without replay get `find_existing`.
2. The reply is committed in one transaction: remote id and version, synced version, state, cleared
   key, and a RecordEvent with what was sent and received.

A row whose record changed again while it was being pushed (local_version > synced_version) stays
pending and goes out again. Rows are read in id order per entity and the cursor only moves forward,
so one run never loops on a record that keeps failing. Counting: a create is `created`, an update
`updated`, a void or delete `deleted` (it takes the amount out of the books), a rejection `failed`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.payments.models import Payment, Refund
from fieldhub.db import utcnow
from fieldhub.hub import metrics
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth, NotEntitled, ProviderError, Rejected, RetryLater
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.adapter import Adapter, PushItem, PushResult, create_adapter
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.ledger import idempotency_key
from fieldhub.hub.sync.models import (
    LedgerRow,
    LedgerState,
    Operation,
    RecordEvent,
    RunStatus,
    SyncLease,
    SyncRun,
)
from fieldhub.log import get_logger, scrub_text

log = get_logger("fieldhub.sync")

# Customers and items before invoices, invoices before payments, payments before deposits, refunds last.
ORDER = ("customer", "item", "invoice", "payment", "deposit", "refund")
MODELS: dict[str, Any] = {"customer": Customer, "item": Item, "invoice": Invoice, "payment": Payment, "refund": Refund}
CHUNK = 100
BACKOFF_BASE = 2.0
BACKOFF_CAP = 3600.0
WAIT_FOR_DEPENDENCY = timedelta(seconds=30)
LEASE_SECONDS = 60.0
ACTIONS = {Operation.VOID: "voided", Operation.DELETE: "deleted"}


class LeaseHeld(Exception):
    """Another worker is syncing this connection right now."""


@dataclass
class Progress:
    total: int = 0
    done: int = 0


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.created + self.updated + self.deleted

    def count(self, action: str) -> None:
        if action == "created":
            self.created += 1
        elif action in ("voided", "deleted"):
            self.deleted += 1
        else:
            self.updated += 1


def dependencies(entity: str, record: Any, related: dict[str, Any] | None = None) -> list[tuple[str, int]]:
    """The records that must exist at the provider before this one can point at them."""
    if entity == "invoice":
        items = sorted({line.item_id for line in record.lines if line.item_id is not None})
        return [("customer", record.customer_id)] + [("item", i) for i in items]
    if entity == "payment":
        return [("customer", record.customer_id), ("invoice", record.invoice_id)]
    if entity == "refund":
        invoice = (related or {}).get("invoice")
        customer = [("customer", invoice.customer_id)] if invoice is not None else []
        return customer + [("invoice", record.invoice_id), ("payment", record.payment_id)]
    return []


async def related(session: AsyncSession, entity: str, record: Any) -> dict[str, Any]:
    """What an adapter needs besides the record itself to describe it."""
    if entity == "invoice" and record.tax_rate_id is not None:
        return {"tax_rate": await session.get(TaxRate, record.tax_rate_id)}
    if entity == "payment":
        return {"invoice": await session.get(Invoice, record.invoice_id)}
    if entity == "refund":
        return {
            "payment": await session.get(Payment, record.payment_id),
            "invoice": await session.get(Invoice, record.invoice_id),
        }
    return {}


async def due_rows(
    session: AsyncSession, connection_id: int, entity: str, *, after_id: int = 0, limit: int = CHUNK
) -> list[LedgerRow]:
    """The engine's hot query: one connection's due rows of one entity, in id order.

    Served by ix_sync_ledger_due (connection, state, entity, id): synced rows, the vast majority, are
    never read. bench/pending.py times exactly this function.
    """
    result = await session.scalars(
        select(LedgerRow)
        .where(
            LedgerRow.connection_id == connection_id,
            LedgerRow.entity == entity,
            LedgerRow.state == LedgerState.PENDING,
            LedgerRow.next_attempt_at <= utcnow(),
            LedgerRow.id > after_id,
        )
        .order_by(LedgerRow.id)
        .limit(limit)
    )
    return list(result)


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Full jitter over an exponential ceiling (capped at an hour), never sooner than the provider asked."""
    jitter = rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempts - 1, 0)))
    return max(jitter, retry_after or 0.0)


# ----------------------------------------------------------------------------- leases


async def acquire_lease(session: AsyncSession, connection_id: int, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Take (or renew) the connection's lease; False when another live holder has it."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    try:
        await session.execute(insert(SyncLease).values(connection_id=connection_id, holder=holder, expires_at=until))
        await session.commit()
        return True
    except IntegrityError:
        await session.rollback()
    taken = await session.execute(
        update(SyncLease)
        .where(
            SyncLease.connection_id == connection_id,
            (SyncLease.expires_at < now) | (SyncLease.holder == holder),
        )
        .values(holder=holder, expires_at=until)
    )
    await session.commit()
    return bool(taken.rowcount)  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, connection_id: int, holder: str) -> None:
    await session.execute(delete(SyncLease).where(SyncLease.connection_id == connection_id, SyncLease.holder == holder))
    await session.commit()


# ----------------------------------------------------------------------------- the run


@dataclass
class Engine:
    env: OAuthEnv
    connection_id: int
    trigger: str
    entity: str | None
    holder: str
    progress: Callable[[Progress], Any] | None = None
    client_options: dict[str, Any] = field(default_factory=dict)
    lease_seconds: float = LEASE_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.sessionmaker = self.env.sessionmaker
        self.tally = _Tally()
        self.state = Progress()
        self.provider = ""
        self.requeued = False
        self.run_id = 0

    async def run(self) -> SyncRun:
        started = time.monotonic()
        async with self.sessionmaker() as session:
            if not await acquire_lease(session, self.connection_id, self.holder, self.lease_seconds):
                raise LeaseHeld(f"connection {self.connection_id} is being synced by another worker")
            try:
                connection = await session.get(Connection, self.connection_id)
                assert connection is not None, f"no connection {self.connection_id}"
                self.provider = connection.provider
                run = SyncRun(
                    tenant_id=connection.tenant_id,
                    connection_id=connection.id,
                    trigger=self.trigger,
                    direction="export",
                    entity=self.entity or "",
                    status=RunStatus.RUNNING,
                )
                session.add(run)
                await session.commit()
                self.run_id = run.id
                fatal = await self._run(session, connection)
                fresh = await session.get(SyncRun, self.run_id, populate_existing=True)
                assert fresh is not None
                run = fresh
                t = self.tally
                run.created, run.updated, run.deleted, run.failed = t.created, t.updated, t.deleted, t.failed
                run.errors = t.errors[:200]
                if fatal is not None:
                    run.status = RunStatus.FAILED
                elif t.errors:
                    run.status = RunStatus.PARTIAL if t.succeeded else RunStatus.FAILED
                else:
                    run.status = RunStatus.SUCCESS
                run.finished_at = utcnow()
                run.duration_ms = int((time.monotonic() - started) * 1000)
                await session.commit()
                await self._gauges(session)
                log.info(
                    "sync.run.finished",
                    connection_id=self.connection_id,
                    status=run.status,
                    created=t.created,
                    updated=t.updated,
                    deleted=t.deleted,
                    failed=t.failed,
                    ms=run.duration_ms,
                )
                return run
            finally:
                await self._release()

    async def _release(self) -> None:
        """Give the lease back, on a fresh session: the run's own may be mid-commit if the run was cancelled.

        A failure here is logged, never raised: it would replace the exception in flight (a cancellation
        swallowed this way leaves a worker that can't be stopped), and the lease expires by itself anyway.
        """
        try:
            async with self.sessionmaker() as session:
                await release_lease(session, self.connection_id, self.holder)
        except Exception:  # noqa: BLE001
            log.warning("sync.lease.release_failed", connection_id=self.connection_id, exc_info=True)

    async def _run(self, session: AsyncSession, connection: Connection) -> ProviderError | None:
        if connection.status != ConnectionStatus.CONNECTED:
            error: ProviderError = NeedsReauth(connection.sync_error or "The connection is not connected.")
            self.tally.errors.append({"code": "not_connected", "reason": error.reason, "fix": "Reconnect it."})
            return error
        entities = [e for e in ORDER if self.entity in (None, e)]
        self.state.total = await self._count_due(session, entities)
        self._report()
        if not self.state.total:
            return None
        async with client_for(self.env, connection, **self.client_options) as client:
            adapter = create_adapter(connection, client, self.env.settings)
            if adapter is None:
                error = NotEntitled(f"{connection.provider} does not export records")
                self.tally.errors.append({"code": "no_adapter", "reason": error.reason, "fix": ""})
                return error
            try:
                await adapter.prepare()
                # A dependency found missing mid-run gets a row; a second pass sends it and what waited for it.
                for _ in range(3):
                    self.requeued = False
                    if not await self._pass(session, adapter, entities) and not self.requeued:
                        break
            except NeedsReauth as e:
                await session.rollback()
                conn = await session.get(Connection, self.connection_id, populate_existing=True)
                assert conn is not None
                await connections.mark_needs_reauth(
                    session, conn, e.reason or connections.reauth_message(conn.provider)
                )
                await session.commit()
                self.tally.errors.append({"code": "needs_reauth", "reason": e.reason, "fix": "Click Reconnect."})
                return e
            except Rejected as e:  # the whole connection can't sync (e.g. accounts not mapped)
                await session.rollback()
                self.tally.errors.append({"code": e.code, "reason": e.reason, "fix": e.fix})
                return e
            except LeaseHeld as e:
                self.tally.errors.append({"code": "lease_lost", "reason": str(e), "fix": ""})
                return RetryLater(str(e))
        return None

    async def _count_due(self, session: AsyncSession, entities: Sequence[str]) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(LedgerRow)
            .where(
                LedgerRow.connection_id == self.connection_id,
                LedgerRow.state == LedgerState.PENDING,
                LedgerRow.next_attempt_at <= utcnow(),
                LedgerRow.entity.in_(entities),
            )
        )
        await session.commit()
        return int(count or 0)

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.state)

    async def _pass(self, session: AsyncSession, adapter: Adapter, entities: Sequence[str]) -> bool:
        """One walk over due rows in dependency order; True when new dependency rows were added."""
        added = False
        for entity in entities:
            model = MODELS.get(entity)
            if model is None:
                continue  # no local records of this kind (deposits come from payouts, not rows here)
            last_id = 0
            while True:
                rows = await due_rows(session, self.connection_id, entity, after_id=last_id)
                if not rows:
                    await session.commit()
                    break
                last_id = rows[-1].id
                items, new_rows = await self._prepare_items(session, entity, model, rows)
                added = added or new_rows
                await session.commit()
                if not await acquire_lease(session, self.connection_id, self.holder, self.lease_seconds):
                    raise LeaseHeld("the lease expired during the run; another worker took over")
                await self._send(session, adapter, items)
        return added

    async def _prepare_items(
        self, session: AsyncSession, entity: str, model: Any, rows: list[LedgerRow]
    ) -> tuple[list[tuple[PushItem, datetime]], bool]:
        """Load records, resolve dependencies and commit idempotency keys; what can go now, in order."""
        options = [selectinload(Invoice.lines)] if model is Invoice else []
        records = {
            r.id: r
            for r in await session.scalars(
                select(model).where(model.id.in_([row.local_id for row in rows])).options(*options)
            )
        }
        now = utcnow()
        ready: list[tuple[PushItem, datetime]] = []
        new_rows = False
        for row in rows:
            record = records.get(row.local_id)
            if record is None or record.tenant_id != row.tenant_id:
                row.state = LedgerState.SKIPPED
                row.error_reason = "The record no longer exists in fieldhub."
                self._tick()
                continue
            refs: dict[tuple[str, int], str] = {}
            waiting: list[str] = []
            context = await related(session, entity, record)
            for dep in dependencies(entity, record, context):
                dep_row = await session.scalar(
                    select(LedgerRow).where(
                        LedgerRow.connection_id == self.connection_id,
                        LedgerRow.entity == dep[0],
                        LedgerRow.local_id == dep[1],
                    )
                )
                if dep_row is not None and dep_row.remote_id:
                    refs[dep] = dep_row.remote_id
                    continue
                if dep_row is None:
                    new_rows = True
                    dep_record = await session.get(MODELS[dep[0]], dep[1])
                    session.add(
                        LedgerRow(
                            tenant_id=row.tenant_id,
                            connection_id=self.connection_id,
                            entity=dep[0],
                            local_id=dep[1],
                            local_version=getattr(dep_record, "version", 1) or 1,
                            state=LedgerState.PENDING,
                            operation=Operation.UPSERT,
                            next_attempt_at=now,
                        )
                    )
                    self.state.total += 1
                waiting.append(f"{dep[0]} #{dep[1]}")
            if waiting:
                row.error_code = "waiting"
                row.error_reason = f"waiting for {', '.join(waiting)} to sync first"
                row.error_fix = ""
                row.next_attempt_at = now if new_rows else now + WAIT_FOR_DEPENDENCY
                self._tick()
                continue
            settling = bool(row.idempotency_key)
            is_create = row.operation == Operation.UPSERT and not row.remote_id
            if is_create and not settling:
                # Committed before anything is sent: the one thing a crash must not lose.
                op = f"create-{row.attempts}"
                row.idempotency_key = idempotency_key(row.connection_id, entity, row.local_id, row.local_version, op)
                row.sent_at = now
            item = PushItem(
                ledger_id=row.id,
                entity=entity,
                local_id=row.local_id,
                operation=Operation(row.operation),
                record=record,
                local_version=row.local_version,
                remote_id=row.remote_id,
                remote_version=row.remote_version,
                idempotency_key=row.idempotency_key if is_create else None,
                settling=settling and is_create,
                sent_at=row.sent_at,
                refs=refs,
                related=context,
            )
            ready.append((item, row.next_attempt_at))
        # The commit that follows expires what the session holds; the adapter reads these after it.
        for item, _ in ready:
            for obj in (item.record, *item.related.values()):
                if obj is not None and obj in session:
                    session.expunge(obj)
        return ready, new_rows

    def _tick(self) -> None:
        self.state.done += 1
        self._report()

    async def _send(self, session: AsyncSession, adapter: Adapter, items: list[tuple[PushItem, datetime]]) -> None:
        batchable = [(i, due) for i, due in items if not i.settling]
        single = [(i, due) for i, due in items if i.settling]
        if adapter.batch_size > 1 and len(batchable) > 1:
            for start in range(0, len(batchable), adapter.batch_size):
                chunk = batchable[start : start + adapter.batch_size]
                try:
                    outcomes = await adapter.push_batch([i for i, _ in chunk])
                except (RetryLater, Rejected, NotEntitled) as e:
                    outcomes = [e] * len(chunk)
                for (item, due), result in zip(chunk, outcomes, strict=True):
                    await self._settle(session, item, due, result)
        else:
            single = items
        for item, due in single:
            outcome: PushResult | ProviderError
            try:
                found = await adapter.find_existing(item) if item.settling else None
                outcome = found if found is not None else await adapter.push(item)
            except (RetryLater, Rejected, NotEntitled) as e:
                outcome = e
            except NeedsReauth:
                raise
            except Exception as e:  # noqa: BLE001 — one record's surprise must not stop the run
                log.exception("sync.push.crashed", connection_id=self.connection_id, ledger_id=item.ledger_id)
                outcome = RetryLater(f"Unexpected error while sending: {type(e).__name__}")
            await self._settle(session, item, due, outcome)

    async def _settle(
        self, session: AsyncSession, item: PushItem, due: datetime, outcome: PushResult | ProviderError
    ) -> None:
        """Write one record's outcome, with its history event, in one commit."""
        if isinstance(outcome, NeedsReauth):
            raise outcome
        row = await session.scalar(
            select(LedgerRow)
            .where(LedgerRow.id == item.ledger_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert row is not None
        now = utcnow()
        if isinstance(outcome, PushResult):
            row.remote_id = outcome.remote_id
            row.remote_version = outcome.remote_version
            # A settled create may have been the provider replaying an older version's body: an update follows.
            row.synced_version = row.synced_version if item.settling else item.local_version
            row.idempotency_key = None
            row.sent_at = None
            row.attempts = 0
            row.error_code = row.error_reason = row.error_fix = ""
            row.synced_at = now
            if row.local_version > row.synced_version:
                self.requeued = True
                row.state = LedgerState.PENDING
                row.next_attempt_at = now
            else:
                row.state = LedgerState.SYNCED
            if item.operation in (Operation.VOID, Operation.DELETE) and row.state == LedgerState.PENDING:
                row.state = LedgerState.SYNCED  # nothing more to send for a voided or deleted record
            session.add(
                RecordEvent(
                    ledger_id=row.id,
                    run_id=self.run_id,
                    action=outcome.action,
                    summary=f"{outcome.action} {item.entity} #{item.local_id} as {outcome.remote_id}",
                    sent=_redact(outcome.sent),
                    received=_redact(outcome.received),
                )
            )
            self.tally.count(outcome.action)
            metrics.SYNC_LATENCY.labels(self.provider).observe(max((now - due).total_seconds(), 0.0))
        elif isinstance(outcome, RetryLater):
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=backoff(row.attempts, outcome.retry_after, self.rng))
            row.error_code = "retry_later"
            row.error_reason = outcome.reason
            row.error_fix = "fieldhub will try again by itself."
            self.tally.errors.append(_error(item, "retry_later", outcome.reason, row.error_fix))
        elif isinstance(outcome, Rejected):
            row.attempts += 1
            row.state = LedgerState.FAILED
            # Nothing was created (the provider refused it); a retry after the fix sends under a new key.
            row.idempotency_key = None
            row.sent_at = None
            row.error_code, row.error_reason, row.error_fix = outcome.code[:40], outcome.reason, outcome.fix
            session.add(RecordEvent(ledger_id=row.id, run_id=self.run_id, action="failed", summary=outcome.reason))
            self.tally.failed += 1
            self.tally.errors.append(_error(item, outcome.code, outcome.reason, outcome.fix))
        elif isinstance(outcome, NotEntitled):
            row.state = LedgerState.SKIPPED
            row.idempotency_key = None
            row.error_code, row.error_reason, row.error_fix = "not_entitled", outcome.reason, ""
            self.tally.errors.append(_error(item, "not_entitled", outcome.reason, ""))
        await session.commit()
        self._tick()

    async def _gauges(self, session: AsyncSession) -> None:
        counts = dict(
            (
                await session.execute(
                    select(LedgerRow.state, func.count())
                    .where(LedgerRow.connection_id == self.connection_id)
                    .group_by(LedgerRow.state)
                )
            ).all()
        )
        await session.commit()
        labels = (self.provider, str(self.connection_id))
        metrics.SYNC_PENDING.labels(*labels).set(counts.get(LedgerState.PENDING, 0))
        metrics.SYNC_FAILED.labels(*labels).set(counts.get(LedgerState.FAILED, 0))


def _error(item: PushItem, code: str, reason: str, fix: str) -> dict[str, Any]:
    return {"entity": item.entity, "local_id": item.local_id, "code": code, "reason": reason, "fix": fix}


def _redact(body: Any) -> Any:
    """Bodies go to history: scrub anything that looks like a secret from every string in them."""
    if isinstance(body, dict):
        return {k: _redact(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact(v) for v in body]
    if isinstance(body, str):
        return scrub_text(body)
    return body


async def sync_connection(
    env: OAuthEnv,
    connection_id: int,
    *,
    trigger: str,
    entity: str | None = None,
    progress: Callable[[Progress], Any] | None = None,
    holder: str | None = None,
    client_options: dict[str, Any] | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> SyncRun:
    """Push the connection's due rows; returns the run's history row. Raises LeaseHeld if another worker has it."""
    from fieldhub.hub.sync.dispatch import HOLDER  # one holder id per process

    # A holder per run: two runs of one connection in the same process must exclude each other too.
    engine = Engine(
        env,
        connection_id,
        trigger,
        entity,
        holder or f"{HOLDER}:{uuid.uuid4().hex[:8]}",
        progress,
        dict(client_options or {}),
        lease_seconds,
    )
    return await engine.run()
