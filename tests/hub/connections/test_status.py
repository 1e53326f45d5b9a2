"""Token state and the hub grid's one-line status come from the connection row."""

from __future__ import annotations

from datetime import timedelta

from fieldhub.db import utcnow
from fieldhub.hub.connections.health import Tier, TokenState
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.status import health_of, summary, token_state


def _conn(**kw) -> Connection:
    base = dict(
        tenant_id=1,
        provider="quickbooks",
        account_id="1",
        status=ConnectionStatus.CONNECTED,
        access_token="v1.k1.x",
        refresh_token="v1.k1.y",
        access_expires_at=utcnow() + timedelta(hours=1),
        refresh_expires_at=utcnow() + timedelta(days=100),
    )
    return Connection(**{**base, **kw})


def test_token_state_from_the_row() -> None:
    assert token_state(_conn()) is TokenState.VALID
    # An access token that expires hourly is not a health problem: it refreshes.
    assert token_state(_conn(access_expires_at=utcnow() - timedelta(minutes=1))) is TokenState.VALID
    assert token_state(_conn(refresh_expires_at=utcnow() + timedelta(days=3))) is TokenState.EXPIRING
    assert token_state(_conn(refresh_expires_at=utcnow() - timedelta(days=1))) is TokenState.NEEDS_REAUTH
    assert token_state(_conn(status=ConnectionStatus.NEEDS_REAUTH)) is TokenState.NEEDS_REAUTH
    # Stripe: no refresh token and no expiry at all.
    assert token_state(_conn(refresh_token=None, refresh_expires_at=None, access_expires_at=None)) is TokenState.VALID


def test_health_of_rows() -> None:
    assert health_of(_conn()).tier is Tier.EXCELLENT
    assert health_of(_conn(status=ConnectionStatus.DISCONNECTED, access_token=None)).tier is Tier.DISCONNECTED
    assert health_of(_conn(refresh_expires_at=utcnow() + timedelta(days=3))).tier is Tier.WARNING


async def test_summary(session, biz) -> None:
    assert (await summary(session, biz.tenant.id, "quickbooks")).label == "Not connected"
    session.add(_conn(tenant_id=biz.tenant.id))
    await session.commit()
    got = await summary(session, biz.tenant.id, "quickbooks")
    assert (got.connected, got.label, got.tone) == (True, "Connected", "green")
