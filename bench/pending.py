"""pending: time to find due work among 1,000,000 synced ledger rows with 100 pending.

Builds a fresh database (SQLite file by default, or --database-url), migrates it, bulk-loads one
connection's ledger with `rows` synced rows and `pending` due ones spread through the id range, then
times `repeat` times each of the two queries that find pending work, one round trip each:

- `lookup`: the run's first query, how many rows of each entity are due on the connection
  (hub/sync/engine.due_counts; the run then walks only those entities);
- `sweep`: the dispatcher's query, which connections have due work (hub/sync/dispatch.due_connections).

Target: ≤ 5 ms each. The JSON carries each query's plan (EXPLAIN) to show the index it uses.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.db import make_engine, make_sessionmaker  # noqa: E402
from fieldhub.hub.sync.dispatch import due_connections, due_query  # noqa: E402
from fieldhub.hub.sync.engine import due_counts, due_counts_query  # noqa: E402
from fieldhub.hub.sync.models import LedgerRow  # noqa: E402

ENTITIES = ("customer", "item", "invoice", "payment")


async def _load(url: str, rows: int, pending: int) -> int:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        tenant_id, connection_id = await _qbo.bare_connection(session)
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


async def _explain(session: Any, statement: Any, dialect: str) -> list[str]:
    sql = str(statement.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    if dialect == "postgresql":
        rows = await session.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql))
        return [str(r[0]) for r in rows]
    rows = await session.execute(text("EXPLAIN QUERY PLAN " + sql))
    return [str(r[-1]) for r in rows]


async def _measure(url: str, connection_id: int, repeat: int, expected: int) -> dict[str, Any]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    env = SimpleNamespace(engine=engine, sessionmaker=sessionmaker)  # what due_connections needs of an OAuthEnv
    lookups, sweeps = [], []
    async with sessionmaker() as session:
        await due_counts(session, connection_id, ENTITIES)  # warm the connection and the page cache
        await due_connections(env)  # type: ignore[arg-type]
        for _ in range(repeat):
            start = time.perf_counter()
            found = sum((await due_counts(session, connection_id, ENTITIES)).values())
            lookups.append((time.perf_counter() - start) * 1000)
            if found != expected:
                raise AssertionError(f"found {found} due rows, expected {expected}")
            start = time.perf_counter()
            connections = await due_connections(env)  # type: ignore[arg-type]
            sweeps.append((time.perf_counter() - start) * 1000)
            if connections != [connection_id]:
                raise AssertionError(f"sweep found {connections}")
        dialect = engine.dialect.name
        plans = {
            "lookup": await _explain(session, due_counts_query(connection_id, ENTITIES), dialect),
            "sweep": await _explain(session, due_query(), dialect),
        }
    await engine.dispose()
    return {"lookup": lookups, "sweep": sweeps, "plans": plans}


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": round(statistics.median(values), 3),
        "p99": round(values[min(len(values) - 1, int(len(values) * 0.99))], 3),
        "max": round(values[-1], 3),
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    rows = int(args.get("rows", 1_000_000))
    pending = int(args.get("pending", 100))
    repeat = int(args.get("repeat", 50))
    load_start = [round(x, 2) for x in os.getloadavg()]
    with _qbo.scratch_database(args.get("database_url", ""), "pending") as url:
        started = time.perf_counter()
        connection_id = runtime.run(_load(url, rows, pending))
        load_s = time.perf_counter() - started
        measured = runtime.run(_measure(url, connection_id, repeat, pending))
    lookup, sweep = _ms(measured["lookup"]), _ms(measured["sweep"])
    return {
        "benchmark": "pending",
        "database": url.split(":", 1)[0],
        "synced_rows": rows,
        "pending_rows": pending,
        "load_seconds": round(load_s, 1),
        "lookup_ms_p50": lookup["p50"],
        "lookup_ms_p99": lookup["p99"],
        "lookup_ms_max": lookup["max"],
        "sweep_ms_p50": sweep["p50"],
        "sweep_ms_p99": sweep["p99"],
        "sweep_ms_max": sweep["max"],
        "target_ms": 5,
        "repeat": repeat,
        "plan_lookup": measured["plans"]["lookup"],
        "plan_sweep": measured["plans"]["sweep"],
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
