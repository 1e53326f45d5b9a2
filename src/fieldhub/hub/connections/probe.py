"""The health check: a cheap authenticated call to each connection that had no sync traffic lately.

A grant revoked at the provider (the app removed in Google, QuickBooks or Xero) shows nowhere until fieldhub
calls: a provider that only connects, or a quiet one, would say Connected / Excellent for ever. So every
connected account is called once per `health_check_seconds` unless a sync run, a connect or an earlier check
did so meanwhile. The periodic task runs it in the embedded dispatcher and in procrastinate's workers alike
(hub/sync/dispatch.py periodic_tasks).

What the call is comes from the provider's folder: `hooks.check_health(env, connection)` where it needs its own
way (Stripe acts for an account with the platform's key), else the cheap call its toml declares in `[health]`
(userinfo, /me, CompanyInfo, /connections), made through the ProviderClient (one token refresh on a 401, the
shared rate limits), else for an API key the `hooks.verify_key` that checked it at connect.

An answer proves the sign-in. A refused refresh (invalid_grant) or a 401 a fresh token can't cure is a dead
grant: the connection pauses, the owner is told (in-app and by email), the banner, page and hub card say
Needs reconnect. A network error, a timeout, a 429 or a 5xx is the provider's trouble, not the grant's: it is
noted on the connection, tried again next round, and the status stays as it is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select

from fieldhub.db import utcnow
from fieldhub.hub import features, registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth, ProviderError, RetryLater
from fieldhub.hub.http import RetryPolicy
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import get_access_token
from fieldhub.hub.spec import AuthMode, ProviderSpec
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.models import SyncRun
from fieldhub.log import get_logger

log = get_logger(__name__)
# A check is one small request: it gives up sooner than a sync would, and a provider that is down is asked
# again next round rather than waited for (a round checks many connections).
TIMEOUT = 10.0
RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_inline_wait=5.0)
AT_ONCE = 4  # connections checked at the same time in one round


@dataclass(frozen=True)
class Outcome:
    """What one check found: the grant works (True), is gone (False), or the provider could not say (None)."""

    connection_id: int
    alive: bool | None
    reason: str = ""


def health_url(env: OAuthEnv, spec: ProviderSpec, connection: Connection) -> str:
    """The toml's cheap call for this connection: a path under the API base as is, an absolute URL where it is
    served here (the emulator in demo and test mode)."""
    assert spec.health is not None
    url = spec.health.url.replace("{account_id}", connection.account_id)
    return url if url.startswith("/") else env.endpoints.url(spec.key, url)


async def _call(env: OAuthEnv, conn: Connection, options: dict[str, Any]) -> None:
    """Make the provider's cheap call; raises NeedsReauth for a dead grant, another ProviderError otherwise."""
    spec = registry.get(conn.provider)
    hooks = registry.import_module(spec.key, "hooks")
    own = getattr(hooks, "check_health", None)
    if own is not None:
        await own(env, conn)
        return
    if spec.health is not None:
        options = {"timeout": TIMEOUT, "retry": RETRY} | options
        async with client_for(env, conn, **options) as client:
            await client.request(
                spec.health.method,
                health_url(env, spec, conn),
                params=spec.health.params or None,
                json=spec.health.body,
            )
        return
    verify = getattr(hooks, "verify_key", None)
    if spec.auth.mode is AuthMode.API_KEY and verify is not None:
        key = await get_access_token(env, conn.id)
        async with env.endpoints.client(spec.key, timeout=TIMEOUT) as http:
            try:
                await verify(spec, env, http, key)
            except ValueError:
                raise NeedsReauth(f"{spec.name} refused the API key. Enter a new key to reconnect.") from None
            except httpx.HTTPError as e:
                status = getattr(getattr(e, "response", None), "status_code", None)
                raise RetryLater(f"{spec.name} could not be reached to check the key", status=status) from None
        return
    raise LookupError(f"{spec.key} declares no health check")


def _reason(spec: ProviderSpec, error: BaseException) -> str:
    """Why a check could not tell, in plain words (never the provider's key or a token)."""
    if isinstance(error, ProviderError) and error.status:
        return f"{spec.name} answered {error.status} to the health check; fieldhub will ask again."
    if isinstance(error, ProviderError | httpx.HTTPError):
        return f"fieldhub could not reach {spec.name} to check the connection; it will ask again."
    return f"The health check of {spec.name} failed ({type(error).__name__}); fieldhub will ask again."


async def check(env: OAuthEnv, connection_id: int, **options: Any) -> Outcome:
    """Check one connection now and record what was found (a dead grant pauses it and tells the owner).

    `options` go to the ProviderClient (tests inject `transport`, `sleep`).
    """
    async with env.sessionmaker() as session:
        conn = await session.get(Connection, connection_id)
        if conn is None or conn.status != ConnectionStatus.CONNECTED:
            return Outcome(connection_id, None, "not connected")
        session.expunge(conn)
    spec = registry.get(conn.provider)
    try:
        await _call(env, conn, options)
        outcome = Outcome(connection_id, True)
    except NeedsReauth as e:
        dead = service.reauth_message(conn.provider) if spec.auth.mode is AuthMode.OAUTH2 else e.reason
        outcome = Outcome(connection_id, False, dead)
    except Exception as e:  # noqa: BLE001 — an outage, a timeout, a surprise: none of them is a dead grant
        log.warning(
            "connection.check.unsure",
            connection_id=connection_id,
            provider=conn.provider,
            error=type(e).__name__,
            status=getattr(e, "status", None),
        )
        outcome = Outcome(connection_id, None, _reason(spec, e))
    await _record(env, outcome)
    log.info("connection.checked", connection_id=connection_id, provider=conn.provider, alive=outcome.alive)
    return outcome


async def _record(env: OAuthEnv, outcome: Outcome) -> None:
    async with env.sessionmaker() as session:
        conn = await session.get(Connection, outcome.connection_id)
        if conn is None:
            return
        conn.checked_at = utcnow()
        # A dead grant's words go to sync_error with the pause; check_error is for "could not tell" only.
        conn.check_error = outcome.reason if outcome.alive is None else ""
        # The token refresh may have paused it already (invalid_grant), with the same words and the alert sent.
        if outcome.alive is False and conn.status == ConnectionStatus.CONNECTED:
            await service.mark_needs_reauth(session, conn, outcome.reason)
        await session.commit()


async def due(env: OAuthEnv, every: timedelta, now: datetime | None = None) -> list[int]:
    """Connected accounts nothing has proven for `every`: no sync run started, no connect and no check since."""
    cutoff = (now or utcnow()) - every
    # ix_sync_runs_connection_started answers "a run since the cutoff?" per connection, from its newest end.
    recent_run = select(SyncRun.id).where(SyncRun.connection_id == Connection.id, SyncRun.started_at > cutoff)
    checkable = [spec.key for spec in registry.all() if features.get(spec.key).checks_health]
    async with env.sessionmaker() as session:
        return list(
            await session.scalars(
                select(Connection.id)
                .where(
                    Connection.status == ConnectionStatus.CONNECTED,
                    Connection.provider.in_(checkable),
                    or_(Connection.connected_at.is_(None), Connection.connected_at <= cutoff),
                    or_(Connection.checked_at.is_(None), Connection.checked_at <= cutoff),
                    ~recent_run.exists(),
                )
                .order_by(Connection.id)
            )
        )


async def check_due(env: OAuthEnv) -> int:
    """The periodic task: check every connection that is due, a few at a time; returns how many were checked."""
    ids = await due(env, timedelta(seconds=env.settings.health_check_seconds))
    if not ids:
        return 0
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(cid: int) -> None:
        async with gate:
            try:
                await check(env, cid)
            except Exception:  # noqa: BLE001 — one connection's trouble must not stop the round
                log.exception("connection.check.failed", connection_id=cid)

    await asyncio.gather(*(one(cid) for cid in ids))
    return len(ids)
