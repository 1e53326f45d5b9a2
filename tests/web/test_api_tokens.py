"""Personal API tokens expire, can be revoked (page and CLI), note their last use cheaply, and never show twice
(issue 14 item 9)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from sqlalchemy import event, select, update
from tests.conftest import Business
from typer.testing import CliRunner

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import ApiToken
from fieldhub.db import utcnow
from fieldhub.settings import get_settings


def _api(app, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {token}"},
    )


async def _row(session, token: str) -> ApiToken:
    session.expire_all()
    row = await session.scalar(select(ApiToken).where(ApiToken.prefix == token[:10]))
    assert row is not None
    return row


async def test_issue14_item9_expired_and_revoked_tokens_get_a_clear_401(app, session, biz: Business) -> None:
    expired = await accounts.create_api_token(session, biz.owner, "old", days=1, now=utcnow() - timedelta(days=2))
    revoked = await accounts.create_api_token(session, biz.owner, "gone")
    good = await accounts.create_api_token(session, biz.owner, "good")
    await session.commit()
    await accounts.revoke_api_token(session, (await _row(session, revoked)).id)
    await session.commit()
    async with _api(app, expired) as old, _api(app, revoked) as gone, _api(app, good) as fine:
        r = await old.get("/customers")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert set(r.json()) == {"detail"} and "expired on" in r.json()["detail"]
        assert expired not in r.text
        # Refused before the body is read too, with the same words.
        r = await old.post("/customers", json={"display_name": "X"})
        assert r.status_code == 401 and "expired on" in r.json()["detail"]
        r = await gone.get("/customers")
        assert r.status_code == 401 and "was revoked" in r.json()["detail"]
        assert (await fine.get("/customers")).status_code == 200
    # Every token expires: the default is 90 days.
    row = await _row(session, good)
    assert timedelta(days=89) < row.expires_at - row.created_at <= timedelta(days=90)
    assert row.token_hash != good and good not in (row.prefix, row.name)


async def test_issue14_item9_last_used_is_written_at_most_once_a_minute(app, session, biz: Business) -> None:
    token = await accounts.create_api_token(session, biz.owner, "busy")
    await session.commit()
    writes: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            writes.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        async with _api(app, token) as api:
            for _ in range(10):
                assert (await api.get("/customers")).status_code == 200
            assert len(writes) == 1, "ten requests in a minute write last_used_at once"
            first = (await _row(session, token)).last_used_at
            assert first is not None
            # A minute on, the next request notes it again.
            await session.execute(
                update(ApiToken)
                .where(ApiToken.id == (await _row(session, token)).id)
                .values(last_used_at=first - timedelta(seconds=61))
            )
            await session.commit()
            writes.clear()
            assert (await api.get("/customers")).status_code == 200
            assert (await api.get("/customers")).status_code == 200
            assert len(writes) == 1
            assert (await _row(session, token)).last_used_at >= first
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_issue14_item9_profile_page_makes_lists_and_revokes_own_tokens(
    app, session, client, make_client, biz: Business
) -> None:
    owner_email = biz.owner.email
    tech = await client.login(biz.tech.email)
    assert "/profile" in (await tech.get("/settings")).text
    r = await tech.submit("/profile/tokens", {"name": "Phone app", "days": "30"})
    assert r.status_code == 200, r.text
    shown = re.search(r'value="(fhp_[^"]+)"', r.text)
    assert shown, "the new token is shown once"
    token = shown.group(1)
    assert r.headers["cache-control"] == "no-store"
    page = await tech.get("/profile")
    assert token not in page.text and token[:10] in page.text and "Phone app" in page.text
    row = await _row(session, token)
    assert timedelta(days=29) < row.expires_at - row.created_at <= timedelta(days=30)
    # A refused form makes nothing.
    bad = await tech.submit("/profile/tokens", {"name": "", "days": "9999"})
    assert bad.status_code == 400 and "fhp_" not in bad.text.replace(token[:10], "")
    async with _api(app, token) as api:
        assert (await api.get("/customers")).status_code == 200
        # Another user can't revoke it.
        async with make_client() as other:
            await other.login(owner_email)
            assert (await other.submit(f"/profile/tokens/{row.id}/revoke")).status_code == 404
        assert (await api.get("/customers")).status_code == 200
        r = await tech.submit(f"/profile/tokens/{row.id}/revoke")
        assert r.status_code == 303
        page = await tech.get(r.headers["location"])
        assert "Revoked" in page.text and "Token revoked" in page.text
        r = await api.get("/customers")
        assert r.status_code == 401 and "was revoked" in r.json()["detail"]


async def test_issue14_item9_cli_lists_and_revokes_tokens(app, session, settings, biz: Business) -> None:
    from fieldhub.cli import app as cli

    admin_email = biz.admin.email
    token = await accounts.create_api_token(session, biz.admin, "sync script", days=7)
    await session.commit()
    row = await _row(session, token)
    env = {"FIELDHUB_MODE": "test", "FIELDHUB_DATABASE_URL": settings.database_url, "COLUMNS": "220"}
    get_settings.cache_clear()
    try:
        # The commands run their own event loop: give them a thread of their own.
        listed = await asyncio.to_thread(CliRunner().invoke, cli, ["token", "list"], env=env)
        revoked = await asyncio.to_thread(CliRunner().invoke, cli, ["token", "revoke", str(row.id)], env=env)
        again = await asyncio.to_thread(CliRunner().invoke, cli, ["token", "list", "--email", admin_email], env=env)
        missing = await asyncio.to_thread(CliRunner().invoke, cli, ["token", "revoke", "999999"], env=env)
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert "sync script" in listed.output and token[:10] in listed.output and "active" in listed.output
    assert token not in listed.output
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert again.exit_code == 0 and "revoked" in again.output
    assert missing.exit_code == 1
    assert (await _row(session, token)).revoked_at is not None
