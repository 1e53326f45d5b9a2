"""`fieldhub memory backfill`: the estimate first, a confirmation, and a run that survives kill -9 (issue 22 item 3).

The command on a SQLite file with the local model: the run that is killed is its own process (kill -9), the
others run in this one (the model loaded once)."""

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

from typer.testing import CliRunner

from fieldhub.capabilities.memory.demo_year import seed_year
from fieldhub.cli import app as cli
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.settings import get_settings
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
        "FIELDHUB_LOG_LEVEL": "INFO",
        "COLUMNS": "160",
    }


def _vectors(path: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(path, timeout=30) as db:
        return db.execute(
            "SELECT entity, record_id, count(*) FROM memory_vectors GROUP BY entity, record_id"
        ).fetchall()


def _command(monkeypatch, env: dict[str, str], args: list[str], typed: str = "") -> tuple[int, str]:  # noqa: ANN001
    for name in ("FIELDHUB_DATABASE_URL", "FIELDHUB_MODE", "FIELDHUB_ENCRYPTION_KEYS", "COLUMNS"):
        monkeypatch.setenv(name, env[name])
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, args, input=typed)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_issue22_item3_backfill_estimates_asks_and_resumes_after_kill_9(sqlite_template, tmp_path, monkeypatch) -> None:
    path = tmp_path / "history.db"
    shutil.copy(sqlite_template, path)
    expected = asyncio.run(_seed(f"sqlite+aiosqlite:///{path}", 60))
    env = _env(path)

    code, out = _command(monkeypatch, env, ["memory", "backfill"], "n\n")
    assert code == 1, out
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

    code, out = _command(monkeypatch, env, ["memory", "backfill", "--yes"])
    assert code == 0, out
    assert f"{expected - halfway} records to embed" in out and f"Embedded {expected - halfway} records." in out, out
    rows = _vectors(path)
    assert len(rows) == expected and all(n == 1 for _, _, n in rows)  # every record exactly once

    code, out = _command(monkeypatch, env, ["memory", "backfill", "--yes"])
    assert code == 0 and "Nothing to embed" in out and len(_vectors(path)) == expected
