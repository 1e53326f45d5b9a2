"""Google Business Profile's page carries the guide's sync status: needsReauth and syncError, as the connection
holds them, turning true with the plain-words reason once the health check finds the grant revoked (issue 19 item 2)."""

from __future__ import annotations

from sqlalchemy import select

from fieldhub.hub.connections import probe
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import env_for
from tests.hub.oauth.conftest import consent

KEY = "google_business_profile"


async def test_issue19_item2_gbp_page_shows_needs_reauth_and_sync_error(app, owner, session) -> None:
    r, _ = await consent(owner, KEY)
    assert r.status_code == 303, r.text
    page = (await owner.get(f"/settings/integrations/{KEY}")).text
    assert 'data-needs-reauth="false"' in page and "data-sync-error>None<" in page
    await app.state.endpoints.emulators[KEY].oauth.control_revoke("")
    conn = await session.scalar(select(Connection).where(Connection.provider == KEY))
    assert conn is not None
    outcome = await probe.check(env_for(app), conn.id)
    assert outcome.alive is False
    await session.refresh(conn)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    page = (await owner.get(f"/settings/integrations/{KEY}")).text
    assert 'data-needs-reauth="true"' in page
    shown = page[page.index("data-sync-error>") :]
    assert "stopped accepting our access" in shown[:300]
