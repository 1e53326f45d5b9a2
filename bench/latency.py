"""latency: commit → invoice created at the QuickBooks emulator, through the real-time trigger path.

The embedded dispatcher runs as inside `fieldhub serve`: an invoice is written and sent through the
core services, the commit's after-commit hook wakes the dispatcher, which runs the connection (lease,
run row, due rows, adapter, rate limiter, HTTP to the emulator, ledger commit). The clock starts
just before `session.commit()` and stops when the emulator's store creates the Invoice (zero added
latency, in-process). `invoices` are sent one by one: the next is written once the previous arrived.

Sent back to back, 1,000 invoices would exceed QuickBooks' 500 requests a minute within seconds and
the figure would be the rate limit's queue, not the trigger path; so the emulator's rate rules are
off and the hub's limiter, still in the path with its database work, runs on a clock scaled by 10^6
(it never waits). The backfill benchmark is the one that measures the limits.
Targets: p50 ≤ 100 ms, p99 ≤ 1 s.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.core.customers.service import create_customer  # noqa: E402
from fieldhub.core.invoices.service import create_invoice, send_invoice  # noqa: E402
from fieldhub.core.items.service import create_item  # noqa: E402
from fieldhub.hub.ratelimit import RateLimiter  # noqa: E402
from fieldhub.hub.sync.dispatch import Dispatcher  # noqa: E402
from fieldhub.hub.sync.engine import sync_connection  # noqa: E402
from fieldhub.providers.quickbooks.emulator import US_REALM  # noqa: E402


async def _main(db: str, invoices: int, warmup: int) -> dict[str, Any]:
    settings = _qbo.make_settings(db, keys=_qbo.new_key())
    emulator = _qbo.build_emulator(settings)
    emulator.rate_rules.clear()
    env = _qbo.in_process_env(settings, emulator)
    _qbo.subscribe_ledger()
    company = emulator.companies[US_REALM]
    arrived: dict[int, float] = {}
    waiting: dict[int, asyncio.Event] = {}
    original = company.create

    def create(entity: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = original(entity, body)
        found = _qbo.MARK.search(str(obj.get("PrivateNote", ""))) if entity == "Invoice" else None
        if found:
            local_id = int(found.group(2))
            arrived[local_id] = time.perf_counter()
            if local_id in waiting:
                waiting[local_id].set()
        return obj

    company.create = create  # type: ignore[method-assign]
    records = _qbo.Records()
    try:
        tenant_id = await _qbo.create_tenant(env, "latency")
        connection_id = await _qbo.connect(env, tenant_id)
        async with env.sessionmaker() as session:
            customer = await create_customer(session, tenant_id, {"display_name": "Latency Customer"})
            item = await create_item(session, tenant_id, {"name": "Latency Service", "unit_price": "85.00"})
            await session.commit()
            records.customers[customer.id] = customer.display_name
            records.items[item.id] = item.name
        # The customer and item exist at QuickBooks first: what is timed is the invoice alone.
        await sync_connection(env, connection_id, trigger="manual", client_options={"limiter": None})
        limiter = RateLimiter(env.sessionmaker, time_scale=_qbo.NEVER_WAIT)
        dispatcher = Dispatcher(env, workers=1, client_options={"limiter": limiter})
        await dispatcher.start()
        timings: list[float] = []
        started = time.perf_counter()
        try:
            async with env.sessionmaker() as session:
                for n in range(warmup + invoices):
                    invoice = await create_invoice(
                        session,
                        tenant_id,
                        {
                            "customer_id": customer.id,
                            "lines": [{"item_id": item.id, "quantity": "1", "unit_price": f"{100 + n}.00"}],
                        },
                    )
                    await send_invoice(session, tenant_id, invoice.id)
                    records.invoices[invoice.id] = invoice.total
                    waiting[invoice.id] = asyncio.Event()
                    t0 = time.perf_counter()
                    await session.commit()
                    await asyncio.wait_for(waiting[invoice.id].wait(), 30)
                    if n >= warmup:
                        timings.append((arrived[invoice.id] - t0) * 1000)
                    session.expunge_all()
            await dispatcher.idle()
        finally:
            await dispatcher.stop()
        elapsed = time.perf_counter() - started
        check = _qbo.check_emulator(company.objects, records)
        return {
            "latency_ms_p50": round(statistics.median(timings), 1),
            "latency_ms_p99": round(_qbo.percentile(timings, 0.99), 1),
            "latency_ms_max": round(max(timings), 1),
            "latency_ms_mean": round(statistics.fmean(timings), 1),
            "runs": dispatcher.runs,
            "seconds": round(elapsed, 1),
            **check,
            "http_429": _qbo.count_429(emulator),
        }
    finally:
        await env.engine.dispose()


def run(args: dict[str, Any]) -> dict[str, Any]:
    invoices = int(args.get("invoices", 1000))
    warmup = int(args.get("warmup", 20))
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "latency") as db:
        figures = runtime.run(_main(db, invoices, warmup))
    return {
        "benchmark": "latency",
        "database": _qbo.backend(db),
        "invoices": invoices,
        "warmup": warmup,
        "emulator": "QuickBooks, in-process, no added latency, rate rules off",
        "hub_limiter": f"on, clock scaled x{_qbo.NEVER_WAIT:g} so it never waits",
        "trigger": "commit wakes the embedded dispatcher (after_commit hook)",
        **figures,
        "target_ms_p50": 100,
        "target_ms_p99": 1000,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
