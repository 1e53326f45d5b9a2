"""Where billing memory's vectors live: written per record (a re-embed replaces), searched exactly with numpy.

Vectors are float32 bytes in a plain LargeBinary column, so SQLite and PostgreSQL hold and return the same thing
and no extension is needed. Search is exact cosine similarity (vectors are unit length: one matrix product) over
one business's vectors under one model. Each process keeps that matrix in memory (up to CACHE_BYTES over all
businesses, the least recently asked dropped first) and asks the database only whether it changed: (count, max
id) through ix_memory_vectors_tenant_model_id; if rows came or went it reads the ids (an index-only scan) and
the new rows, never the whole matrix again. bench/memory-ask.py measures it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.memory.models import MemoryVector

ENTITIES = ("invoice", "estimate")


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes, dims: int) -> np.ndarray:
    vector = np.frombuffer(blob, dtype="<f4")
    if vector.shape[0] != dims:
        raise ValueError(f"a stored vector has {vector.shape[0]} values, not {dims}")
    return vector


async def replace_vector(
    session: AsyncSession,
    tenant_id: int,
    entity: str,
    record_id: int,
    *,
    model: str,
    vector: np.ndarray,
    text: str,
    tokens: int,
    record_version: int,
    reason: str,
) -> MemoryVector:
    """The record's vector under `model`, replacing any it had (in the caller's transaction)."""
    await session.execute(
        delete(MemoryVector).where(
            MemoryVector.tenant_id == tenant_id,
            MemoryVector.entity == entity,
            MemoryVector.record_id == record_id,
            MemoryVector.model == model,
        )
    )
    row = MemoryVector(
        tenant_id=tenant_id,
        entity=entity,
        record_id=record_id,
        model=model,
        dims=int(vector.shape[0]),
        vector=to_bytes(vector),
        text=text,
        tokens=tokens,
        record_version=record_version,
        reason=reason,
    )
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class Hit:
    entity: str
    record_id: int
    score: float


@dataclass
class _Matrix:
    count: int = 0
    max_id: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # index into ENTITIES
    records: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vectors: np.ndarray | None = None


_cache: OrderedDict[tuple[str, int, str], _Matrix] = OrderedDict()
_cache_lock = threading.Lock()
# The matrices kept per process, least recently asked dropped first: 100,000 records of the local model are 154 MB.
CACHE_BYTES = 512 * 1024 * 1024


def _keep(key: tuple[str, int, str], matrix: _Matrix) -> None:
    with _cache_lock:
        _cache[key] = matrix
        _cache.move_to_end(key)
        total = sum(m.vectors.nbytes for m in _cache.values() if m.vectors is not None)
        while total > CACHE_BYTES and len(_cache) > 1:
            _, dropped = _cache.popitem(last=False)
            total -= dropped.vectors.nbytes if dropped.vectors is not None else 0


def forget_cache() -> None:
    with _cache_lock:
        _cache.clear()


async def _matrix(session: AsyncSession, tenant_id: int, model: str) -> _Matrix:
    key = (str(session.get_bind().engine.url), tenant_id, model)
    scope = (MemoryVector.tenant_id == tenant_id, MemoryVector.model == model)
    count, max_id = (await session.execute(select(func.count(), func.max(MemoryVector.id)).where(*scope))).one()
    count, max_id = int(count or 0), int(max_id or 0)
    cached = _cache.get(key) or _Matrix()
    if cached.count == count and cached.max_id == max_id and (count == 0 or cached.vectors is not None):
        if key in _cache:
            with _cache_lock:
                _cache.move_to_end(key)
        return cached
    rows = (
        await session.execute(
            select(MemoryVector.id, MemoryVector.entity, MemoryVector.record_id, MemoryVector.dims, MemoryVector.vector)
            .where(*scope, MemoryVector.id > cached.max_id)
            .order_by(MemoryVector.id)
        )
    ).all()
    keep = np.ones(cached.ids.shape[0], dtype=bool)
    if cached.ids.shape[0] + len(rows) != count:
        # Rows went (a re-embed replaced them): keep the cached rows still there, by id.
        live = np.fromiter(await session.scalars(select(MemoryVector.id).where(*scope)), dtype=np.int64)
        keep = np.isin(cached.ids, live)
    new_vectors = [from_bytes(r.vector, r.dims) for r in rows]
    parts = [cached.vectors[keep]] if cached.vectors is not None and keep.any() else []
    if new_vectors:
        parts.append(np.vstack(new_vectors))
    fresh = _Matrix(
        count=count,
        max_id=max_id,
        ids=np.concatenate([cached.ids[keep], np.asarray([r.id for r in rows], dtype=np.int64)]),
        entities=np.concatenate(
            [cached.entities[keep], np.asarray([ENTITIES.index(r.entity) for r in rows], dtype=np.int8)]
        ),
        records=np.concatenate([cached.records[keep], np.asarray([r.record_id for r in rows], dtype=np.int64)]),
        vectors=np.vstack(parts) if parts else None,
    )
    if fresh.ids.shape[0] != count:  # written while we read: start again from nothing next time
        with _cache_lock:
            _cache.pop(key, None)
        return fresh
    _keep(key, fresh)
    return fresh


async def search(session: AsyncSession, tenant_id: int, model: str, query: np.ndarray, k: int = 10) -> list[Hit]:
    """The `k` records of this business most like `query` (a unit vector of `model`), best first."""
    matrix = await _matrix(session, tenant_id, model)
    if matrix.vectors is None or matrix.vectors.shape[0] == 0:
        return []
    scores = matrix.vectors @ np.asarray(query, dtype=np.float32)
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [Hit(ENTITIES[int(matrix.entities[i])], int(matrix.records[i]), float(scores[i])) for i in top]


async def count(session: AsyncSession, tenant_id: int, model: str | None = None) -> int:
    stmt = select(func.count()).select_from(MemoryVector).where(MemoryVector.tenant_id == tenant_id)
    if model is not None:
        stmt = stmt.where(MemoryVector.model == model)
    return int(await session.scalar(stmt) or 0)
