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

import asyncio
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub.hub.ratelimit import RateLimiter  # noqa: E402
from fieldhub.hub.sync.engine import sync_connection  # noqa: E402
from fieldhub.providers.quickbooks.emulator import US_REALM  # noqa: E402

NEVER_WAIT = 1e6


async def _main(db: str, params: dict[str, Any]) -> dict[str, Any]:
    async with _qbo.emulator_process(unlimited=True) as (url, _pid):
        settings = _qbo.make_settings(db, keys=_qbo.new_key(), emulator_url=url)
        env = _qbo.OAuthEnv.standalone(settings)
        try:
            tenant_id = await _qbo.create_tenant(env, "overhead")
            connection_id = await _qbo.connect(env, tenant_id)
            records = await _qbo.write_records(
                env,
                tenant_id,
                connection_id,
                invoices=params["invoices"],
                customers=params["customers"],
                items=params["items"],
                pay_every=params["pay_every"],
            )
            limiter = RateLimiter(env.sessionmaker, time_scale=NEVER_WAIT)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            run = await sync_connection(env, connection_id, trigger="backfill", client_options={"limiter": limiter})
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            left = await _qbo.unsynced(env, connection_id)
            check = _qbo.check_emulator(await _qbo.remote_objects(url, US_REALM), records)
        finally:
            await env.engine.dispose()
    n = records.total
    return {
        "records": records.counts(),
        "run_status": str(run.status),
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
    params = {
        "invoices": int(args.get("invoices", 5_000)),
        "customers": int(args.get("customers", 500)),
        "items": int(args.get("items", 50)),
        "pay_every": int(args.get("pay_every", 4)),
    }
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "overhead") as db:
        figures = asyncio.run(_main(db, params))
    return {
        "benchmark": "overhead",
        "database": _qbo.backend(db),
        "parameters": params,
        "emulator": "QuickBooks, own process (uvicorn, 127.0.0.1), rate rules off",
        "hub_limiter": f"on, clock scaled x{NEVER_WAIT:g} so it never waits",
        "log_level": _qbo.LOG_LEVEL,
        **figures,
        "target_records_per_cpu_second": 2000,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
