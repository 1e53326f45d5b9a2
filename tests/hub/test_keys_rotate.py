"""`fieldhub keys rotate`: every sealed value moves to the current key, online, without clobbering a refresh."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from fieldhub.db import utcnow
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus, OAuthState
from fieldhub.hub.connections.service import AccountInfo, TokenSet
from fieldhub.hub.keyrotation import rotate_keys
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.oauth.flow import verifier_aad
from fieldhub.hub.vault import Vault, generate_key, parse_key_ring
from fieldhub.settings import get_settings
from tests.conftest import TEST_KEYS

OLD = Vault(parse_key_ring(TEST_KEYS))
NEW_RING = f"{generate_key('k2')},{TEST_KEYS}"
NEW = Vault(parse_key_ring(NEW_RING))


async def _seed(session, biz, count: int = 5) -> list[int]:
    """`count` connections and one PKCE state, all sealed with k1."""
    ids = []
    for n in range(count):
        conn = await service.save_connected(
            session,
            OLD,
            tenant_id=biz.tenant.id,
            provider="quickbooks",
            account=AccountInfo(f"realm-{n}", f"Company {n}"),
            tokens=TokenSet(f"access-{n}", f"refresh-{n}"),
        )
        ids.append(conn.id)
    now = utcnow()
    state = OAuthState(
        state_hash="ab" * 32,
        tenant_id=biz.tenant.id,
        user_id=biz.owner.id,
        provider="quickbooks",
        created_at=now,
        expires_at=now + timedelta(minutes=10),
    )
    session.add(state)
    await session.flush()
    state.code_verifier = OLD.encrypt("the-verifier", **verifier_aad(state))
    await session.commit()
    return ids


async def _all(session) -> tuple[list[Connection], OAuthState]:
    session.expire_all()
    conns = list(await session.scalars(select(Connection).order_by(Connection.id)))
    return conns, await session.scalar(select(OAuthState))


async def test_rotate_reseals_everything_and_second_run_is_a_no_op(session, sessionmaker, biz) -> None:
    ids = await _seed(session, biz)
    seen: list[int] = []
    report = await rotate_keys(sessionmaker, NEW, batch_size=2, progress=lambda r: seen.append(r.done))
    assert (report.total, report.rotated, report.current, report.failed) == (11, 11, 0, 0)
    assert seen[-1] == 11 and seen == sorted(seen)
    conns, state = await _all(session)
    assert [c.id for c in conns] == ids
    for n, conn in enumerate(conns):
        assert conn.access_token.startswith("v1.k2.") and conn.refresh_token.startswith("v1.k2.")
        assert service.read_secret(NEW, conn, "access_token") == f"access-{n}"
        assert service.read_secret(NEW, conn, "refresh_token") == f"refresh-{n}"
        assert conn.status == ConnectionStatus.CONNECTED
    assert state.code_verifier.startswith("v1.k2.")
    assert NEW.decrypt(state.code_verifier, **verifier_aad(state)) == "the-verifier"
    # The old key can go: the new ring alone opens everything.
    only_new = Vault(parse_key_ring(NEW_RING.split(",")[0]))
    assert service.read_secret(only_new, conns[0], "refresh_token") == "refresh-0"

    before = [(c.access_token, c.refresh_token) for c in conns]
    again = await rotate_keys(sessionmaker, NEW, batch_size=2)
    assert (again.rotated, again.current, again.failed) == (0, 11, 0)
    conns, _ = await _all(session)
    assert [(c.access_token, c.refresh_token) for c in conns] == before


async def test_a_refresh_between_read_and_write_is_not_clobbered(session, sessionmaker, biz) -> None:
    ids = await _seed(session, biz, count=3)
    written: dict[int, str] = {}

    async def refresh_first(table: str, batch: list[int]) -> None:
        if table != "connections" or written:
            return
        # Another process refreshes the token after the rotation read the batch: its write must win.
        async with sessionmaker() as other:
            conn = await other.get(Connection, batch[0])
            service.store_tokens(NEW, conn, TokenSet("refreshed-access", "refreshed-refresh"))
            written[conn.id] = conn.access_token
            await other.commit()

    report = await rotate_keys(sessionmaker, NEW, batch_size=2, after_read=refresh_first)
    assert (report.total, report.changed_meanwhile, report.rotated, report.failed) == (7, 2, 5, 0)
    conns, _ = await _all(session)
    raced = next(c for c in conns if c.id == ids[0])
    assert raced.access_token == written[ids[0]]
    assert service.read_secret(NEW, raced, "access_token") == "refreshed-access"
    assert service.read_secret(NEW, raced, "refresh_token") == "refreshed-refresh"
    assert all(c.access_token.startswith("v1.k2.") and c.refresh_token.startswith("v1.k2.") for c in conns)


async def test_a_tampered_value_is_reported_and_pauses_its_connection(session, sessionmaker, biz) -> None:
    ids = await _seed(session, biz, count=3)
    tenant_id = biz.tenant.id
    bad = await session.get(Connection, ids[1])
    # Sealed for another row: authentic ciphertext, wrong associated data.
    bad.refresh_token = OLD.encrypt("stolen", tenant_id=tenant_id, owner_id=ids[0], field="connections.refresh_token")
    await session.commit()

    report = await rotate_keys(sessionmaker, NEW, batch_size=2)
    assert (report.rotated, report.failed) == (6, 1)
    [failure] = report.failures
    assert (failure.table, failure.row_id, failure.field) == ("connections", ids[1], "refresh_token")
    assert "stolen" not in failure.reason
    conns, _ = await _all(session)
    by_id = {c.id: c for c in conns}
    assert by_id[ids[1]].status == ConnectionStatus.NEEDS_REAUTH
    assert by_id[ids[1]].access_token.startswith("v1.k2.")  # its readable field still moved
    assert by_id[ids[0]].status == by_id[ids[2]].status == ConnectionStatus.CONNECTED
    notes = list(await session.scalars(select(Notification).where(Notification.tenant_id == tenant_id)))
    assert any("reconnect" in n.title.lower() for n in notes)


async def test_cli_rotates_and_prints_the_summary(session, settings, biz, monkeypatch) -> None:
    ids = await _seed(session, biz, count=2)
    from fieldhub.cli import app

    env = {
        "FIELDHUB_MODE": "test",
        "FIELDHUB_DATABASE_URL": settings.database_url,
        "FIELDHUB_ENCRYPTION_KEYS": NEW_RING,
    }
    get_settings.cache_clear()
    try:
        # The command runs its own event loop: give it a thread of its own.
        first = await asyncio.to_thread(CliRunner().invoke, app, ["keys", "rotate", "--batch-size", "1"], env=env)
        second = await asyncio.to_thread(CliRunner().invoke, app, ["keys", "rotate"], env=env)
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert "5 rotated, 0 already current, 0 failed" in first.output
    assert second.exit_code == 0, second.output
    assert "0 rotated, 5 already current, 0 failed" in second.output
    conns, _ = await _all(session)
    assert [c.id for c in conns] == ids and all(c.access_token.startswith("v1.k2.") for c in conns)
    assert "access-0" not in first.output
