"""Api-key providers connect by a key their emulator checks, and disconnect."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from fieldhub.hub.connections.models import Connection, ConnectionStatus


@pytest.mark.parametrize("key", ["ahrefs", "pagespeed", "voice_ai", "voyage"])
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


@pytest.mark.parametrize("key", ["ahrefs", "pagespeed", "voice_ai", "voyage"])
async def test_issue15_item8_a_refused_key_is_shown_on_its_form(owner, session, key) -> None:
    """A refused key comes back on the provider's own page, the reason beside the field; the key is not echoed."""
    for typed, reason in (("changeme", "placeholder"), ("not-the-key-123", "did not accept that key")):
        r = await owner.submit(f"/integrations/{key}/api-key", {"api_key": typed})
        assert r.status_code == 400
        form = re.search(rf'<form method="post" action="/integrations/{key}/api-key".*?</form>', r.text, re.S)
        assert form, "the key form is not on the page"
        error = re.search(r'<div class="error" id="api-key-[\w]+-error" role="alert" data-key-error>([^<]+)<', form[0])
        assert error and reason in error[1]
        assert 'aria-invalid="true"' in form[0] and f'aria-describedby="api-key-{key}-error"' in form[0]
        assert typed not in r.text  # nothing typed into a secret field is written back into the page
    assert (await session.scalars(select(Connection))).all() == []
