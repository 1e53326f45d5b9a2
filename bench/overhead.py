"""overhead: fieldhub's own cost per record, against an unthrottled QuickBooks emulator in another process.

The emulator runs under uvicorn in a child process on a real port, with QBO's rate rules removed;
the hub reaches it over HTTP (FIELDHUB_PROVIDERS__QUICKBOOKS__BASE_URL, as `fieldhub emulate`). The
hub's shared rate limiter stays in the path (its database work is part of fieldhub's cost) but runs
on a clock scaled by 10^6 so it never makes a request wait. Records are bulk-loaded first (not
measured), then one backfill run pushes them: wall time gives records/s, and the CPU time of this
process alone (time.process_time: user + system, all threads, the emulator excluded) gives CPU ms per
record and the records/s one core sustains. Target: ≥ 2,000 records/s per core.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.hub.sync.engine import sync_connection  # noqa: E402
from fieldhub.providers.quickbooks.emulator import US_REALM  # noqa: E402


async def _main(db: str, params: dict[str, Any]) -> dict[str, Any]:
    async with _qbo.backlog(db, "overhead", params) as work:
        records = work.records
        cpu0, wall0 = time.process_time(), time.perf_counter()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        run = await sync_connection(
            work.env, work.connection_id, trigger="backfill", client_options={"limiter": work.limiter}
        )
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        left = await _qbo.unsynced(work.env, work.connection_id)
        check = _qbo.check_emulator(await _qbo.remote_objects(work.url, US_REALM), records)
    n = records.total
    return {
        "records": records.counts(),
        "run_status": str(run.status) if run else "not run",
        "unsynced_left": left,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "cpu_user_seconds": round(usage1.ru_utime - usage0.ru_utime, 2),
        "cpu_system_seconds": round(usage1.ru_stime - usage0.ru_stime, 2),
        "records_per_second": round(n / wall, 1),
        "cpu_ms_per_record": round(cpu * 1000 / n, 3),
        "records_per_cpu_second": round(n / cpu, 1) if cpu else None,
        **check,
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    params = _qbo.backlog_counts(args, invoices=5_000, customers=500, items=50, pay_every=4)
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "overhead") as db:
        figures = runtime.run(_main(db, params))
    return {
        "benchmark": "overhead",
        "database": _qbo.backend(db),
        "parameters": params,
        "emulator": "QuickBooks, own process (uvicorn, 127.0.0.1), rate rules off",
        "hub_limiter": f"on, clock scaled x{_qbo.NEVER_WAIT:g} so it never waits",
        "log_level": _qbo.LOG_LEVEL,
        **figures,
        "target_records_per_cpu_second": 2000,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
