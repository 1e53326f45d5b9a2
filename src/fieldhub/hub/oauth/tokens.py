"""Access tokens for API calls: refreshed ahead of expiry, and serialised across processes by the database.

Many requests, workers and machines may find the same token expired at once. Only one of them may
refresh it: a provider that rotates refresh tokens (QuickBooks, Xero, FreshBooks) answers a second
refresh with the spent token with `invalid_grant`, and the connection looks revoked when it isn't.
So refresh takes the connection row's lock in the database (PostgreSQL `SELECT … FOR UPDATE`;
SQLite `BEGIN IMMEDIATE`, its one writer lock), then RE-READS the row: whoever waited behind the
refresher finds a fresh token and uses it instead of refreshing again. The new token set (with the
rotated refresh token) is committed before the lock is released, so no one can use the old one again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import NeedsReauth, RetryLater
from fieldhub.hub.oauth.client import OAuthError, credentials, oauth_client, urls
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import AuthMode
from fieldhub.hub.vault import CredentialError, DecryptError
from fieldhub.log import get_logger

log = get_logger(__name__)
# Refresh this long before the provider says the token expires: clocks drift and requests take time.
SKEW = timedelta(seconds=120)
REUSE_SECONDS = 30.0  # ConnectionAuth reuses a token it read this long; must stay well under SKEW
# refresh_due() renews tokens expiring within this window, and refresh tokens within REFRESH_TOKEN_AHEAD.
REFRESH_AHEAD = timedelta(minutes=10)
REFRESH_TOKEN_AHEAD = timedelta(days=7)
# Errors from the token endpoint that mean the grant is gone and only the user can bring it back.
DEAD_GRANT = {"invalid_grant", "invalid_token", "unauthorized_client", "access_denied"}


def _expiring(conn: Connection, within: timedelta) -> bool:
    return conn.access_expires_at is not None and conn.access_expires_at <= utcnow() + within


def _check_usable(conn: Connection | None) -> Connection:
    if conn is None:
        raise NeedsReauth("This connection no longer exists.")
    if conn.status != ConnectionStatus.CONNECTED:
        raise NeedsReauth(
            conn.sync_error or f"The connection is {ConnectionStatus(conn.status).value.replace('_', ' ')}."
        )
    return conn


async def _open(session: AsyncSession, env: OAuthEnv, conn: Connection, field: str) -> str | None:
    try:
        return service.read_secret(env.vault, conn, field)
    except DecryptError as e:
        await service.unreadable_secret(session, conn, e)
        await session.commit()
        raise NeedsReauth(conn.sync_error) from None


async def get_access_token(
    env: OAuthEnv,
    connection_id: int,
    *,
    force_refresh: bool = False,
    rejected: str | None = None,
    within: timedelta = SKEW,
) -> str:
    """A usable access token for the connection.

    `force_refresh` after the provider answered 401 with `rejected` (the token it refused): refresh
    unless someone already replaced that token. Raises NeedsReauth (the grant is gone; the connection
    is paused and the owner told) or RetryLater (the token endpoint could not be reached).
    """
    async with env.sessionmaker() as session:
        conn = _check_usable(await session.get(Connection, connection_id))
        token = await _open(session, env, conn, "access_token")
        spec = registry.get(conn.provider)
        if spec.auth.mode is not AuthMode.OAUTH2:
            if force_refresh:
                await service.mark_needs_reauth(
                    session, conn, f"{spec.name} refused the API key. Enter a new key to reconnect."
                )
                await session.commit()
                raise NeedsReauth(conn.sync_error)
            if token is None:
                raise NeedsReauth("No API key is stored for this connection.")
            return token
        if token is not None and not force_refresh and not _expiring(conn, within):
            return token
    return await _refresh_locked(env, connection_id, rejected=rejected if force_refresh else None, within=within)


async def _lock_row(session: AsyncSession, env: OAuthEnv, connection_id: int) -> Connection | None:
    """Take the connection's refresh lock for the rest of this transaction and read the row fresh."""
    if env.is_sqlite:
        # SQLite has one writer lock; BEGIN IMMEDIATE takes it now (waiting up to busy_timeout), so a
        # second refresher blocks here until the first has committed the new tokens.
        await session.execute(text("BEGIN IMMEDIATE"))
        stmt = select(Connection).where(Connection.id == connection_id)
    else:
        stmt = select(Connection).where(Connection.id == connection_id).with_for_update()
    # populate_existing: the row may have changed while we waited; never trust an identity-map copy.
    return await session.scalar(stmt.execution_options(populate_existing=True))


async def _refresh_locked(env: OAuthEnv, connection_id: int, *, rejected: str | None, within: timedelta) -> str:
    async with env.sessionmaker() as session:
        try:
            conn = _check_usable(await _lock_row(session, env, connection_id))
            spec = registry.get(conn.provider)
            current = await _open(session, env, conn, "access_token")
            # Re-read after the lock: if another caller refreshed while we waited, share its token.
            if current is not None and current != rejected and not _expiring(conn, within):
                await session.commit()
                log.debug("oauth.refresh.shared", connection_id=connection_id)
                return current
            refresh_token = await _open(session, env, conn, "refresh_token")
            if not refresh_token:
                await service.mark_needs_reauth(session, conn, service.reauth_message(conn.provider))
                await session.commit()
                raise NeedsReauth(conn.sync_error)
            try:
                creds = credentials(env, spec)
            except CredentialError as e:
                conn.status = ConnectionStatus.ERROR
                conn.sync_error = f"The hub's {spec.name} app is not configured: {e}."
                await session.commit()
                raise RetryLater(conn.sync_error) from None
            client = oauth_client(env, spec, creds)
            try:
                async with client:
                    answer = await client.refresh_token(urls(env, spec).token, refresh_token=refresh_token)
            except OAuthError as e:
                if e.error in DEAD_GRANT:
                    log.warning("oauth.refresh.failed", connection_id=connection_id, error=e.error)
                    await service.mark_needs_reauth(session, conn, service.reauth_message(conn.provider))
                    await session.commit()
                    raise NeedsReauth(conn.sync_error) from None
                await session.rollback()
                log.warning("oauth.refresh.failed", connection_id=connection_id, error=e.error)
                raise RetryLater(f"{spec.name} did not renew our access ({e.error}); we'll try again.") from None
            except (httpx.HTTPError, ValueError) as e:
                await session.rollback()
                log.warning("oauth.refresh.failed", connection_id=connection_id, error=type(e).__name__)
                status = getattr(getattr(e, "response", None), "status_code", None)
                raise RetryLater(
                    f"Could not reach {spec.name} to renew our access; we'll try again.", status=status
                ) from None
            tokens = service.TokenSet.from_response(dict(answer))
            # A provider that doesn't rotate leaves refresh_token out (or repeats it): keep the one we have.
            service.store_tokens(env.vault, conn, tokens, keep_refresh=True)
            conn.last_refreshed_at = utcnow()
            conn.sync_error = ""
            await session.commit()
            log.info("oauth.refresh.succeeded", connection_id=connection_id, provider=conn.provider)
            return tokens.access_token
        except BaseException:
            if session.in_transaction():
                await session.rollback()
            raise


async def refresh_due(env: OAuthEnv, *, ahead: timedelta = REFRESH_AHEAD) -> int:
    """Refresh-ahead for every live OAuth connection whose access (or refresh) token runs out soon.

    The worker calls this periodically, so a connection used rarely still keeps its rolling refresh
    token alive (QuickBooks' 100 days, Xero's 60). Returns how many were refreshed; one failure does
    not stop the others (it has already paused its connection or will be retried next round).
    """
    now = utcnow()
    async with env.sessionmaker() as session:
        rows = await session.execute(
            select(
                Connection.id, Connection.provider, Connection.access_expires_at, Connection.refresh_expires_at
            ).where(Connection.status == ConnectionStatus.CONNECTED, Connection.refresh_token.is_not(None))
        )
        due = [
            cid
            for cid, provider, access_at, refresh_at in rows
            if _is_oauth(provider)
            and (
                (access_at is not None and access_at <= now + ahead)
                or (refresh_at is not None and refresh_at <= now + REFRESH_TOKEN_AHEAD)
            )
        ]
    refreshed = 0
    for cid in due:
        try:
            await get_access_token(env, cid, force_refresh=True, rejected=None, within=ahead)
            refreshed += 1
        except (NeedsReauth, RetryLater) as e:
            log.info("oauth.refresh_ahead.skipped", connection_id=cid, kind=e.kind)
    return refreshed


def _is_oauth(provider: str) -> bool:
    try:
        return registry.get(provider).auth.mode is AuthMode.OAUTH2
    except registry.UnknownProvider:
        return False


@dataclass
class ConnectionAuth:
    """The auth object hub/http.py's ProviderClient calls: headers for each request, refresh after a 401.

    A token read from the database is reused for REUSE_SECONDS (one read per half minute of a run,
    not one per request). That is safe: get_access_token hands out only tokens valid for SKEW more
    seconds, REUSE_SECONDS is well inside SKEW, and a token revoked meanwhile gets a 401, which
    refreshes it.
    """

    env: OAuthEnv
    connection_id: int
    _last: str | None = None
    _read_at: float = 0.0

    async def token(self) -> str:
        now = time.monotonic()
        if self._last is None or now - self._read_at > REUSE_SECONDS:
            self._last = await get_access_token(self.env, self.connection_id)
            self._read_at = now
        return self._last

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def refresh(self) -> None:
        """The provider refused the last token: refresh once (shared with anyone else who saw the same 401)."""
        self._last = await get_access_token(self.env, self.connection_id, force_refresh=True, rejected=self._last)
        self._read_at = time.monotonic()
