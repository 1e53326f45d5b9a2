"""Token lifecycle: refresh ahead of expiry, one refresh across processes, invalid_grant, unreadable ciphertexts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.hub.errors import NeedsReauth
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.oauth import tokens
from fieldhub.hub.oauth.env import env_for
from fieldhub.providers.quickbooks.emulator import create_emulator
from fieldhub.settings import ProviderCredentials, demo_credentials
from tests.hub.oauth.conftest import consent

ROOT = Path(__file__).resolve().parents[3]


async def _only(session) -> Connection:
    session.expire_all()
    return (await session.scalars(select(Connection))).one()


async def _expire_in_db(session, conn: Connection) -> None:
    conn.access_expires_at = utcnow() - timedelta(seconds=5)
    await session.commit()


async def test_fresh_token_is_used_as_is(app, owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    env = env_for(app)
    first = await tokens.get_access_token(env, conn.id)
    assert await tokens.get_access_token(env, conn.id) == first
    assert emulators["quickbooks"].oauth.refresh_requests == 0


async def test_refresh_ahead_of_expiry_stores_the_rotated_refresh_token(app, owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    env = env_for(app)
    old_access = await tokens.get_access_token(env, conn.id)
    old_refresh = tokens.service.read_secret(env.vault, conn, "refresh_token")
    # Inside the 120 s skew counts as expired.
    conn.access_expires_at = utcnow() + timedelta(seconds=60)
    await session.commit()
    new_access = await tokens.get_access_token(env, conn.id)
    assert new_access != old_access
    conn = await _only(session)
    assert tokens.service.read_secret(env.vault, conn, "refresh_token") != old_refresh
    assert conn.token_version >= 2 and conn.last_refreshed_at is not None
    assert emulators["quickbooks"].oauth.refresh_requests == 1


async def test_force_refresh_after_401_is_shared(app, owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    env = env_for(app)
    seen = await tokens.get_access_token(env, conn.id)
    a, b = tokens.ConnectionAuth(env, conn.id), tokens.ConnectionAuth(env, conn.id)
    a._last = b._last = seen
    await asyncio.gather(a.refresh(), b.refresh())
    assert a._last == b._last != seen
    assert emulators["quickbooks"].oauth.refresh_requests == 1


async def test_invalid_grant_pauses_and_notifies(app, owner, session, emulators, biz) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    await emulators["quickbooks"].oauth.control_revoke()
    await _expire_in_db(session, conn)
    with pytest.raises(NeedsReauth) as caught:
        await tokens.get_access_token(env_for(app), conn.id)
    assert "QuickBooks" in caught.value.reason and "Click Reconnect" in caught.value.reason
    conn = await _only(session)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    assert conn.sync_error.startswith("QuickBooks") and "stopped accepting our access" in conn.sync_error
    note = (await session.scalars(select(Notification))).one()
    assert note.tenant_id == conn.tenant_id and note.kind == "connection.needs_reauth"
    # Paused: no more calls reach the provider until Reconnect.
    with pytest.raises(NeedsReauth):
        await tokens.get_access_token(env_for(app), conn.id)
    assert emulators["quickbooks"].oauth.refresh_requests == 1
    page = await owner.get("/settings/integrations/quickbooks")
    assert page.status_code == 200


async def test_tampered_ciphertext_needs_reauth_and_pages_render(app, owner, session) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    sealed = conn.access_token
    # Flip one character of the sealed blob: it no longer authenticates.
    conn.access_token = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    await session.commit()
    with pytest.raises(NeedsReauth) as caught:
        await tokens.get_access_token(env_for(app), conn.id)
    assert "could not read the stored" in caught.value.reason
    conn = await _only(session)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    for url in ("/integrations/quickbooks/panel", "/settings/integrations/quickbooks", "/settings/integrations"):
        r = await owner.get(url)
        assert r.status_code == 200, url


async def test_tampered_ciphertext_is_caught_when_the_page_renders(app, owner, session) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    conn.refresh_token = conn.refresh_token[:-3] + "AAA"
    await session.commit()
    r = await owner.get("/integrations/quickbooks/panel")
    assert r.status_code == 200 and "Reconnect" in r.text and "could not read the stored" in r.text
    assert (await _only(session)).status == ConnectionStatus.NEEDS_REAUTH


async def test_refresh_due_renews_what_runs_out_soon(app, owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    conn = await _only(session)
    env = env_for(app)
    assert await tokens.refresh_due(env) == 0
    conn.access_expires_at = utcnow() + timedelta(minutes=5)
    await session.commit()
    assert await tokens.refresh_due(env) == 1
    assert (await _only(session)).access_expires_at > utcnow() + timedelta(minutes=50)


# --- two processes, fifty calls, one refresh --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def qbo_on_port() -> Iterator[tuple[object, str]]:
    """The QuickBooks emulator served by uvicorn on a real 127.0.0.1 port, in a thread."""
    creds = demo_credentials("quickbooks")
    emulator = create_emulator(
        EmulatorConfig(
            hub_url="http://testserver",
            client_id=creds.client_id,
            client_secret=creds.client_secret.get_secret_value(),
            deliver_webhooks=False,
        )
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield emulator, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_fifty_calls_from_two_processes_make_one_refresh(app, owner, session, db_url, qbo_on_port) -> None:
    emulator, url = qbo_on_port
    app.state.settings.providers["quickbooks"] = ProviderCredentials(base_url=url)
    await consent(owner, "quickbooks")
    conn = await _only(session)
    realm = conn.account_id
    await emulator.oauth.control_expire()
    await _expire_in_db(session, conn)
    start_at = time.time() + 2.5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["-m", "tests.hub.oauth.refresh_worker", db_url, url, str(conn.id), realm, "25", str(start_at)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        results += json.loads(out.decode().strip().splitlines()[-1])
    assert results == [200] * 50, results
    assert emulator.oauth.refresh_requests == 1
    token_calls = [r for r in emulator.requests if r.path == "/oauth2/v1/tokens/bearer" and "refresh_token" in r.body]
    assert len(token_calls) == 1 and token_calls[0].status == 200
    assert not any("invalid_grant" in r.response for r in emulator.requests)
    conn = await _only(session)
    assert conn.status == ConnectionStatus.CONNECTED and conn.sync_error == ""
