"""Embedding a business's history into billing memory: what `fieldhub memory backfill` runs.

The records are those a status change would have embedded (invoices sent, partly paid or paid; estimates sent,
approved or declined), optionally issued on or after a date, that have no vector yet under the business's
embedder. `plan` counts them and their tokens and prices them before anything is spent (Voyage's price per
token; $0 and a time estimate for the local model); `run` embeds them in batches, each committed with its
vectors, so a run killed at any point loses at most the batch in flight and the next run takes up exactly the
records still without a vector: a record is never stored twice (one row per record and model, by constraint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.memory import documents, store
from fieldhub.capabilities.memory.embedders import Embedder, approx_tokens, embedder_for
from fieldhub.capabilities.memory.models import MemoryVector
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.hub.oauth.env import OAuthEnv

INVOICE_STATES = (InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID)
ESTIMATE_STATES = (EstimateStatus.SENT, EstimateStatus.APPROVED, EstimateStatus.DECLINED)
COUNT_CHUNK = 500
SAMPLE = 32  # documents timed for the local model's estimate


@dataclass
class Plan:
    tenant_id: int
    embedder: Embedder
    records: list[tuple[str, int]]  # (entity, id) without a vector yet, oldest id first
    tokens: int
    already: int  # records of the selection that have their vector
    rate: float  # records a second: measured on a sample for the local model, the provider's figure otherwise

    @property
    def cost_usd(self) -> Decimal:
        return (Decimal(self.tokens) * self.embedder.usd_per_million_tokens / Decimal(1_000_000)).quantize(
            Decimal("0.0001")
        )

    @property
    def seconds(self) -> float:
        return len(self.records) / self.rate if self.rate else 0.0


async def _missing(
    session: AsyncSession, tenant_id: int, model: str, since: date | None
) -> tuple[list[tuple[str, int]], int]:
    out: list[tuple[str, int]] = []
    already = 0
    for entity, table, states in (("invoice", Invoice, INVOICE_STATES), ("estimate", Estimate, ESTIMATE_STATES)):
        vector = and_(
            MemoryVector.tenant_id == tenant_id,
            MemoryVector.entity == entity,
            MemoryVector.record_id == table.id,
            MemoryVector.model == model,
        )
        stmt = (
            select(table.id, MemoryVector.id)
            .outerjoin(MemoryVector, vector)
            .where(table.tenant_id == tenant_id, table.status.in_(list(states)))
            .order_by(table.id)
        )
        if since is not None:
            stmt = stmt.where(table.issue_date >= since)
        for record_id, vector_id in (await session.execute(stmt)).all():
            if vector_id is None:
                out.append((entity, record_id))
            else:
                already += 1
    return out, already


async def plan(env: OAuthEnv, tenant_id: int, since: date | None = None) -> Plan:
    embedder = await embedder_for(env, tenant_id)
    sample: list[str] = []
    async with env.sessionmaker() as session:
        records, already = await _missing(session, tenant_id, embedder.model, since)
        tokens = 0
        for start in range(0, len(records), COUNT_CHUNK):
            for doc in await _documents(session, tenant_id, records[start : start + COUNT_CHUNK]):
                tokens += approx_tokens(doc.text)
                if len(sample) < SAMPLE:
                    sample.append(doc.text)
    rate = embedder.texts_per_second
    if sample and not embedder.usd_per_million_tokens:
        # The local model's speed is this machine's: time a sample (nothing is stored, nothing is spent).
        await embedder.embed(sample[:2])  # loads the model
        started = time.perf_counter()
        await embedder.embed(sample)
        rate = len(sample) / max(1e-6, time.perf_counter() - started)
    return Plan(tenant_id, embedder, records, tokens, already, rate)


async def _documents(session: AsyncSession, tenant_id: int, records: list[tuple[str, int]]) -> list[documents.Document]:
    docs: list[documents.Document] = []
    for entity in ("invoice", "estimate"):
        ids = [rid for e, rid in records if e == entity]
        if ids:
            docs += await documents.documents(session, tenant_id, entity, ids)
    return docs


async def run(env: OAuthEnv, work: Plan, *, batch: int = 64, advance: Callable[[int], None] | None = None) -> int:
    """Embed the plan's records, a committed batch at a time; returns how many were stored."""
    stored = 0
    for start in range(0, len(work.records), batch):
        chunk = work.records[start : start + batch]
        async with env.sessionmaker() as session:
            docs = await _documents(session, work.tenant_id, chunk)
            # A record another process embedded since the plan was made is left as it is.
            have = set(
                (
                    await session.execute(
                        select(MemoryVector.entity, MemoryVector.record_id).where(
                            MemoryVector.tenant_id == work.tenant_id,
                            MemoryVector.model == work.embedder.model,
                            MemoryVector.record_id.in_([d.record_id for d in docs]),
                        )
                    )
                ).all()
            )
            docs = [d for d in docs if (d.entity, d.record_id) not in have]
            if docs:
                embedded = await work.embedder.embed([d.text for d in docs])
                for i, doc in enumerate(docs):
                    await store.replace_vector(
                        session,
                        work.tenant_id,
                        doc.entity,
                        doc.record_id,
                        model=work.embedder.model,
                        vector=embedded.vectors[i],
                        text=doc.text,
                        tokens=approx_tokens(doc.text),
                        record_version=doc.version,
                        reason="backfill",
                    )
                await session.commit()
                stored += len(docs)
        if advance is not None:
            advance(len(chunk))
    return stored
