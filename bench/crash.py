"""crash: kill -9 a `fieldhub sync now` process at random points of a 5,000-record backfill, 20 times.

The QuickBooks emulator (real QBO limits, time scale 1 unless --time-scale) serves on a real port in a
thread of this process, so it keeps its state while the sync process is killed and restarted. Each
restart is a new OS process that resumes from the ledger alone. After the last kill the sync runs to
the end; then every local record (customers, items, invoices, payments) must exist exactly once in the
emulator, pointed at by its ledger row, with every amount equal to the cent.

Options (--set key=value): records (5000), kills (20), max_requests (a process is killed once the
emulator has seen 1..n of its requests, drawn uniformly, plus 0..50 ms; n is at most max_requests
(120) and at most twice the requests the work left needs shared among the kills to come, so every
kill lands before the backfill is done), seed (7);
--database-url for PostgreSQL (an empty database), else a fresh SQLite file.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _faultkit as kit  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.db import make_engine  # noqa: E402
from fieldhub.main import create_app  # noqa: E402
from fieldhub.models import metadata  # noqa: E402


async def _schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


async def _run(url: str, args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    records = int(args.get("records", 5000))
    provider = str(args.get("provider", "quickbooks"))
    kills = int(args.get("kills", 20))
    max_requests = int(args.get("max_requests", 120))
    rng = random.Random(int(args.get("seed", 7)))
    await _schema(url)
    scale = float(args.get("time_scale", 1.0))
    with kit.emulator_on_port(time_scale=scale, provider=provider) as (emulator, emulator_url):
        settings = kit.hub_settings(url, emulator_url, provider)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with app.state.sessionmaker() as session:
                tenant_id, email = await kit.make_owner(session, "crash")
            connection_id = await kit.connect_quickbooks(app, email, kit.ACCOUNT[provider], provider)
            started = time.perf_counter()
            async with app.state.sessionmaker() as session:
                made = await kit.make_records(session, tenant_id, records)
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            report = await kit.kill_and_restart(
                settings,
                app.state.sessionmaker,
                emulator,
                connection_id,
                kills=kills,
                max_requests=max_requests,
                rng=rng,
                log_path=workdir / "sync.log",
            )
            seconds = time.perf_counter() - started
            found = await kit.audit(app.state.sessionmaker, emulator, connection_id, kit.ACCOUNT[provider])
            await app.state.engine.dispose()
    figures = found.figures()
    return {
        "benchmark": "crash",
        "provider": provider,
        "database": url.split(":", 1)[0],
        **figures,
        "records_made": made,
        "kills": report.kills,
        "runs_cut": report.runs_cut,
        "kills_after_finish": report.finished_before_kill,
        "creates_in_flight_at_kills": report.in_flight_at_kill,
        "final_runs": report.final_runs,
        "exactly_once": found.clean and figures["records"] == made,
        "seconds": round(seconds, 1),
        "load_seconds": round(load_s, 1),
        "emulator_requests": len(emulator.requests),
        "problems": found.details[:10],
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.get("database_url") or f"sqlite+aiosqlite:///{Path(tmp) / 'crash.db'}"
        return runtime.run(_run(url, args, Path(tmp)))
