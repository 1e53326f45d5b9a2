"""No access or refresh token the providers issued reaches the database files, a pg_dump or the logs in plain text."""

from __future__ import annotations

import io
import logging
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fieldhub import log
from fieldhub.db import libpq_url
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.http import ProviderClient
from fieldhub.hub.oauth import tokens
from fieldhub.hub.oauth.env import env_for
from fieldhub.settings import Settings
from tests.conftest import TEST_KEYS
from tests.hub.oauth.conftest import consent

# One provider per refresh-token rule, plus QuickBooks: where each one's API answers a plain read.
PROVIDERS = {
    "quickbooks": "/v3/company/{account_id}/query?query=select%20*%20from%20CompanyInfo&minorversion=75",
    "xero": "/connections",  # refresh token rotates, the old one kept for a grace period
    "freshbooks": "/auth/api/v1/users/me",  # refresh token is single-use
    "google_calendar": "/calendar/v3/users/me/calendarList",  # refresh token never changes
}
QBO_REALM = "9341453050001234"
QBO_NAME = "Riverbend Plumbing & Heating"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything structlog and stdlib logging write during the test, at DEBUG, through the real processors."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # create_app calls log.configure (the processor chain, redactor included); only the output is redirected.
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=sink))
    try:
        yield sink
    finally:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        root.removeHandler(handler)
        root.setLevel(before)
        log.configure()


@pytest.fixture
def settings(db_url: str, captured_logs: io.StringIO) -> Settings:
    return Settings(
        mode="test",
        database_url=db_url,
        encryption_keys=TEST_KEYS,
        public_url="http://testserver",
        log_level="DEBUG",
        log_json=True,
    )


async def _connection(session, key: str) -> Connection:
    session.expire_all()
    return (await session.scalars(select(Connection).where(Connection.provider == key))).one()


async def _api_call(env, conn: Connection, path: str) -> None:
    spec = registry.get(conn.provider)
    assert spec.api is not None
    client = ProviderClient(
        spec.api,
        tokens.ConnectionAuth(env, conn.id),
        provider=conn.provider,
        transport=env.endpoints.transport(conn.provider),
        base_url=env.endpoints.root(conn.provider),
    )
    async with client:
        response = await client.get(path.format(account_id=conn.account_id), headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text


def _leaks(haystack: bytes, issued: list[str]) -> list[str]:
    return [value[:6] + "…" for value in issued if value.encode() in haystack]


def _sqlite_files(db_url: str) -> bytes:
    path = Path(make_url(db_url).database or "")
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def _pg_dump(db_url: str) -> bytes:
    binary = shutil.which("pg_dump") or ("/usr/bin/pg_dump" if Path("/usr/bin/pg_dump").exists() else None)
    if binary is None:
        pytest.skip("pg_dump is not installed: the PostgreSQL dump cannot be searched")
    done = subprocess.run([binary, "--no-owner", libpq_url(db_url)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


async def test_tokens_never_stored_or_logged_in_plain_text(app, owner, session, db_url, captured_logs) -> None:
    env = env_for(app)
    emulators = app.state.endpoints.emulators
    for key, path in PROVIDERS.items():
        r, _ = await consent(owner, key)
        assert r.status_code == 303, r.text
        conn = await _connection(session, key)
        await _api_call(env, conn, path)
        # Expired at the provider: the next call gets a 401 and the hub refreshes, then retries.
        expired = await owner.post(f"/emulators/{key}/_emulator/tokens/expire")
        assert expired.status_code == 200 and expired.json()["expired"] >= 1
        before = emulators[key].oauth.refresh_requests
        await _api_call(env, conn, path)
        assert emulators[key].oauth.refresh_requests == before + 1
        # And a second, forced refresh, so a rotating provider's superseded refresh token passes through too.
        await tokens.get_access_token(env, conn.id, force_refresh=True)
        await _api_call(env, conn, path)
        r = await owner.submit(f"/integrations/{key}/connections/{conn.id}/disconnect")
        assert r.status_code == 303
        assert (await _connection(session, key)).status == ConnectionStatus.DISCONNECTED

    issued = [value for key in PROVIDERS for value in emulators[key].oauth.tokens]
    kinds = {t.kind for key in PROVIDERS for t in emulators[key].oauth.tokens.values()}
    assert len(issued) >= 8 and kinds == {"access", "refresh"}
    await session.close()
    # Logs first: a missing pg_dump skips only the database part.
    logs = captured_logs.getvalue().encode()
    assert b"provider.http" in logs and QBO_REALM.encode() in logs  # the search sees the logs
    assert _leaks(logs, issued) == [], "token in the logs"

    if make_url(db_url).get_backend_name() == "sqlite":
        stored = _sqlite_files(db_url)
        assert _leaks(stored, issued) == [], "token in the SQLite files (db, -wal, -shm)"
        await app.state.engine.dispose()  # every pooled connection closed, so the checkpoint can truncate
        with sqlite3.connect(make_url(db_url).database) as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = _sqlite_files(db_url)
    else:
        stored = _pg_dump(db_url)
    assert QBO_REALM.encode() in stored and QBO_NAME.encode() in stored  # the search sees the data
    assert _leaks(stored, issued) == [], "token in the database"
