"""Embedding on status transitions, fire-and-forget through a durable queue.

`on_domain_event` is subscribed to core events at start (beside the sync ledger). With
FIELDHUB_RAG_BILLING_EMBED_ENABLED=true (the session's settings, db.make_sessionmaker), an invoice or estimate
becoming SENT, and a payment recorded on an invoice, add a `memory_jobs` row in the same transaction: nothing
is embedded there, nothing can fail there, so the invoice never waits for nor fails on its embedding. Editing a
draft, approving, voiding add nothing. A record already waiting is not queued twice (its job embeds it as it is
when taken).

`embed_due` takes the jobs that are due, embeds each business's records with its embedder (embedders.py) and
replaces their vectors; a failure stays on the job with its error and is retried with back-off, then shown as
failed (`status`). It runs as the `memory.embed` periodic task (tasks.py): in the embedded dispatcher of
`fieldhub serve` and in `fieldhub worker`s alike, once per round across processes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.memory import documents, store
from fieldhub.capabilities.memory.embedders import Embedder, approx_tokens, embedder_for
from fieldhub.capabilities.memory.models import MemoryJob, MemoryJobState, MemoryVector
from fieldhub.core.events import DomainEvent
from fieldhub.db import SETTINGS_KEY, utcnow
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.log import get_logger, scrub_text

log = get_logger(__name__)
# (entity, event kind) → why it is embedded
TRANSITIONS = {
    ("invoice", "sent"): "sent",
    ("invoice", "paid"): "paid",
    ("invoice", "partially_paid"): "paid",
    ("estimate", "sent"): "sent",
}
MAX_ATTEMPTS = 8
BATCH = 64


def enabled(session: AsyncSession) -> bool:
    settings = session.info.get(SETTINGS_KEY)
    return bool(settings is not None and settings.rag_billing_embed_enabled)


async def on_domain_event(session: AsyncSession, event: DomainEvent) -> None:
    reason = TRANSITIONS.get((event.entity, event.kind))
    if reason is None or not enabled(session):
        return
    waiting = await session.scalar(
        select(MemoryJob.id).where(
            MemoryJob.tenant_id == event.tenant_id,
            MemoryJob.entity == event.entity,
            MemoryJob.record_id == event.record_id,
            MemoryJob.state == MemoryJobState.PENDING,
            MemoryJob.attempts == 0,
        )
    )
    if waiting is not None:
        return
    session.add(MemoryJob(tenant_id=event.tenant_id, entity=event.entity, record_id=event.record_id, reason=reason))


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


async def embed_due(env: OAuthEnv, *, embedder: Embedder | None = None, limit: int = 500) -> int:
    """Embed what is due; returns how many records were embedded. Never raises for one business's failure."""
    async with env.sessionmaker() as session:
        jobs = list(
            await session.scalars(
                select(MemoryJob)
                .where(MemoryJob.state == MemoryJobState.PENDING, MemoryJob.next_attempt_at <= utcnow())
                .order_by(MemoryJob.id)
                .limit(limit)
            )
        )
    by_tenant: dict[int, list[MemoryJob]] = defaultdict(list)
    for job in jobs:
        by_tenant[job.tenant_id].append(job)
    done = 0
    for tenant_id, tenant_jobs in by_tenant.items():
        for start in range(0, len(tenant_jobs), BATCH):
            done += await _embed_jobs(env, tenant_id, tenant_jobs[start : start + BATCH], embedder)
    return done


async def _embed_jobs(env: OAuthEnv, tenant_id: int, jobs: list[MemoryJob], embedder: Embedder | None) -> int:
    try:
        model = embedder or await embedder_for(env, tenant_id)
        async with env.sessionmaker() as session:
            docs: list[documents.Document] = []
            for entity in ("invoice", "estimate"):
                ids = sorted({j.record_id for j in jobs if j.entity == entity})
                docs += await documents.documents(session, tenant_id, entity, ids) if ids else []
        embedded = await model.embed([d.text for d in docs]) if docs else None
    except Exception as e:  # noqa: BLE001 - a failure is the job's, kept with its error and retried
        await _failed(env, jobs, f"{type(e).__name__}: {e}")
        return 0
    reasons = {(j.entity, j.record_id): j.reason for j in jobs}
    async with env.sessionmaker() as session:
        for i, doc in enumerate(docs):
            assert embedded is not None
            await store.replace_vector(
                session,
                tenant_id,
                doc.entity,
                doc.record_id,
                model=model.model,
                vector=embedded.vectors[i],
                text=doc.text,
                tokens=approx_tokens(doc.text),
                record_version=doc.version,
                reason=reasons.get((doc.entity, doc.record_id), ""),
            )
        for job in jobs:
            row = await session.get(MemoryJob, job.id)
            if row is not None:
                row.state, row.done_at, row.error = MemoryJobState.DONE, utcnow(), ""
                row.attempts += 1
        await session.commit()
    log.info("memory.embedded", tenant_id=tenant_id, records=len(docs), model=model.model)
    return len(docs)


async def _failed(env: OAuthEnv, jobs: list[MemoryJob], error: str) -> None:
    error = scrub_text(error)[:1000]
    async with env.sessionmaker() as session:
        for job in jobs:
            row = await session.get(MemoryJob, job.id)
            if row is None:
                continue
            row.attempts += 1
            row.error = error
            row.next_attempt_at = utcnow() + backoff(row.attempts)
            if row.attempts >= MAX_ATTEMPTS:
                row.state = MemoryJobState.FAILED
        await session.commit()
    log.warning("memory.embed_failed", tenant_id=jobs[0].tenant_id, records=len(jobs), error=error)


@dataclass(frozen=True)
class Status:
    embedded: int
    waiting: int
    failed: int
    last_error: str
    model_counts: dict[str, int]


async def status(session: AsyncSession, tenant_id: int) -> Status:
    """What the business's memory holds and what is waiting or failed: shown with the ask box."""
    states = dict(
        (
            await session.execute(
                select(MemoryJob.state, func.count())
                .where(MemoryJob.tenant_id == tenant_id, MemoryJob.state != MemoryJobState.DONE)
                .group_by(MemoryJob.state)
            )
        ).all()
    )
    last_error = await session.scalar(
        select(MemoryJob.error)
        .where(MemoryJob.tenant_id == tenant_id, MemoryJob.error != "", MemoryJob.state != MemoryJobState.DONE)
        .order_by(MemoryJob.id.desc())
        .limit(1)
    )
    models: dict[str, Any] = dict(
        (
            await session.execute(
                select(MemoryVector.model, func.count())
                .where(MemoryVector.tenant_id == tenant_id)
                .group_by(MemoryVector.model)
            )
        ).all()
    )
    return Status(
        embedded=sum(models.values()),
        waiting=int(states.get(MemoryJobState.PENDING, 0)),
        failed=int(states.get(MemoryJobState.FAILED, 0)),
        last_error=last_error or "",
        model_counts=models,
    )


async def retry_failed(session: AsyncSession, tenant_id: int) -> int:
    """Failed jobs back to the queue, due now (the Retry on the memory box)."""
    rows = list(
        await session.scalars(
            select(MemoryJob).where(MemoryJob.tenant_id == tenant_id, MemoryJob.state == MemoryJobState.FAILED)
        )
    )
    for row in rows:
        row.state, row.attempts, row.next_attempt_at = MemoryJobState.PENDING, 0, utcnow()
    return len(rows)
