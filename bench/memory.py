"""memory: peak RSS of fieldhub's process during a 100,000-record backfill, and at 10,000 (flatness).

The emulator runs in its own process (its store of 100,000 objects is not fieldhub's memory), with
QBO's rate rules off so the run is not hours long; the hub's limiter stays in the path on a clock
that never waits. Records are bulk-loaded first in chunks of 5,000 (the benchmark keeps no per-record
data of its own: `keep=False`), then one backfill run pushes them. RSS (/proc/self/statm) is sampled
every 100 ms; `rss_mb_at_10k` is the peak up to the moment 10,000 records were done and
`rss_mb_peak` the peak over the whole run. Flat means the second is not much above the first: the
engine streams due rows in bounded chunks and keeps nothing per record after its commit.
Target: ≤ 250 MB and flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.hub.sync.engine import Progress, sync_connection  # noqa: E402


async def _main(db: str, params: dict[str, Any]) -> dict[str, Any]:
    counts = {k: params[k] for k in ("invoices", "customers", "items", "pay_every")}
    async with _qbo.backlog(db, "memory", counts, log_size=100, keep=False) as work:
        records = work.records
        rss_before = _qbo.rss_mb()
        peak = {"all": rss_before, "at_mark": 0.0}
        done = {"n": 0}
        mark = params["mark"]

        def sample() -> None:
            rss = _qbo.rss_mb()
            peak["all"] = max(peak["all"], rss)
            if done["n"] <= mark:
                peak["at_mark"] = max(peak["at_mark"], rss)

        def progress(p: Progress) -> None:
            done["n"] = p.done

        async def sampler() -> None:
            while True:
                sample()
                await asyncio.sleep(0.1)

        task = asyncio.create_task(sampler())
        started = time.perf_counter()
        try:
            run = await sync_connection(
                work.env,
                work.connection_id,
                trigger="backfill",
                progress=progress,
                client_options={"limiter": work.limiter},
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sample()
        elapsed = time.perf_counter() - started
        left = await _qbo.unsynced(work.env, work.connection_id)
        objects = await _qbo.remote_objects(work.url)
    created = sum(len(objects.get(k, {})) for k in ("Invoice", "Payment"))
    return {
        "records": records.counts(),
        "run_status": str(run.status) if run else "not run",
        "unsynced_left": left,
        "seconds": round(elapsed, 1),
        "rss_mb_before_run": rss_before,
        "rss_mb_at_10k": peak["at_mark"],
        "rss_mb_peak": peak["all"],
        "rss_growth_after_10k_mb": round(peak["all"] - peak["at_mark"], 1),
        "ru_maxrss_mb_whole_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # Counted at the emulator: invoices and payments carrying fieldhub's marker, against those written.
        "emulator_invoices_and_payments": created,
        "expected_invoices_and_payments": records.invoice_count + records.payment_count,
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    total = int(args.get("records", 100_000))
    customers = int(args.get("customers", max(total // 100, 1)))
    items = int(args.get("items", 50))
    pay_every = int(args.get("pay_every", 4))
    # records = customers + items + invoices + ceil(invoices / pay_every)
    invoices = max(int((total - customers - items) * pay_every / (pay_every + 1)), 1)
    params = {
        "invoices": invoices,
        "customers": customers,
        "items": items,
        "pay_every": pay_every,
        "mark": int(args.get("mark", min(10_000, total // 2))),
    }
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "memory") as db:
        figures = runtime.run(_main(db, params))
    return {
        "benchmark": "memory",
        "database": _qbo.backend(db),
        "parameters": params,
        "emulator": "QuickBooks, own process (uvicorn, 127.0.0.1), rate rules off",
        **figures,
        "target_rss_mb": 250,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
