"""scale: 1 vs 2 `fieldhub worker` processes on PostgreSQL over 20 QuickBooks connections.

Each round gets a fresh scratch database and a fresh QuickBooks emulator in its own process with 20
companies (one realm per connection, QBO's per-realm limits on) and a fixed `latency` before every
company-API answer — a realistic round trip to Intuit (default 50 ms). The latency is what makes
this a test of the worker design rather than of CPU: on a 2-core machine that also runs the
emulator and PostgreSQL, a zero-latency emulator would measure CPU contention between processes.

Twenty tenants are connected (OAuth through the emulator) and their records bulk-loaded with the
ledger rows pending but not yet due; then N workers are started (`python -m fieldhub.cli worker
--concurrency C`, C from `--set concurrency=`, 4 by default as the worker's own), given a few seconds
to come up; then the clock starts, every row is made due at once, a job is deferred per connection (as
the web process does after a commit) and the clock runs until the ledger holds no unsynced row. Each
round reports the cores the workers, the emulator and the whole machine kept busy meanwhile. Target:
2 workers ≥ 1.8 × the rate of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import update  # noqa: E402

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.db import utcnow  # noqa: E402
from fieldhub.hub.sync import queue  # noqa: E402
from fieldhub.hub.sync.models import LedgerRow  # noqa: E402

WARMUP_SECONDS = 4.0  # workers import and connect before any row is due


async def _round(db: str, workers: int, params: dict[str, Any]) -> dict[str, Any]:
    keys = _qbo.new_key()
    n = params["connections"]
    async with _qbo.emulator_process(realms=n, latency=params["latency"], log_size=100) as (url, emulator_pid):
        settings = _qbo.make_settings(db, keys=keys, emulator_url=url)
        env = _qbo.OAuthEnv.standalone(settings)
        procs: list[asyncio.subprocess.Process] = []
        try:
            all_records = []
            connection_ids = []
            for c in range(n):
                tenant_id = await _qbo.create_tenant(env, f"scale{c}")
                connection_id = await _qbo.connect(env, tenant_id, _qbo.realm_id(c))
                connection_ids.append(connection_id)
                all_records.append(await _qbo.write_records(env, tenant_id, connection_id, **_qbo.workload(params)))
            async with env.sessionmaker() as session:  # written, not due yet: the workers start idle
                await session.execute(update(LedgerRow).values(next_attempt_at=utcnow().replace(year=2100)))
                await session.commit()
            worker_env = {
                **os.environ,
                "FIELDHUB_MODE": "demo",
                "FIELDHUB_DATABASE_URL": db,
                "FIELDHUB_ENCRYPTION_KEYS": keys,
                "FIELDHUB_PUBLIC_URL": _qbo.HUB_URL,
                "FIELDHUB_PROVIDERS__QUICKBOOKS__BASE_URL": url,
                "FIELDHUB_LOG_LEVEL": _qbo.LOG_LEVEL,
                "FIELDHUB_EMBEDDED_WORKERS": "0",
            }
            for _ in range(workers):
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "fieldhub.cli",
                        "worker",
                        "--concurrency",
                        str(params["concurrency"]),
                        env=worker_env,
                        cwd=_qbo.ROOT,
                    )
                )
            await asyncio.sleep(params["warmup"])
            started = time.perf_counter()
            # Who was busy while the clock ran: the workers, the emulator, and the whole machine (2 cores here).
            cpu0 = [_qbo.cpu_seconds(p.pid) for p in procs], _qbo.cpu_seconds(emulator_pid), _qbo.machine_cpu_seconds()
            async with env.sessionmaker() as session:
                await session.execute(update(LedgerRow).values(next_attempt_at=utcnow()))
                await session.commit()
            # As the web process does after a commit: a job per connection (else the workers' sweep finds it).
            jobs = queue.make_app(env)
            async with jobs.open_async():
                for connection_id in connection_ids:
                    await queue.defer_sync(jobs, connection_id, "realtime")
            while await _qbo.unsynced(env) and time.perf_counter() - started < params["timeout"]:
                if any(p.returncode is not None for p in procs):
                    raise RuntimeError("a worker exited during the round")
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            workers_cpu = sum(_qbo.cpu_seconds(p.pid) for p in procs) - sum(cpu0[0])
            emulator_cpu = _qbo.cpu_seconds(emulator_pid) - cpu0[1]
            machine_cpu = _qbo.machine_cpu_seconds() - cpu0[2]
            left = await _qbo.unsynced(env)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 15)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            await env.engine.dispose()
        check = {"duplicates": 0, "missing": 0, "amount_mismatches": 0}
        for c, records in enumerate(all_records):
            for key, value in _qbo.check_emulator(await _qbo.remote_objects(url, _qbo.realm_id(c)), records).items():
                check[key] += value
    total = sum(r.total for r in all_records)
    return {
        "workers": workers,
        "records": total,
        "seconds": round(elapsed, 2),
        "records_per_second": round(total / elapsed, 1),
        # Cores busy on average while the clock ran (CPU seconds / wall seconds).
        "workers_cores": round(workers_cpu / elapsed, 2),
        "emulator_cores": round(emulator_cpu / elapsed, 2),
        "machine_cores_busy": round(machine_cpu / elapsed, 2),
        "machine_cores": os.cpu_count(),
        "unsynced_left": left,
        **check,
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    url = args.get("database_url", "")
    if not url.startswith("postgres"):
        raise SystemExit("scale runs on PostgreSQL: pass --database-url postgresql+asyncpg://user@host:5432/postgres")
    params: dict[str, Any] = {
        "connections": int(args.get("connections", 20)),
        **_qbo.backlog_counts(args, invoices=100, customers=10, items=5, pay_every=4),
        "latency": float(args.get("latency", 0.05)),
        "concurrency": int(args.get("concurrency", 4)),  # `fieldhub worker --concurrency`, its default
        "timeout": float(args.get("timeout", 600)),
        "warmup": float(args.get("warmup", WARMUP_SECONDS)),
    }
    load_start = _qbo.loadavg()
    rounds = []
    for workers in (1, 2):
        with _qbo.scratch_database(url, f"scale{workers}") as db:
            rounds.append(runtime.run(_round(db, workers, params)))
    one, two = rounds
    return {
        "benchmark": "scale",
        "database": _qbo.backend(db),
        "parameters": params,
        "emulator": (
            f"QuickBooks, own process, {params['connections']} realms, QBO limits on, "
            f"{params['latency'] * 1000:g} ms fixed latency per API request"
        ),
        "worker": (
            "python -m fieldhub.cli worker: procrastinate jobs, one per connection run, "
            f"concurrency {params['concurrency']}"
        ),
        "one_worker": one,
        "two_workers": two,
        "speedup": round(two["records_per_second"] / one["records_per_second"], 2),
        "target_speedup": 1.8,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
