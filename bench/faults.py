"""faults: a 5,000-record backfill into a QuickBooks emulator injecting 10 % 5xx, 5 % 429, 2 % timeouts, 1 % drops.

The emulator (in-process, as `make demo` mounts it) answers 10 % of API requests 503, 5 % 429 with
Retry-After: 1, holds 2 % past the client's timeout and, for 1 %, commits the write and then cuts the
connection so the reply is lost. The engine runs the connection again and again, waiting out every
back-off it set (nothing is forced due), until nothing is pending. Then: every record exactly once with
its amounts to the cent (bench/_faultkit.audit), and "Retry-After obeyed": once the client had a 429 in
hand, it sent the realm nothing until Retry-After had passed (violations must be 0), as the client's
transport saw it (kit.ExchangeLog). The emulator's own log also counts requests that reached it after it
had answered a 429 but left the client before that reply was back (`requests_crossing_a_429`): with two
batches out at once, one can cross a reply on its way.

QBO's limits stay on at `--time-scale` (default 60: a minute of limits per real second, so the figure is
about faults, not the 500/min ceiling; the backfill benchmark measures that). Retry-After stays 1 real
second at any scale. Options (--set key=value): records (5000), seed (7), timeout (client timeout,
0.5 s; a held request is held 1 s); --database-url for PostgreSQL (an empty database).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _faultkit as kit  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.db import make_engine  # noqa: E402
from fieldhub.hub.oauth.env import env_for  # noqa: E402
from fieldhub.hub.ratelimit import RateLimiter  # noqa: E402
from fieldhub.main import create_app  # noqa: E402
from fieldhub.models import metadata  # noqa: E402
from fieldhub.settings import Settings  # noqa: E402


async def _schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


async def _run(url: str, args: dict[str, Any]) -> dict[str, Any]:
    records = int(args.get("records", 5000))
    provider = str(args.get("provider", "quickbooks"))
    scale = float(args.get("time_scale", 60.0))
    timeout = float(args.get("timeout", 0.5))
    await _schema(url)
    settings = Settings(
        mode="test",
        database_url=url,
        encryption_keys=kit.SecretStr(kit.BENCH_KEYS),
        public_url="http://testserver",
        log_level="ERROR",  # a benchmark's stdout is its JSON
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        emulator = app.state.endpoints.emulators[provider]
        emulator.clock.scale = scale  # before anything is stored: emulated time only moves forward
        async with app.state.sessionmaker() as session:
            tenant_id, email = await kit.make_owner(session, "faults")
        connection_id = await kit.connect_quickbooks(app, email, kit.ACCOUNT[provider], provider)
        started = time.perf_counter()
        async with app.state.sessionmaker() as session:
            made = await kit.make_records(session, tenant_id, records)
        load_s = time.perf_counter() - started
        first = emulator.requests[-1].seq if emulator.requests else 0
        kit.inject_faults(emulator, seed=int(args.get("seed", 7)), timeout_delay=timeout * 2)
        env = env_for(app)
        # What the client knew when: a request the engine had out already when a 429 came back is not one
        # that ignored it (see kit.ExchangeLog).
        exchanges = kit.ExchangeLog.around_quickbooks(env, emulator)
        options = {
            "timeout": timeout,
            "limiter": RateLimiter(env.sessionmaker, time_scale=scale),
            "transport": exchanges,
        }
        started = time.perf_counter()
        runs = await kit.drain(env, connection_id, client_options=options)
        seconds = time.perf_counter() - started
        sent = [r for r in emulator.requests if r.seq > first]
        violations = exchanges.violations(scale)
        crossed = kit.retry_after_violations(sent, scale)
        found = await kit.audit(app.state.sessionmaker, emulator, connection_id, kit.ACCOUNT[provider])
    figures = found.figures()
    return {
        "benchmark": "faults",
        "provider": provider,
        "database": url.split(":", 1)[0],
        **figures,
        "records_made": made,
        "all_synced": figures["unsynced"] == 0,
        "exactly_once": found.clean and figures["records"] == made,
        "retry_after_violations": len(violations),
        # Sent before the 429 was back, and reached the emulator after it had answered it (the provider's
        # view: kit.retry_after_violations); with two batches out at once, a request can cross a reply.
        "requests_crossing_a_429": len(crossed),
        "requests": len(sent),
        "faults_injected": kit.fault_counts(sent),
        "http_429": sum(1 for r in sent if r.status == 429),
        "runs": runs,
        "seconds": round(seconds, 1),
        "load_seconds": round(load_s, 1),
        "time_scale": scale,
        "problems": found.details[:10]
        + [f"request {b} was sent inside the Retry-After of request {a}" for a, b in violations[:5]],
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.get("database_url") or f"sqlite+aiosqlite:///{Path(tmp) / 'faults.db'}"
        return runtime.run(_run(url, args))
