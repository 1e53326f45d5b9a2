"""Hosted onboarding for a business that has no account at a provider yet (a provider's `hooks.onboard`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.connections.service import TokenSet
from fieldhub.hub.oauth.env import env_for
from fieldhub.log import get_logger
from fieldhub.web.deps import AdminCtx
from fieldhub.web.templating import render

router = APIRouter()
log = get_logger(__name__)


def _hooks(key: str):  # noqa: ANN202 - the provider's hooks module
    try:
        registry.get(key)
    except registry.UnknownProvider:
        raise HTTPException(404, "There is no such integration.") from None
    hooks = registry.import_module(key, "hooks")
    if hooks is None or not hasattr(hooks, "onboard"):
        raise HTTPException(404, "This integration has no onboarding.")
    return hooks


def _urls(request: Request, key: str, connection_id: int) -> dict[str, str]:
    base = env_for(request.app).settings.base_url
    q = f"?connection={connection_id}"
    return {
        "refresh_url": f"{base}/integrations/{key}/onboard/refresh{q}",
        "return_url": f"{base}/integrations/{key}/onboard/return{q}",
    }


def _failed(request: Request, key: str, message: str) -> Response:
    back = service.settings_link(key)
    return render(request, "connections/failed.html", {"provider": key, "message": message, "back": back}, 502)


@router.post("/integrations/{key}/onboard")
async def onboard(request: Request, ctx: AdminCtx, key: str) -> Response:
    """Create the account at the provider, keep it as a connection, and send the owner to finish its setup."""
    hooks = _hooks(key)
    env = env_for(request.app)
    name = registry.get(key).name
    tenant = ctx.tenant
    try:
        # The return URLs name the connection, which exists only after the account does: build them after.
        account, _ = await hooks.onboard(
            env,
            email=tenant.email or ctx.user.email,
            business_name=tenant.name,
            refresh_url=env.settings.base_url + service.settings_link(key),
            return_url=env.settings.base_url + service.settings_link(key),
        )
    except Exception as e:  # noqa: BLE001 - any provider failure reads the same to the owner
        log.warning("onboarding.failed", provider=key, error=type(e).__name__)
        return _failed(request, key, f"Could not create a {name} account right now. Please try again.")
    try:
        conn = await service.save_connected(
            ctx.db, env.vault, tenant_id=ctx.tenant_id, provider=key, account=account, tokens=TokenSet(account.id)
        )
    except service.AccountHeld as e:  # a new account is nobody's yet; said plainly if it ever were
        return _failed(request, key, e.message)
    await ctx.db.commit()
    url = await hooks.onboarding_link(env, conn, **_urls(request, key, conn.id))
    return RedirectResponse(url, status_code=303)


async def _connection(ctx: AdminCtx, key: str, connection_id: int):  # noqa: ANN202
    conn = await service.get(ctx.db, ctx.tenant_id, connection_id)
    if conn is None or conn.provider != key or conn.status == ConnectionStatus.DISCONNECTED:
        raise HTTPException(404, "That connection was not found.")
    return conn


@router.get("/integrations/{key}/onboard/refresh")
async def refresh(request: Request, ctx: AdminCtx, key: str, connection: Id) -> Response:
    """The provider's link expired or was used: mint another and go back to it."""
    hooks = _hooks(key)
    conn = await _connection(ctx, key, connection)
    url = await hooks.onboarding_link(env_for(request.app), conn, **_urls(request, key, conn.id))
    return RedirectResponse(url, status_code=303)


@router.get("/integrations/{key}/onboard/return")
async def returned(request: Request, ctx: AdminCtx, key: str, connection: Id) -> Response:
    """Back from onboarding: read the account again (name, payout bank, what is enabled) for the card."""
    hooks = _hooks(key)
    conn = await _connection(ctx, key, connection)
    try:
        account = await hooks.describe(env_for(request.app), conn.account_id)
        conn.account_name = account.name or conn.account_name
        conn.account_details = {**(conn.account_details or {}), **account.details}
    except Exception as e:  # noqa: BLE001 - the card shows what it has; account.updated webhooks catch up
        log.warning("onboarding.describe.failed", provider=key, error=type(e).__name__)
    return RedirectResponse(service.settings_link(key) + "?connected=" + key, status_code=303)
