"""Connect, reconnect and disconnect: the authorization request, the one callback for every provider, revocation.

The `state` sent to the provider is a random value whose SHA-256 is stored with who asked (user,
tenant, login session), for which provider, the sealed PKCE verifier, and where to land afterwards.
It is single-use and lives ten minutes. The callback refuses anything that doesn't match, and
stores nothing in that case.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus, OAuthState
from fieldhub.hub.connections.service import AccountInfo, TokenSet
from fieldhub.hub.oauth.client import OAuthError, credentials, oauth_client, urls
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import AuthMode, ProviderSpec
from fieldhub.hub.vault import DecryptError
from fieldhub.log import get_logger

log = get_logger(__name__)
STATE_LIFETIME = timedelta(minutes=10)
Target = Literal["popup", "page"]


class ConnectError(Exception):
    """A connect that can't go on; `message` is shown to the user as is (plain words, no secrets)."""

    def __init__(
        self, message: str, *, provider: str | None = None, target: Target = "page", status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.target = target
        self.status = status


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def verifier_aad(row: Any) -> dict[str, Any]:
    """The associated data binding a sealed PKCE verifier to its state (`row` is an OAuthState or a row of it)."""
    return {"tenant_id": row.tenant_id, "owner_id": row.state_hash, "field": "oauth_states.code_verifier"}


def oauth_spec(key: str) -> ProviderSpec:
    try:
        spec = registry.get(key)
    except registry.UnknownProvider:
        raise ConnectError("There is no such integration.") from None
    if spec.auth.mode is not AuthMode.OAUTH2:
        raise ConnectError(f"{spec.name} connects with an API key, not a sign-in.", provider=key)
    return spec


async def start(
    env: OAuthEnv,
    session: AsyncSession,
    *,
    key: str,
    tenant_id: int,
    user_id: int,
    login_session_id: int | None,
    target: Target = "popup",
    reconnect_id: int | None = None,
) -> str:
    """Record a single-use state and return the provider's authorize URL to send the browser to."""
    spec = oauth_spec(key)
    creds = credentials(env, spec)  # CredentialError names the setting: the route shows it
    if reconnect_id is not None:
        conn = await service.get(session, tenant_id, reconnect_id)
        if conn is None or conn.provider != key:
            raise ConnectError("That connection was not found.", provider=key, target=target)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if spec.auth.pkce else None
    now = utcnow()
    row = OAuthState(
        state_hash=_hash(state),
        tenant_id=tenant_id,
        user_id=user_id,
        login_session_id=login_session_id,
        provider=key,
        redirect_target=target,
        reconnect_connection_id=reconnect_id,
        created_at=now,
        expires_at=now + STATE_LIFETIME,
    )
    session.add(row)
    await session.flush()
    if verifier is not None:
        row.code_verifier = env.vault.encrypt(verifier, **verifier_aad(row))
    client = oauth_client(env, spec, creds)
    async with client:
        url, _ = client.create_authorization_url(
            urls(env, spec).authorize, state=state, code_verifier=verifier, **spec.auth.extra_authorize_params
        )
    log.info("oauth.authorize.started", tenant_id=tenant_id, provider=key, reconnect=reconnect_id is not None)
    return url


@dataclass
class ConnectContext:
    """What a provider's `hooks.after_connect(ctx)` gets to find the account the user picked."""

    spec: ProviderSpec
    env: OAuthEnv
    http: httpx.AsyncClient
    token: dict[str, Any]
    callback_params: dict[str, str] = field(default_factory=dict)

    @property
    def access_token(self) -> str:
        return str(self.token["access_token"])

    def url(self, real_url: str) -> str:
        """A real provider URL as it is reached here (its emulator in demo and test mode)."""
        return self.env.endpoints.url(self.spec.key, real_url)

    def api_url(self, path: str = "", **params: str) -> str:
        return self.url(self.spec.api.base_url.format(**params)) + path

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        response = await self.http.get(url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)
        response.raise_for_status()
        return response.json()


@dataclass
class Finished:
    connection: Connection
    target: Target
    provider: str


async def finish(
    env: OAuthEnv, session: AsyncSession, params: dict[str, str], *, user_id: int | None, login_session_id: int | None
) -> Finished:
    """The callback: check the state, exchange the code, let the provider pick the account, store the connection."""
    raw_state = params.get("state", "")
    row = (
        await session.scalar(select(OAuthState).where(OAuthState.state_hash == _hash(raw_state))) if raw_state else None
    )
    if row is None:
        raise ConnectError("This sign-in link is not valid. Start again from the integration's page.")
    target: Target = "popup" if row.redirect_target == "popup" else "page"
    spec = registry.get(row.provider)
    if row.used_at is not None:
        raise ConnectError(
            "This sign-in was already used. Start again from the integration's page.", provider=spec.key, target=target
        )
    # Spend it now, whatever happens next: a state is never good twice.
    row.used_at = utcnow()
    await session.commit()
    if row.expires_at < utcnow():
        raise ConnectError("The sign-in took too long and expired. Please try again.", provider=spec.key, target=target)
    if user_id is None or row.user_id != user_id or row.login_session_id != login_session_id:
        raise ConnectError(
            "This sign-in was started by someone else or in another browser session. Start again from the "
            "integration's page.",
            provider=spec.key,
            target=target,
        )
    if error := params.get("error"):
        if error == "access_denied":
            raise ConnectError(
                f"You cancelled the connection to {spec.name}. Nothing was changed.", provider=spec.key, target=target
            )
        raise ConnectError(
            f"{spec.name} could not connect ({_plain(error)}). Please try again.", provider=spec.key, target=target
        )
    code = params.get("code", "")
    if not code:
        raise ConnectError(
            f"{spec.name} did not send an authorization code. Please try again.", provider=spec.key, target=target
        )
    verifier = None
    if row.code_verifier:
        try:
            verifier = env.vault.decrypt(row.code_verifier, **verifier_aad(row))
        except DecryptError:
            log.error("vault.decrypt.failed", provider=spec.key, field="oauth_states.code_verifier")
            raise ConnectError(
                "This sign-in could not be verified. Please try again.", provider=spec.key, target=target
            ) from None
    client = oauth_client(env, spec)
    try:
        async with client:
            token = dict(await client.fetch_token(urls(env, spec).token, code=code, code_verifier=verifier))
    except OAuthError as e:
        log.warning("oauth.exchange.failed", provider=spec.key, error=e.error)
        raise ConnectError(
            f"{spec.name} refused the sign-in ({_plain(e.error)}). Please try again.", provider=spec.key, target=target
        ) from None
    except (httpx.HTTPError, ValueError) as e:
        log.warning("oauth.exchange.failed", provider=spec.key, error=type(e).__name__)
        raise ConnectError(
            f"Could not reach {spec.name} to finish connecting. Please try again.", provider=spec.key, target=target
        ) from None
    kept = {name: params[name] for name in spec.auth.keep_callback_params if name in params}
    async with env.endpoints.client(spec.key) as http:
        ctx = ConnectContext(spec=spec, env=env, http=http, token=token, callback_params=kept)
        try:
            account = await pick_account(ctx)
        except httpx.HTTPError as e:
            log.warning("oauth.after_connect.failed", provider=spec.key, error=type(e).__name__)
            raise ConnectError(
                f"Connected to {spec.name}, but could not read the account. Please try again.",
                provider=spec.key,
                target=target,
            ) from None
    try:
        conn = await service.save_connected(
            session,
            env.vault,
            tenant_id=row.tenant_id,
            provider=spec.key,
            account=account,
            tokens=TokenSet.from_response(token),
            reconnect_id=row.reconnect_connection_id,
        )
    except service.AccountHeld as e:
        # Nothing is revoked: at the provider this grant and the other business's are one app on one account,
        # and revoking (QuickBooks, Stripe) would disconnect theirs.
        raise ConnectError(e.message, provider=spec.key, target=target, status=409) from None
    await session.commit()
    log.info("oauth.callback.connected", tenant_id=row.tenant_id, provider=spec.key, connection_id=conn.id)
    await follow_up_connect(env, session, conn)
    return Finished(connection=conn, target=target, provider=spec.key)


async def follow_up_connect(env: OAuthEnv, session: AsyncSession, conn: Connection) -> None:
    """The provider's follow-up once the connection is saved (`hooks.on_connected`: subscribing to its events with
    credentials sealed against the connection's id). A failure does not undo the connect: the hook records what
    is missing where the provider's page shows it, and its capability's periodic work tries again."""
    hooks = registry.import_module(conn.provider, "hooks")
    follow_up = getattr(hooks, "on_connected", None)
    if follow_up is None:
        return
    try:
        await follow_up(env, session, conn)
    except Exception as e:  # noqa: BLE001 - the connection stands; the hook said what is missing
        await session.rollback()
        log.warning("oauth.on_connected.failed", provider=conn.provider, connection_id=conn.id, error=type(e).__name__)


async def pick_account(ctx: ConnectContext) -> AccountInfo:
    """The provider's hooks.after_connect picks the account; without one, standard token fields or the provider."""
    hooks = registry.import_module(ctx.spec.key, "hooks")
    after_connect = getattr(hooks, "after_connect", None)
    if after_connect is not None:
        return await after_connect(ctx)
    for name in ("account_id", "user_id", "sub", "tenant_id"):
        if ctx.token.get(name):
            return AccountInfo(id=str(ctx.token[name]), name=str(ctx.token.get("account_name") or ctx.spec.name))
    return AccountInfo(id=ctx.spec.key, name=ctx.spec.name)


def _plain(error: str) -> str:
    return error.replace("_", " ")[:80]


async def disconnect(env: OAuthEnv, session: AsyncSession, conn: Connection) -> bool:
    """Revoke at the provider (best effort), forget the tokens, keep every synced record. True if revoked."""
    spec = registry.get(conn.provider)
    revoked = False
    try:
        access = service.read_secret(env.vault, conn, "access_token")
        refresh = service.read_secret(env.vault, conn, "refresh_token")
    except DecryptError as e:
        log.error("vault.decrypt.failed", tenant_id=conn.tenant_id, connection_id=conn.id, error=str(e))
        access = refresh = None
    if spec.auth.mode is AuthMode.OAUTH2 and (access or refresh):
        revoked = await _revoke(
            env, spec, conn, refresh or access or "", "refresh_token" if refresh else "access_token"
        )
    service.forget_tokens(conn)
    conn.status = ConnectionStatus.DISCONNECTED
    conn.sync_error = ""
    conn.disconnected_at = utcnow()
    await session.flush()
    log.info("connection.disconnected", tenant_id=conn.tenant_id, provider=conn.provider, revoked=revoked)
    return revoked


async def _revoke(env: OAuthEnv, spec: ProviderSpec, conn: Connection, token: str, hint: str) -> bool:
    hooks = registry.import_module(spec.key, "hooks")
    custom = getattr(hooks, "revoke", None)
    try:
        creds = credentials(env, spec)
        if custom is not None:
            async with env.endpoints.client(spec.key) as http:
                return await custom(RevokeContext(spec, env, http, creds.client_id, creds.client_secret, conn), token)
        revoke_url = urls(env, spec).revoke
        if revoke_url is None:
            return False  # nothing to call (Microsoft): forgetting the tokens is all there is
        client = oauth_client(env, spec, creds)
        async with client:
            response = await client.revoke_token(revoke_url, token=token, token_type_hint=hint)
        return response.status_code < 400
    except Exception as e:  # noqa: BLE001 - revocation is best effort; the disconnect itself must happen
        log.warning("oauth.revoke.failed", provider=spec.key, error=type(e).__name__)
        return False


@dataclass
class RevokeContext:
    spec: ProviderSpec
    env: OAuthEnv
    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    connection: Connection

    def url(self, real_url: str) -> str:
        return self.env.endpoints.url(self.spec.key, real_url)
