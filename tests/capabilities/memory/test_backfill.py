"""`fieldhub memory backfill`: the estimate first, a confirmation, and a run that survives kill -9 (issue 22 item 3).

Real processes on a SQLite file with the local model: the command as a user runs it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fieldhub.capabilities.memory.demo_year import seed_year
from fieldhub.db import make_engine, make_sessionmaker
from tests.conftest import TEST_KEYS, make_business

FIELDHUB = str(Path(sys.executable).parent / "fieldhub")


async def _seed(url: str, count: int) -> int:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        biz = await make_business(session, "hist")
        seeded = await seed_year(session, biz.tenant.id, invoices_count=count)
    await engine.dispose()
    return seeded.sent + seeded.estimates * 2 // 3  # sent invoices + sent estimates (n % 3 != 0)


def _env(path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FIELDHUB_DATABASE_URL": f"sqlite+aiosqlite:///{path}",
        "FIELDHUB_MODE": "test",
        "FIELDHUB_ENCRYPTION_KEYS": TEST_KEYS,
        "FIELDHUB_LOG_LEVEL": "WARNING",
        "COLUMNS": "160",
    }


def _vectors(path: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(path, timeout=30) as db:
        return db.execute(
            "SELECT entity, record_id, count(*) FROM memory_vectors GROUP BY entity, record_id"
        ).fetchall()


def test_issue22_item3_backfill_estimates_asks_and_resumes_after_kill_9(sqlite_template, tmp_path) -> None:
    path = tmp_path / "history.db"
    shutil.copy(sqlite_template, path)
    expected = asyncio.run(_seed(f"sqlite+aiosqlite:///{path}", 60))
    env = _env(path)

    asked = subprocess.run(
        [FIELDHUB, "memory", "backfill"], input="n\n", env=env, capture_output=True, text=True, timeout=120
    )
    out = asked.stdout
    assert asked.returncode == 1, asked.stderr
    assert f"{expected} records to embed" in out and "tokens" in out and "$0 (local model)" in out, out
    assert "Embed them now?" in out and "Nothing was embedded." in out
    assert _vectors(path) == []

    run = subprocess.Popen(
        [FIELDHUB, "memory", "backfill", "--yes", "--batch", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 90
    while time.time() < deadline and len(_vectors(path)) < 8:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    halfway = len(_vectors(path))
    assert 8 <= halfway < expected, halfway

    resumed = subprocess.run(
        [FIELDHUB, "memory", "backfill", "--yes"], env=env, capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{expected - halfway} records to embed" in resumed.stdout, resumed.stdout
    assert f"Embedded {expected - halfway} records." in resumed.stdout
    rows = _vectors(path)
    assert len(rows) == expected and all(n == 1 for _, _, n in rows)  # every record exactly once

    again = subprocess.run([FIELDHUB, "memory", "backfill", "--yes"], env=env, capture_output=True, text=True)
    assert "Nothing to embed" in again.stdout and len(_vectors(path)) == expected
