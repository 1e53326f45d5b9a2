"""One external account, one business (issue 14 item 3): a second business's connect of an account another holds is
refused with what to do, even when both connect at the same moment; a reconnect by the holder still works, and a
disconnected connection elsewhere doesn't block."""

from __future__ import annotations

import asyncio
from html import unescape

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fieldhub.db import utcnow
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.service import AccountHeld, AccountInfo, TokenSet
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.webhooks.inbox import connection_for
from fieldhub.providers.quickbooks.emulator import US_REALM
from tests.conftest import Business
from tests.hub.oauth.conftest import consent

HELD = (
    "This QuickBooks account is already connected to another fieldhub business. "
    "Disconnect it there first, or connect a different account."
)


async def _rows(session) -> list[Connection]:
    rows = list(
        await session.scalars(select(Connection).order_by(Connection.id).execution_options(populate_existing=True))
    )
    await session.commit()
    return rows


@pytest.fixture
async def other_owner(make_client, other_biz: Business):
    async with make_client() as client:
        yield await client.login(other_biz.owner.email)


async def test_issue14_item3_second_business_is_refused_with_what_to_do(
    app, owner, other_owner, session, biz: Business
) -> None:
    r, _ = await consent(owner, "quickbooks", account=US_REALM)
    assert r.status_code == 303, r.text
    [mine] = await _rows(session)
    mine_id, version, account_name = mine.id, mine.token_version, mine.account_name
    oauth = app.state.endpoints.emulators["quickbooks"].oauth
    live_before = sorted(t.value for t in oauth.tokens.values() if not t.revoked)

    r, _ = await consent(other_owner, "quickbooks", account=US_REALM)
    assert r.status_code == 409
    page = unescape(r.text)
    assert HELD in page
    assert biz.tenant.name not in page and account_name not in page  # nothing about the other business
    [still] = await _rows(session)  # nothing written for the second business
    assert still.id == mine_id and still.tenant_id == biz.tenant.id and still.status == ConnectionStatus.CONNECTED
    assert still.token_version == version
    # The first business's grant is untouched at QuickBooks: revoking the refused one would have ended it.
    assert oauth.revocations == []
    assert set(live_before) <= {t.value for t in oauth.tokens.values() if not t.revoked}


async def test_issue14_item3_reconnect_works_and_a_disconnected_connection_elsewhere_does_not_block(
    owner, other_owner, session, biz: Business, other_biz: Business
) -> None:
    r, _ = await consent(owner, "quickbooks", account=US_REALM)
    [mine] = await _rows(session)
    mine_id = mine.id
    # The holder's own Reconnect lands on the same row.
    r, _ = await consent(owner, "quickbooks", account=US_REALM, reconnect=mine_id)
    assert r.status_code == 303
    assert [(c.id, c.status) for c in await _rows(session)] == [(mine_id, ConnectionStatus.CONNECTED)]

    # Disconnected here, the account is free: the other business connects it.
    r = await owner.submit(f"/integrations/quickbooks/connections/{mine_id}/disconnect")
    assert r.status_code == 303
    r, _ = await consent(other_owner, "quickbooks", account=US_REALM)
    assert r.status_code == 303, r.text
    _, theirs = await _rows(session)
    theirs_id = theirs.id
    assert theirs.tenant_id == other_biz.tenant.id and theirs.status == ConnectionStatus.CONNECTED
    # Now the first business is the second: refused, its old row left disconnected.
    r, _ = await consent(owner, "quickbooks", account=US_REALM, reconnect=mine_id)
    assert r.status_code == 409 and HELD in unescape(r.text)
    assert [(c.id, c.status) for c in await _rows(session)] == [
        (mine_id, ConnectionStatus.DISCONNECTED),
        (theirs_id, ConnectionStatus.CONNECTED),
    ]
    # Their webhooks reach them alone.
    assert (await connection_for(session, "quickbooks", US_REALM)).id == theirs_id


async def _save(app, tenant_id: int) -> Connection:
    async with app.state.sessionmaker() as s:
        conn = await service.save_connected(
            s,
            env_for(app).vault,
            tenant_id=tenant_id,
            provider="stripe",
            account=AccountInfo(id="acct_1RaceToConnect000"),
            tokens=TokenSet("acct_1RaceToConnect000"),
        )
        await s.commit()
        return conn


async def test_issue14_item3_two_connects_at_once_only_one_holds_the_account(
    app, session, biz: Business, other_biz: Business
) -> None:
    """Both connects pass the read-first check; the database decides, and the loser is told, not half-written."""
    env = env_for(app)
    first = app.state.sessionmaker()
    try:
        await service.save_connected(
            first,
            env.vault,
            tenant_id=biz.tenant.id,
            provider="stripe",
            account=AccountInfo(id="acct_1RaceToConnect000"),
            tokens=TokenSet("acct_1RaceToConnect000"),
        )
        # The first connect is written but not committed: the second can't see it, and waits on the index.
        second = asyncio.create_task(_save(app, other_biz.tenant.id))
        await asyncio.sleep(0.3)
        assert not second.done()
        await first.commit()
        with pytest.raises(AccountHeld) as refused:
            await second
    finally:
        await first.close()
    assert "This Stripe account is already connected to another fieldhub business." in refused.value.message
    rows = await _rows(session)
    assert [(c.tenant_id, c.status, c.owns_account) for c in rows] == [
        (biz.tenant.id, ConnectionStatus.CONNECTED, True)
    ]


async def test_issue14_item3_the_database_refuses_a_second_holder(app, session, biz: Business, other_biz: Business):
    """Whatever writes connections, the unique index holds: two live owners of one account can't exist."""
    for tenant in (biz, other_biz):
        session.add(
            Connection(
                tenant_id=tenant.tenant.id,
                provider="stripe",
                account_id="acct_1Shared",
                owns_account=True,
                status=ConnectionStatus.DISCONNECTED if tenant is biz else ConnectionStatus.CONNECTED,
                connected_at=utcnow(),
            )
        )
    await session.commit()  # a disconnected holder and a live one: fine
    old = (await _rows(session))[0]
    old.status = ConnectionStatus.NEEDS_REAUTH  # paused still holds it: reviving the other can't be written
    with pytest.raises(IntegrityError):
        await session.commit()
    await session.rollback()
