"""Api-key providers connect by a key their emulator checks, and disconnect."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fieldhub.hub.connections.models import Connection, ConnectionStatus


@pytest.mark.parametrize("key", ["ahrefs", "pagespeed", "voice_ai"])
async def test_api_key_connect_and_disconnect(owner, session, key) -> None:
    refused = await owner.submit(f"/integrations/{key}/api-key", {"api_key": "not-the-key-123"})
    assert refused.status_code == 400 and "did not accept" in refused.text
    assert (await session.scalars(select(Connection))).all() == []
    r = await owner.submit(f"/integrations/{key}/api-key", {"api_key": f"demo-{key}-api-key"})
    assert r.status_code == 303, r.text
    conn = (await session.scalars(select(Connection))).one()
    assert conn.status == ConnectionStatus.CONNECTED and f"demo-{key}-api-key" not in conn.access_token
    r = await owner.submit(f"/integrations/{key}/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    session.expire_all()
    conn = (await session.scalars(select(Connection))).one()
    assert conn.status == ConnectionStatus.DISCONNECTED and conn.access_token is None


async def test_placeholder_key_is_refused(owner, session) -> None:
    r = await owner.submit("/integrations/ahrefs/api-key", {"api_key": "changeme"})
    assert r.status_code == 400 and "placeholder" in r.text
