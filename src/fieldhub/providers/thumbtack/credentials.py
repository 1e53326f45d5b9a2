"""The HTTP Basic credentials of a connection's Thumbtack webhook: generated here, the password sealed in the vault."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub.connections.models import Connection
from fieldhub.hub.connections.service import secret_aad
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.vault import DecryptError

KEY = "thumbtack"
FIELD = "settings.webhook_password"
PREFIX = "fieldhub-"


def username(conn: Connection) -> str:
    return f"{PREFIX}{conn.id}"


def issue(env: OAuthEnv, conn: Connection) -> tuple[str, str]:
    """New credentials for this connection's webhook; the password is kept sealed on the connection."""
    password = secrets.token_urlsafe(32)
    sealed = env.vault.encrypt(password, **secret_aad(conn, FIELD))
    hook = dict((conn.settings or {}).get("webhook") or {})
    hook.update({"username": username(conn), "password": sealed})
    conn.settings = {**(conn.settings or {}), "webhook": hook}
    return username(conn), password


def password(env: OAuthEnv, conn: Connection) -> str | None:
    sealed = ((conn.settings or {}).get("webhook") or {}).get("password")
    if not sealed:
        return None
    try:
        return env.vault.decrypt(sealed, **secret_aad(conn, FIELD))
    except DecryptError:
        return None


async def connection_named(session: AsyncSession, user: str) -> Connection | None:
    """The Thumbtack connection a webhook username names, if it still has those credentials."""
    ident = user.removeprefix(PREFIX)
    if not user.startswith(PREFIX) or not ident.isdigit() or len(ident) > 12:
        return None
    conn = await session.get(Connection, int(ident))
    if conn is None or conn.provider != KEY:
        return None
    hook = (conn.settings or {}).get("webhook") or {}
    return conn if hook.get("username") == user else None
