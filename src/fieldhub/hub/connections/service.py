"""Connection rows: the only writer. Tokens go in sealed by the vault and come out only through `read_secret`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.mapping import mapping_fields
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.notify import notify
from fieldhub.hub.vault import DecryptError, Vault
from fieldhub.log import get_logger

log = get_logger(__name__)
SECRET_FIELDS = ("access_token", "refresh_token")


class AccountHeld(Exception):
    """Another business holds this account (provider.toml one_business_per_account); `message` says what to do."""

    def __init__(self, provider: str) -> None:
        self.message = (
            f"This {_name(provider)} account is already connected to another fieldhub business. "
            "Disconnect it there first, or connect a different account."
        )
        super().__init__(self.message)


@dataclass
class AccountInfo:
    """The account a connect landed on: what `hooks.after_connect` returns."""

    id: str
    name: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TokenSet:
    """A token endpoint's answer, normalised: absolute expiry times, the refresh token if any."""

    access_token: str
    refresh_token: str | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    scope: str = ""

    @classmethod
    def from_response(cls, token: dict[str, Any], now: datetime | None = None) -> TokenSet:
        now = now or utcnow()

        def after(seconds: Any) -> datetime | None:
            try:
                return now + timedelta(seconds=int(seconds)) if seconds not in (None, "") else None
            except (TypeError, ValueError):
                return None

        # Intuit names the refresh lifetime x_refresh_token_expires_in; RFC-style servers refresh_token_expires_in.
        refresh_in = token.get("refresh_token_expires_in", token.get("x_refresh_token_expires_in"))
        scope = token.get("scope", "")
        return cls(
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token") or None,
            access_expires_at=after(token.get("expires_in")),
            refresh_expires_at=after(refresh_in),
            scope=" ".join(scope) if isinstance(scope, list) else str(scope or ""),
        )


def secret_aad(conn: Any, field_name: str) -> dict[str, Any]:
    """The associated data binding a sealed token to its row and field (`conn` is a Connection or a row of it)."""
    return {"tenant_id": conn.tenant_id, "owner_id": conn.id, "field": f"connections.{field_name}"}


def seal(vault: Vault, conn: Connection, field_name: str, value: str | None) -> str | None:
    if value is None:
        return None
    return vault.encrypt(value, **secret_aad(conn, field_name))


def read_secret(vault: Vault, conn: Connection, field_name: str) -> str | None:
    """A token in the clear, or DecryptError (tampered, another row's, or a key that left the ring)."""
    sealed = getattr(conn, field_name)
    if sealed is None:
        return None
    return vault.decrypt(sealed, **secret_aad(conn, field_name))


def store_tokens(vault: Vault, conn: Connection, tokens: TokenSet, *, keep_refresh: bool = True) -> None:
    """Seal and set a new token set; bumps token_version so a stale writer's compare-and-set fails."""
    conn.access_token = seal(vault, conn, "access_token", tokens.access_token)
    if tokens.refresh_token is not None or not keep_refresh:
        conn.refresh_token = seal(vault, conn, "refresh_token", tokens.refresh_token)
    conn.access_expires_at = tokens.access_expires_at
    if tokens.refresh_expires_at is not None or not keep_refresh:
        conn.refresh_expires_at = tokens.refresh_expires_at
    if tokens.scope:
        conn.scopes = tokens.scope
    conn.token_version = (conn.token_version or 0) + 1


async def get(session: AsyncSession, tenant_id: int, connection_id: int) -> Connection | None:
    return await session.scalar(
        select(Connection).where(Connection.id == connection_id, Connection.tenant_id == tenant_id)
    )


async def for_provider(session: AsyncSession, tenant_id: int, provider: str) -> list[Connection]:
    """The tenant's connections to one provider, live ones first, newest first."""
    rows = await session.scalars(
        select(Connection)
        .where(Connection.tenant_id == tenant_id, Connection.provider == provider)
        .order_by(Connection.id.desc())
    )
    order = {ConnectionStatus.CONNECTED: 0, ConnectionStatus.NEEDS_REAUTH: 1, ConnectionStatus.ERROR: 2}
    return sorted(rows, key=lambda c: order.get(ConnectionStatus(c.status), 3))


async def save_connected(
    session: AsyncSession,
    vault: Vault,
    *,
    tenant_id: int,
    provider: str,
    account: AccountInfo,
    tokens: TokenSet,
    reconnect_id: int | None = None,
) -> Connection:
    """Create or revive the connection to this account and seal its tokens; syncing resumes.

    AccountHeld when the account is a business's own and another business holds it (not disconnected). The
    check reads first for the plain case; the unique index uq_connections_provider_held_account decides two
    connects at the same moment, whichever commits first keeping it. Refused, the session is rolled back
    (nothing of this connect is written) and the other business's connection is untouched and unnamed.
    """
    owned = registry.get(provider).auth.one_business_per_account
    if owned and await held_elsewhere(session, tenant_id, provider, account.id):
        await session.rollback()
        raise AccountHeld(provider)
    conn = None
    if reconnect_id is not None:
        conn = await get(session, tenant_id, reconnect_id)
        if conn is not None and (conn.provider != provider or conn.account_id != account.id):
            # Reconnect landed on another account: keep the old row (its history) and make a new one.
            conn = None
    if conn is None:
        conn = await session.scalar(
            select(Connection).where(
                Connection.tenant_id == tenant_id, Connection.provider == provider, Connection.account_id == account.id
            )
        )
    now = utcnow()
    if conn is None:
        conn = Connection(tenant_id=tenant_id, provider=provider, account_id=account.id, settings={}, token_version=0)
        # A provider that asks for an account mapping starts with Auto-Sync off: the guide maps the accounts,
        # runs a test sync, and only then turns it on (seed 001, steps 3, 5 and 6).
        conn.auto_sync = not mapping_fields(provider)
        session.add(conn)
    conn.owns_account = owned
    conn.status = ConnectionStatus.CONNECTED
    try:
        await session.flush()  # the id is part of the ciphertext's associated data; the index speaks here
    except IntegrityError:
        await session.rollback()
        if not owned:
            raise
        log.info("connection.account_held", tenant_id=tenant_id, provider=provider)
        raise AccountHeld(provider) from None
    conn.account_name = account.name or conn.account_name or account.id
    conn.account_details = {**(conn.account_details or {}), **account.details}
    store_tokens(vault, conn, tokens, keep_refresh=False)
    conn.sync_error = ""
    conn.check_error = ""
    conn.connected_at = now
    conn.disconnected_at = None
    conn.last_refreshed_at = now
    await session.flush()
    log.info("connection.connected", tenant_id=tenant_id, provider=provider, connection_id=conn.id)
    return conn


async def held_elsewhere(session: AsyncSession, tenant_id: int, provider: str, account_id: str) -> bool:
    """Whether another business holds this account: a connection to it that is theirs and not disconnected."""
    found = await session.scalar(
        select(Connection.id)
        .where(
            Connection.provider == provider,
            Connection.held_account == account_id,
            Connection.tenant_id != tenant_id,
        )
        .limit(1)
    )
    return found is not None


def reauth_message(provider: str) -> str:
    name = _name(provider)
    return f"{name} stopped accepting our access — someone may have disconnected the app in {name}. Click Reconnect."


async def mark_needs_reauth(session: AsyncSession, conn: Connection, reason: str) -> None:
    """Pause the connection, say why in plain words and tell the owner; does nothing if already paused."""
    if conn.status == ConnectionStatus.NEEDS_REAUTH and conn.sync_error == reason:
        return
    conn.status = ConnectionStatus.NEEDS_REAUTH
    conn.sync_error = reason
    await notify(
        session,
        conn.tenant_id,
        "connection.needs_reauth",
        f"{_name(conn.provider)} needs to be reconnected",
        reason,
        link=settings_link(conn.provider),
    )
    log.warning("connection.needs_reauth", tenant_id=conn.tenant_id, provider=conn.provider, connection_id=conn.id)


async def unreadable_secret(session: AsyncSession, conn: Connection, error: DecryptError) -> None:
    """A ciphertext that won't open: never crash a page or a worker, pause the connection and ask to Reconnect."""
    log.error("vault.decrypt.failed", tenant_id=conn.tenant_id, connection_id=conn.id, error=str(error))
    await mark_needs_reauth(
        session,
        conn,
        f"We could not read the stored {_name(conn.provider)} sign-in (it may have been damaged or the "
        "encryption key changed). Click Reconnect to sign in again.",
    )


def forget_tokens(conn: Connection) -> None:
    conn.access_token = None
    conn.refresh_token = None
    conn.access_expires_at = None
    conn.refresh_expires_at = None
    conn.token_version = (conn.token_version or 0) + 1


def settings_link(provider: str) -> str:
    spec = registry.get(provider)
    if spec.card:
        return f"/settings/integrations/{spec.card}"
    return f"/settings/{spec.settings_category}/{spec.key}"


def _name(provider: str) -> str:
    try:
        spec = registry.get(provider)
    except registry.UnknownProvider:
        return provider
    return spec.hub_card.title if spec.hub_card and spec.hub_card.title and spec.card == spec.key else spec.name
