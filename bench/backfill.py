"""backfill: 10,000 invoices with their customers, items and payments into a QuickBooks emulator enforcing QBO's limits.

The emulator runs in its own process (uvicorn on a loopback port), as QuickBooks is another machine,
and enforces QuickBooks Online's published limits per realm — 500 requests a minute, 10 in
flight, batches of at most 30 operations, 40 batch requests a minute — on its clock, and the hub's
shared rate limiter meters on the same scaled clock: `--time-scale 60` makes an emulated minute last
one real second for both. The records are written first through the core services (the ledger is
marked by the domain events, as in production); then a backfill run pushes them all.

Ceiling: the fastest any client could push this workload within the limits. Customers, items,
invoices and payments travel in batches of 30 (B = Σ ceil(n / 30) batch requests), plus the run's
few set-up reads (S). Every request counts against the 500 a minute and batch requests also against
the 40 a minute. The limits are sliding windows, so the first 40 batches may go at once and the k-th
no sooner than floor((k - 1) / 40) minutes in: the shortest possible time is the start of the last
request, T = max(floor((B - 1) / 40), floor((B + S - 1) / 500)) minutes, and the ceiling rate is
records / T. `achieved_over_ceiling` is that ideal time over the measured one (none when T is 0: a
workload that fits in one window is not held back by the limits at all).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.hub import registry  # noqa: E402
from fieldhub.hub.ratelimit import RateLimiter  # noqa: E402
from fieldhub.hub.sync.engine import sync_connection  # noqa: E402
from fieldhub.hub.sync.models import LedgerRow, LedgerState  # noqa: E402
from fieldhub.providers.quickbooks.emulator import US_REALM  # noqa: E402

LOG_SIZE = 50_000  # the emulator keeps this many requests in its log: every one of a 10,000-invoice backfill


def ceiling(counts: dict[str, int], *, per_minute: int, batch_size: int, batch_per_minute: int) -> dict[str, float]:
    batches = sum(math.ceil(counts[k] / batch_size) for k in ("customers", "items", "invoices", "payments"))
    singles = _qbo.SETUP_REQUESTS
    minutes = max((batches - 1) // batch_per_minute, (batches + singles - 1) // per_minute)
    return {"batch_requests": batches, "single_requests": singles, "ideal_minutes": minutes}


async def _unsynced(env: Any, connection_id: int) -> int:
    async with env.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(LedgerRow)
                .where(LedgerRow.connection_id == connection_id, LedgerRow.state != LedgerState.SYNCED)
            )
            or 0
        )


async def _main(db: str, args: dict[str, Any]) -> dict[str, Any]:
    scale = float(args["time_scale"])
    # Its own process, as QuickBooks is another machine: the hub's process does the hub's work only.
    async with _qbo.emulator_process(time_scale=scale, log_size=LOG_SIZE) as (url, emulator_pid):
        env = _qbo.OAuthEnv.standalone(_qbo.make_settings(db, keys=_qbo.new_key(), emulator_url=url))
        _qbo.subscribe_ledger()
        try:
            tenant_id = await _qbo.create_tenant(env, "backfill")
            connection_id = await _qbo.connect(env, tenant_id)
            started = time.perf_counter()
            records = await _qbo.write_records(env, tenant_id, connection_id, **_qbo.workload(args))
            setup_s = time.perf_counter() - started
            runtime.tune_gc_after_startup()  # as `fieldhub worker` does once started; the loaded records are set-up too
            limiter = RateLimiter(env.sessionmaker, time_scale=scale)
            runs = 0
            started, cpu0, emulator_cpu0 = time.perf_counter(), time.process_time(), _qbo.cpu_seconds(emulator_pid)
            while True:
                runs += 1
                await sync_connection(env, connection_id, trigger="backfill", client_options={"limiter": limiter})
                if not await _unsynced(env, connection_id) or runs >= args["max_runs"]:
                    break
            elapsed = time.perf_counter() - started
            hub_cpu, emulator_cpu = time.process_time() - cpu0, _qbo.cpu_seconds(emulator_pid) - emulator_cpu0
            left = await _unsynced(env, connection_id)
            api = [r for r in await _qbo.emulator_requests(url) if "/v3/company/" in r["path"]]
            return {
                "records": records.counts(),
                "setup_seconds": round(setup_s, 1),
                "seconds": round(elapsed, 2),
                # Busy shares of the run's wall time: near 1.0, that process is what holds the rate back.
                "hub_cpu_seconds": round(hub_cpu, 2),
                "emulator_cpu_seconds": round(emulator_cpu, 2),
                "runs": runs,
                "unsynced_left": left,
                "requests": len(api),
                "batch_requests_sent": sum(1 for r in api if r["path"].rstrip("/").endswith("/batch")),
                "http_429": sum(1 for r in api if r["status"] == 429),
                "records_total": records.total,
                **_qbo.check_emulator(await _qbo.remote_objects(url, US_REALM), records),
            }
        finally:
            await env.engine.dispose()


def run(args: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        **_qbo.backlog_counts(args, invoices=10_000, customers=1_000, items=50, pay_every=4),
        "time_scale": float(args.get("time_scale", 60)),
        "max_runs": int(args.get("max_runs", 20)),
    }
    api = registry.get("quickbooks").api
    assert api is not None and api.rate_limit_per_minute and api.batch_size and api.batch_per_minute
    limits = {
        "per_minute": api.rate_limit_per_minute,
        "concurrency": api.concurrency,
        "batch_size": api.batch_size,
        "batch_per_minute": api.batch_per_minute,
    }
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "backfill") as db:
        figures = runtime.run(_main(db, params))
    ideal = ceiling(
        figures["records"],
        per_minute=limits["per_minute"],
        batch_size=limits["batch_size"],
        batch_per_minute=limits["batch_per_minute"],
    )
    emulated_minutes = figures["seconds"] * params["time_scale"] / 60
    achieved = figures["records_total"] / emulated_minutes if emulated_minutes else 0.0
    ceiling_rate = figures["records_total"] / ideal["ideal_minutes"] if ideal["ideal_minutes"] else None
    return {
        "benchmark": "backfill",
        "database": _qbo.backend(db),
        "parameters": params,
        "qbo_limits": limits,
        "emulator": "QuickBooks, own process (uvicorn, 127.0.0.1), QBO limits enforced on the scaled clock",
        **figures,
        "emulated_minutes": round(emulated_minutes, 2),
        "ideal_minutes": round(ideal["ideal_minutes"], 2),
        "ideal_batch_requests": ideal["batch_requests"],
        "ideal_single_requests": ideal["single_requests"],
        "achieved_records_per_minute": round(achieved, 1),
        "ceiling_records_per_minute": round(ceiling_rate, 1) if ceiling_rate else None,
        "achieved_over_ceiling": round(achieved / ceiling_rate, 3) if ceiling_rate else None,
        "target_achieved_over_ceiling": 0.95,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
