"""pending: time for the engine to find due work among 1,000,000 synced ledger rows with 100 pending.

Builds a fresh database (SQLite file by default, or --database-url), migrates it, bulk-loads one
connection's ledger with `rows` synced rows and `pending` due ones spread through the id range, then
times the engine's own due-work query (hub/sync/engine.due_rows) `repeat` times. Target: ≤ 5 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from fieldhub.core.accounts import service as accounts
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.engine import due_rows
from fieldhub.hub.sync.models import LedgerRow
from fieldhub.migrate import upgrade

ENTITIES = ("customer", "item", "invoice", "payment")


async def _load(url: str, rows: int, pending: int) -> int:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        tenant_id = (await accounts.create_tenant(session, name="Bench", slug="bench")).id
        connection = Connection(tenant_id=tenant_id, provider="quickbooks", account_id="1", account_name="Bench")
        session.add(connection)
        await session.commit()
        connection_id = connection.id
        now = datetime.now(UTC)
        every = max(1, rows // max(1, pending))
        batch: list[dict[str, Any]] = []
        for i in range(rows + pending):
            is_pending = i % every == 0 and i // every < pending
            batch.append(
                {
                    "tenant_id": tenant_id,
                    "connection_id": connection_id,
                    "entity": ENTITIES[i % len(ENTITIES)],
                    "local_id": i,
                    "remote_id": None if is_pending else str(i),
                    "local_version": 1,
                    "synced_version": 0 if is_pending else 1,
                    "state": "pending" if is_pending else "synced",
                    "operation": "upsert",
                    "attempts": 0,
                    "next_attempt_at": now - timedelta(seconds=1),
                    "error_code": "",
                    "error_reason": "",
                    "error_fix": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 20_000:
                await session.execute(insert(LedgerRow), batch)
                batch.clear()
        if batch:
            await session.execute(insert(LedgerRow), batch)
        await session.commit()
        if engine.dialect.name == "postgresql":
            await session.execute(text("ANALYZE sync_ledger"))
        else:
            await session.execute(text("ANALYZE"))
        await session.commit()
    await engine.dispose()
    return connection_id


async def _measure(url: str, connection_id: int, repeat: int, expected: int) -> list[float]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    timings = []
    async with sessionmaker() as session:
        await due_rows(session, connection_id, ENTITIES[0])  # warm the connection and the page cache
        for _ in range(repeat):
            start = time.perf_counter()
            found = 0
            for entity in ENTITIES:
                found += len(await due_rows(session, connection_id, entity))
            timings.append((time.perf_counter() - start) * 1000)
            if found != expected:
                raise AssertionError(f"found {found} due rows, expected {expected}")
    await engine.dispose()
    return timings


def run(args: dict[str, Any]) -> dict[str, Any]:
    rows = int(args.get("rows", 1_000_000))
    pending = int(args.get("pending", 100))
    repeat = int(args.get("repeat", 50))
    url = args.get("database_url") or ""
    tmp = None
    if not url:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'pending.db'}"
    upgrade(url)
    started = time.perf_counter()
    connection_id = asyncio.run(_load(url, rows, pending))
    load_s = time.perf_counter() - started
    timings = asyncio.run(_measure(url, connection_id, repeat, pending))
    if tmp:
        tmp.cleanup()
    timings.sort()
    return {
        "benchmark": "pending",
        "database": url.split(":", 1)[0],
        "synced_rows": rows,
        "pending_rows": pending,
        "load_seconds": round(load_s, 1),
        "lookup_ms_p50": round(statistics.median(timings), 3),
        "lookup_ms_p99": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 3),
        "lookup_ms_max": round(timings[-1], 3),
        "target_ms": 5,
        "repeat": repeat,
    }
