"""history: the sync pages' queries over one connection with 1,000,000 runs in its history.

Builds a fresh database (SQLite file by default, or --database-url), migrates it, bulk-loads one
connection's run history — `runs` runs over the last year, newest every few seconds, 97 % success,
2 % partial, 1 % failed; half for every entity, the rest per entity, with refunds rare (0.1 %) —
and a ledger of `ledger` rows, then times `repeat` times each thing the connection's pages read:

- `first_page`, `deep_page` (continuing from a cursor half-way down), `failed_page` (status filter),
  `rare_entity_page` (refunds), `empty_filter_page` (an entity with no runs at all): Sync History,
  hub/sync/status.history, keyset-paginated;
- `dashboard`: everything the connection's page and health score read (hub/sync/status.sync_status).

Target: the issue's "fast with a million rows"; this benchmark reads it as ≤ 50 ms per page and per
dashboard (p50), a page that feels instant.

Options (--set key=value): runs (1000000), ledger (100000), repeat (30).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.db import make_engine, make_sessionmaker  # noqa: E402
from fieldhub.hub.sync import status  # noqa: E402
from fieldhub.hub.sync.models import LedgerRow, SyncRun  # noqa: E402

ENTITIES = ("customer", "item", "invoice", "payment")
TARGET_MS = 50.0
CONFLICT = {"code": "6240", "reason": "Customer name conflict", "fix": "Rename it here or merge it there"}


def _run_row(i: int, runs: int, tenant_id: int, connection_id: int, now: datetime) -> dict[str, Any]:
    started = now - timedelta(seconds=(runs - i) * 31_536_000 / runs)  # a year, oldest first
    kind = i % 100
    state = "failed" if kind == 0 else "partial" if kind in (1, 2) else "success"
    entity = "refund" if i % 1000 == 7 else ("" if i % 2 else ENTITIES[(i // 2) % len(ENTITIES)])
    return {
        "tenant_id": tenant_id,
        "connection_id": connection_id,
        "trigger": "realtime",
        "direction": "export",
        "entity": entity,
        "created": 1,
        "updated": 0,
        "deleted": 0,
        "failed": 1 if state != "success" else 0,
        "status": state,
        "errors": [{"code": "6240", "reason": "Customer name conflict", "fix": "Rename it"}]
        if state == "failed"
        else [],
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=80),
        "duration_ms": 80,
    }


async def _load(url: str, runs: int, ledger: int) -> tuple[int, int]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        tenant_id, connection_id = await _qbo.bare_connection(session)
        now = datetime.now(UTC)
        batch: list[dict[str, Any]] = []
        for i in range(runs):
            batch.append(_run_row(i, runs, tenant_id, connection_id, now))
            if len(batch) == 20_000:
                await session.execute(insert(SyncRun), batch)
                batch.clear()
        if batch:
            await session.execute(insert(SyncRun), batch)
        rows = [
            {
                "tenant_id": tenant_id,
                "connection_id": connection_id,
                "entity": ENTITIES[i % len(ENTITIES)],
                "local_id": i,
                "remote_id": str(i),
                "local_version": 1,
                "synced_version": 1,
                "state": "synced",
                "operation": "upsert",
                "attempts": 0,
                "next_attempt_at": now,
                "synced_at": now - timedelta(seconds=i),
                "error_code": "",
                "error_reason": "",
                "error_fix": "",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(ledger)
        ]
        for start in range(0, len(rows), 20_000):
            await session.execute(insert(LedgerRow), rows[start : start + 20_000])
        await session.commit()
    # Statistics and, on PostgreSQL, the visibility map as autovacuum leaves them minutes after a bulk
    # insert (PostgreSQL 13+ vacuums on inserts too): without it every index-only count visits the heap.
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    await engine.dispose()
    return tenant_id, connection_id


async def _time(call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    await call()  # warm: the connection, the statement cache, the pages
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
    }


async def _measure(url: str, tenant_id: int, connection_id: int, runs: int, repeat: int) -> dict[str, Any]:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    found: dict[str, Any] = {}
    async with sessionmaker() as session:
        # A cursor half-way down the history: the page a user reaches after many "Older" clicks.
        mid_id = await session.scalar(
            text(
                "SELECT id FROM sync_runs WHERE connection_id = :c ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET :n"
            ),
            {"c": connection_id, "n": runs // 2},
        )
        mid_run = await session.get(SyncRun, mid_id)
        assert mid_run is not None
        cursor = status.encode_cursor(mid_run)

        def page(**kwargs: Any) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                result = await status.history(session, tenant_id, connection_id, **kwargs)
                session.expunge_all()
                return result

            return call

        async def dashboard() -> Any:
            result = await status.sync_status(session, connection_id, list(ENTITIES))
            await session.commit()  # as the page's request does (it keeps the chart's ended days)
            session.expunge_all()
            return result

        checks = {
            "first_page": page(),
            "deep_page": page(after=cursor),
            "failed_page": page(status="failed"),
            "rare_entity_page": page(entity="refund"),
            "empty_filter_page": page(entity="deposit"),
            "dashboard": dashboard,
        }
        for name, call in checks.items():
            found[name] = await _time(call, repeat)
        pages = {
            "first_page": len((await status.history(session, tenant_id, connection_id)).runs),
            "failed_page": len((await status.history(session, tenant_id, connection_id, status="failed")).runs),
            "rare_entity_page": len((await status.history(session, tenant_id, connection_id, entity="refund")).runs),
            "empty_filter_page": len((await status.history(session, tenant_id, connection_id, entity="deposit")).runs),
        }
    await engine.dispose()
    return {"timings": found, "rows_on_page": pages}


async def _main(url: str, args: dict[str, Any]) -> dict[str, Any]:
    runs = int(args.get("runs", 1_000_000))
    ledger = int(args.get("ledger", 100_000))
    repeat = int(args.get("repeat", 30))
    started = time.perf_counter()
    tenant_id, connection_id = await _load(url, runs, ledger)
    load_s = time.perf_counter() - started
    measured = await _measure(url, tenant_id, connection_id, runs, repeat)
    worst = max(t["p50_ms"] for t in measured["timings"].values())
    return {
        "benchmark": "history",
        "database": url.split(":", 1)[0],
        "parameters": {"runs": runs, "ledger": ledger, "repeat": repeat},
        "load_seconds": round(load_s, 1),
        **measured,
        "worst_p50_ms": worst,
        "target_ms": TARGET_MS,
        "met": worst <= TARGET_MS,
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    load_start = [round(x, 2) for x in os.getloadavg()]
    with _qbo.scratch_database(args.get("database_url", ""), "history") as url:
        result = runtime.run(_main(url, args))
    return {**result, "loadavg_start": load_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
