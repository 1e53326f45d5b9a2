"""phases: where a backfill's CPU goes, per record, phase by phase — the breakdown behind `overhead`.

The same set-up as `overhead` (the emulator in its own process, QBO's rate rules off, the hub's
limiter on a clock that never waits), at a smaller size. Each phase of the engine is wrapped in a
timer of this process's CPU time (time.process_time: user + system, every thread); the engine runs
one connection at a time, and here one step at a time (Engine(in_flight=0): the next batch is not
sent while a reply is settled, as it is in production), so nothing else of the hub runs inside a
phase. Phases nest (the limiter's slot is inside the HTTP request, which is inside the batch push):
each is reported on its own.

Options (--set key=value): invoices (2000), customers (200), items (20), pay_every (4).
"""

from __future__ import annotations

import collections
import functools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.hub import http, processes, ratelimit  # noqa: E402
from fieldhub.hub.sync import engine  # noqa: E402
from fieldhub.providers.quickbooks import sync as quickbooks  # noqa: E402

PHASES: dict[str, tuple[Any, str]] = {
    "prepare_chunk": (engine.Engine, "_prepare_items"),
    "settle_replies": (engine.Engine, "_settle_many"),
    "push_batch": (quickbooks.QuickBooksAdapter, "push_batch"),
    "http_request": (http.ProviderClient, "request"),
    "limiter_acquire": (ratelimit.RateLimiter, "acquire"),
    "limiter_release": (ratelimit.RateLimiter, "release"),
    "due_rows": (engine, "due_rows"),
}


def _timed(spent: collections.Counter[str], calls: collections.Counter[str], name: str, call: Any) -> Any:
    @functools.wraps(call)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return await call(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - started
            calls[name] += 1

    return wrapper


async def _main(db: str, params: dict[str, Any]) -> dict[str, Any]:
    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(owner, attr) for name, (owner, attr) in PHASES.items()}
    async with _qbo.backlog(db, "phases", params) as work:
        records = work.records
        for name, (owner, attr) in PHASES.items():
            setattr(owner, attr, _timed(spent, calls, name, originals[name]))
        try:
            cpu0 = time.process_time()
            run = await engine.Engine(
                work.env,
                work.connection_id,
                "backfill",
                None,
                f"{processes.PROCESS}:phases",
                client_options={"limiter": work.limiter},
                in_flight=0,  # one step at a time, so no phase's timer runs while another phase works
            ).run()
            cpu = time.process_time() - cpu0
        finally:
            for name, (owner, attr) in PHASES.items():
                setattr(owner, attr, originals[name])
    n = records.total
    return {
        "records": records.counts(),
        "run_status": str(run.status),
        "cpu_ms_per_record": round(cpu * 1000 / n, 3),
        "phases_cpu_ms_per_record": {k: round(spent[k] * 1000 / n, 3) for k in PHASES},
        "phases_calls": {k: calls[k] for k in PHASES},
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    params = _qbo.backlog_counts(args, invoices=2000, customers=200, items=20, pay_every=4)
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "phases") as db:
        figures = runtime.run(_main(db, params))
    return {
        "benchmark": "phases",
        "database": _qbo.backend(db),
        "parameters": params,
        "engine": "one step at a time (Engine in_flight=0)",
        **figures,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
