"""memory-backfill: `fieldhub memory backfill` on 10,000 records, killed with SIGKILL halfway and run again.

One business gets N paid invoices (bench/_memory.py, no vectors). The command is run as a user runs it, in its
own process: first answering "n" to its confirmation (its estimate is kept: records, tokens, cost, time), then
with --yes until about half the records have their vector, when it is killed with SIGKILL; then again with
--yes to the end. Reported: the estimate, how far the first run got, what the second embedded and how fast,
and that every record ends with exactly one vector (`duplicates` 0, `missing` 0).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from bench import _memory, _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.capabilities.memory.models import MemoryVector  # noqa: E402
from fieldhub.hub.oauth.env import OAuthEnv  # noqa: E402

FIELDHUB = str(Path(sys.executable).parent / "fieldhub")
VOYAGE_USD_PER_MILLION = Decimal("0.02")  # voyage-3.5-lite, what the estimate would say with Voyage connected


async def _setup(db: str, keys: str, n: int) -> None:
    env = OAuthEnv.standalone(_qbo.make_settings(db, keys=keys))
    try:
        tenant_id = await _memory.create_business(env, "history")
        await _memory.load_history(env, tenant_id, n, vectors=False)
    finally:
        await env.engine.dispose()


async def _counts(db: str, keys: str) -> tuple[int, int]:
    """(records with a vector, records with more than one)."""
    env = OAuthEnv.standalone(_qbo.make_settings(db, keys=keys))
    try:
        async with env.sessionmaker() as session:
            per = (
                select(MemoryVector.record_id, func.count().label("n"))
                .group_by(MemoryVector.entity, MemoryVector.record_id)
                .subquery()
            )
            done = int(await session.scalar(select(func.count()).select_from(per)) or 0)
            twice = int(await session.scalar(select(func.count()).select_from(per).where(per.c.n > 1)) or 0)
            return done, twice
    finally:
        await env.engine.dispose()


def run(args: dict[str, Any]) -> dict[str, Any]:
    n = int(args.get("records", 10_000))
    keys = _qbo.new_key()
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "memorybackfill") as db:
        runtime.run(_setup(db, keys, n))
        env = {**os.environ, "FIELDHUB_DATABASE_URL": db, "FIELDHUB_ENCRYPTION_KEYS": keys, "FIELDHUB_MODE": "demo",
               "FIELDHUB_LOG_LEVEL": "WARNING", "COLUMNS": "200"}  # fmt: skip
        started = time.perf_counter()
        asked = subprocess.run(
            [FIELDHUB, "memory", "backfill"], input="n\n", env=env, capture_output=True, text=True, timeout=600
        )
        estimate_seconds = time.perf_counter() - started
        line = next((x for x in asked.stdout.splitlines() if "records to embed" in x), asked.stdout[-300:])
        tokens = int(re.search(r"about ([\d,]+) tokens", line).group(1).replace(",", ""))  # type: ignore[union-attr]
        first = subprocess.Popen(
            [FIELDHUB, "memory", "backfill", "--yes"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started = time.perf_counter()
        while first.poll() is None and runtime.run(_counts(db, keys))[0] < n // 2:
            time.sleep(1.0)
        first.send_signal(signal.SIGKILL)
        first.wait()
        first_seconds = time.perf_counter() - started
        killed_at, _ = runtime.run(_counts(db, keys))
        started = time.perf_counter()
        second = subprocess.run(
            [FIELDHUB, "memory", "backfill", "--yes"], env=env, capture_output=True, text=True, timeout=3600
        )
        second_seconds = time.perf_counter() - started
        done, twice = runtime.run(_counts(db, keys))
        embedded = re.search(r"Embedded ([\d,]+) records", second.stdout)
        return {
            "benchmark": "memory-backfill",
            "database": _qbo.backend(db),
            "parameters": {"records": n},
            "records": n,
            "estimate_line": line.strip(),
            "estimate_tokens": tokens,
            "voyage_cost_usd_for_these_tokens": str(
                (Decimal(tokens) * VOYAGE_USD_PER_MILLION / Decimal(1_000_000)).quantize(Decimal("0.0001"))
            ),
            "estimate_seconds": round(estimate_seconds, 1),
            "asked_and_declined_exit": asked.returncode,
            "killed_after_seconds": round(first_seconds, 1),
            "records_done_when_killed": killed_at,
            "second_run_embedded": int(embedded.group(1).replace(",", "")) if embedded else None,
            "second_run_seconds": round(second_seconds, 1),
            "records_per_second": round((n - killed_at) / second_seconds, 1) if second_seconds else None,
            "records_with_one_vector": done,
            "duplicates": twice,
            "missing": n - done,
            "loadavg_start": load_start,
            "loadavg_end": _qbo.loadavg(),
        }
