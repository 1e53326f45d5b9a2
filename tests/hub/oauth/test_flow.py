"""Connect, callback, reconnect and disconnect against the mounted emulators."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus, OAuthState
from fieldhub.settings import ProviderCredentials
from tests.hub.oauth.conftest import consent

OAUTH_PROVIDERS = [
    "quickbooks",
    "xero",
    "freshbooks",
    "wave",
    "google_calendar",
    "google_business_profile",
    "outlook",
    "docusign",
    "dropbox_sign",
    "thumbtack",
    "stripe",
]


async def _connections(session) -> list[Connection]:
    session.expire_all()
    return list((await session.scalars(select(Connection))).all())


async def test_full_connect_stores_encrypted_tokens(owner, session, emulators) -> None:
    r, _ = await consent(owner, "quickbooks")
    assert r.status_code == 303 and r.headers["location"].startswith("/settings/integrations/quickbooks")
    [conn] = await _connections(session)
    assert conn.status == ConnectionStatus.CONNECTED
    assert conn.account_id == "9341453050001234" and conn.account_name == "Riverbend Plumbing & Heating"
    # What the emulator issued is nowhere in the raw columns.
    issued = [t.value for t in emulators["quickbooks"].oauth.tokens.values()]
    assert len(issued) == 2
    raw = (await session.execute(select(Connection.access_token, Connection.refresh_token))).one()
    for value in issued:
        assert value not in raw[0] and value not in raw[1]
    assert raw[0].startswith("v1.") and raw[1].startswith("v1.")
    assert conn.access_expires_at > utcnow() + timedelta(minutes=55)


@pytest.mark.parametrize("key", OAUTH_PROVIDERS)
async def test_every_oauth_provider_connects_and_disconnects(owner, session, emulators, key) -> None:
    r, _ = await consent(owner, key)
    assert r.status_code == 303, r.text
    [conn] = await _connections(session)
    assert conn.status == ConnectionStatus.CONNECTED and conn.account_name
    r = await owner.submit(f"/integrations/{key}/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    [conn] = await _connections(session)
    assert conn.status == ConnectionStatus.DISCONNECTED and conn.access_token is None and conn.refresh_token is None


async def test_tampered_state_is_refused_and_nothing_stored(owner, session) -> None:
    start = await owner.get("/integrations/quickbooks/connect", params={"mode": "page"})
    location = start.headers["location"]
    r = await owner.get("/oauth/callback", params={"state": "forged-state", "code": "x", "realmId": "1"})
    assert r.status_code == 400 and "not valid" in r.text
    assert await _connections(session) == []
    assert location  # the real state is untouched and unused
    assert (await session.scalar(select(OAuthState))).used_at is None


async def test_replayed_state_is_refused(owner, session) -> None:
    r, query = await consent(owner, "quickbooks")
    assert r.status_code == 303
    [conn] = await _connections(session)
    before = conn.token_version
    again = await owner.get("/oauth/callback", params=query)
    assert again.status_code == 400 and "already used" in again.text
    [conn] = await _connections(session)
    assert conn.token_version == before


async def test_expired_state_is_refused(owner, session) -> None:
    start = await owner.get("/integrations/quickbooks/connect", params={"mode": "page"})
    await session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    await session.commit()
    authorize = start.headers["location"]
    from urllib.parse import parse_qs, urlsplit

    state = parse_qs(urlsplit(authorize).query)["state"][0]
    r = await owner.get("/oauth/callback", params={"state": state, "code": "abc", "realmId": "9341453050001234"})
    assert r.status_code == 400 and "expired" in r.text
    assert await _connections(session) == []


async def test_state_from_another_user_is_refused(owner, make_client, biz, session) -> None:
    start = await owner.get("/integrations/quickbooks/connect", params={"mode": "page"})
    from urllib.parse import parse_qs, urlsplit

    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    async with make_client() as other:
        await other.login(biz.admin.email)
        r = await other.get("/oauth/callback", params={"state": state, "code": "abc"})
    assert r.status_code == 400 and "someone else" in r.text
    assert await _connections(session) == []


async def test_denied_consent_says_so_and_stores_nothing(owner, session) -> None:
    r, _ = await consent(owner, "quickbooks", decision="deny")
    assert r.status_code == 400
    assert "You cancelled the connection to QuickBooks Online" in r.text
    assert await _connections(session) == []


async def test_popup_mode_posts_message_to_opener(owner) -> None:
    r, _ = await consent(owner, "quickbooks", mode="popup")
    assert r.status_code == 200
    assert 'data-connect-result="connected"' in r.text and 'data-provider="quickbooks"' in r.text
    assert '<script src="/static/popup.js">' in r.text  # the message is sent by a static script (the CSP's rule)
    script = (await owner.get("/static/popup.js")).text
    assert "window.opener.postMessage" in script and '"fieldhub:connected"' in script and "location.origin" in script


async def test_pkce_and_extra_authorize_params(owner) -> None:
    start = await owner.get("/integrations/google_calendar/connect")
    location = start.headers["location"]
    assert location.startswith("http://testserver/emulators/google_calendar/o/oauth2/v2/auth?")
    assert "code_challenge_method=S256" in location and "code_challenge=" in location
    assert "access_type=offline" in location and "prompt=consent" in location
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Foauth%2Fcallback" in location


async def test_only_owner_and_admin_connect(make_client, biz) -> None:
    async with make_client() as tech:
        await tech.login(biz.tech.email)
        r = await tech.get("/integrations/quickbooks/connect")
    assert r.status_code == 403


async def test_missing_client_secret_is_named_not_shown(app, owner, session) -> None:
    app.state.settings.providers["quickbooks"] = ProviderCredentials(client_id="real-id", client_secret="changeme")
    app.state.settings.mode = "production"
    try:
        r = await owner.get("/integrations/quickbooks/connect", params={"mode": "page"})
    finally:
        app.state.settings.mode = "test"
        del app.state.settings.providers["quickbooks"]
    assert r.status_code == 503
    assert "FIELDHUB_PROVIDERS__QUICKBOOKS__CLIENT_SECRET" in r.text and "changeme" not in r.text
    assert (await session.scalar(select(OAuthState))) is None


async def test_reconnect_restores_the_same_connection(owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    [conn] = await _connections(session)
    await emulators["quickbooks"].oauth.control_revoke()
    conn.status = ConnectionStatus.NEEDS_REAUTH
    conn.sync_error = "QuickBooks stopped accepting our access"
    await session.commit()
    r, _ = await consent(owner, "quickbooks", reconnect=conn.id)
    assert r.status_code == 303
    [again] = await _connections(session)
    assert again.id == conn.id and again.status == ConnectionStatus.CONNECTED and again.sync_error == ""


async def test_disconnect_revokes_at_the_provider_and_keeps_data(owner, session, emulators) -> None:
    await consent(owner, "quickbooks")
    [conn] = await _connections(session)
    oauth = emulators["quickbooks"].oauth
    r = await owner.submit(f"/integrations/quickbooks/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    assert oauth.revocations == ["9341453050001234"]
    revoke = [e for e in emulators["quickbooks"].requests if e.path == "/v2/oauth2/tokens/revoke"]
    assert revoke and revoke[0].headers["content-type"].startswith("application/json")
    assert all(t.revoked for t in oauth.tokens.values())
    [conn] = await _connections(session)
    assert conn.status == ConnectionStatus.DISCONNECTED and conn.disconnected_at is not None
    page = await owner.get("/integrations/quickbooks/panel")
    assert "Disconnected" in page.text and "Connect to QuickBooks Online" in page.text
