"""Connect, reconnect and disconnect routes, the one OAuth callback, and the connection panel the cards show."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from fieldhub.core.accounts import service as accounts
from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.connections.service import AccountInfo, TokenSet
from fieldhub.hub.connections.status import provider_connections
from fieldhub.hub.oauth import flow
from fieldhub.hub.oauth.client import CALLBACK_PATH
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import AuthMode, ProviderSpec
from fieldhub.hub.vault import CredentialError, validate_credential
from fieldhub.web.deps import DB, SESSION_COOKIE, AdminCtx, Ctx
from fieldhub.web.templating import render

router = APIRouter()


def _spec(key: str):  # noqa: ANN202 - ProviderSpec
    try:
        return registry.get(key)
    except registry.UnknownProvider:
        raise HTTPException(404, "There is no such integration.") from None


async def panel_context(request: Request, ctx: Ctx, key: str) -> dict:
    """What templates/connections/_panel.html needs for one provider."""
    env = env_for(request.app)
    found = await provider_connections(ctx.db, ctx.tenant_id, key, env.vault)
    minutes = max(1, round(env.settings.health_check_seconds / 60))
    return {"conn_panel": found, "demo_mode": env.settings.mode != "production", "check_minutes": minutes}


@router.get("/integrations/{key}/connect")
async def connect(
    request: Request, ctx: AdminCtx, key: str, mode: Literal["popup", "page"] = "popup", reconnect: Id | None = None
) -> Response:
    spec = _spec(key)
    env = env_for(request.app)
    try:
        url = await flow.start(
            env,
            ctx.db,
            key=key,
            tenant_id=ctx.tenant_id,
            user_id=ctx.user.id,
            login_session_id=ctx.login.id if ctx.login else None,
            target=mode,
            reconnect_id=reconnect,
        )
    except CredentialError as e:
        return _failed(request, spec.key, mode, f"{spec.name} can't be connected yet: {e}.", 503)
    except flow.ConnectError as e:
        return _failed(request, spec.key, mode, e.message, 400)
    return RedirectResponse(url, status_code=302)


@router.get(CALLBACK_PATH)
async def callback(request: Request, db: DB) -> Response:
    """The one redirect URI for every provider. Who is asking comes from the session cookie, if any."""
    login = await accounts.resolve_session(db, request.cookies.get(SESSION_COOKIE, ""))
    env = env_for(request.app)
    params = {k: v for k, v in request.query_params.items()}
    try:
        done = await flow.finish(
            env,
            db,
            params,
            user_id=login.user.id if login else None,
            login_session_id=login.id if login else None,
        )
    except flow.ConnectError as e:
        return _failed(request, e.provider, e.target, e.message, e.status)
    if done.target == "popup":
        spec = registry.get(done.provider)
        return render(
            request,
            "connections/popup_done.html",
            {"provider": done.provider, "name": spec.name, "account": done.connection.account_name},
        )
    return RedirectResponse(service.settings_link(done.provider) + "?connected=" + done.provider, status_code=303)


def _failed(request: Request, provider: str | None, target: str, message: str, status: int) -> Response:
    back = service.settings_link(provider) if provider else "/settings/integrations"
    template = "connections/popup_failed.html" if target == "popup" else "connections/failed.html"
    return render(request, template, {"provider": provider or "", "message": message, "back": back}, status)


@router.get("/integrations/{key}/status")
async def status(ctx: AdminCtx, key: str) -> JSONResponse:
    """Polled by connect.js while the sign-in window is open (the fallback when postMessage doesn't arrive)."""
    _spec(key)
    found = await provider_connections(ctx.db, ctx.tenant_id, key)
    live = [v for v in found.views if v.connection.status == ConnectionStatus.CONNECTED]
    return JSONResponse(
        {
            "provider": key,
            "connected": bool(live),
            "connections": [
                {
                    "id": v.connection.id,
                    "status": v.status,
                    "account": v.connection.account_name,
                    "health": v.health.label,
                    "token_version": v.connection.token_version,
                }
                for v in found.views
            ],
        }
    )


@router.get("/integrations/{key}/panel")
async def panel(request: Request, ctx: AdminCtx, key: str) -> Response:
    """The connection part of a provider's card, re-fetched after a connect completes."""
    _spec(key)
    return render(request, "connections/_panel.html", await panel_context(request, ctx, key))


@router.post("/integrations/{key}/connections/{connection_id}/disconnect")
async def disconnect(request: Request, ctx: AdminCtx, key: str, connection_id: Id) -> Response:
    _spec(key)
    conn = await service.get(ctx.db, ctx.tenant_id, connection_id)
    if conn is None or conn.provider != key:
        raise HTTPException(404, "That connection was not found.")
    await flow.disconnect(env_for(request.app), ctx.db, conn)
    if request.headers.get("hx-request"):
        return render(request, "connections/_panel.html", await panel_context(request, ctx, key))
    return RedirectResponse(service.settings_link(key), status_code=303)


@router.post("/integrations/{key}/api-key")
async def save_api_key(request: Request, ctx: AdminCtx, key: str, api_key: str = Form("")) -> Response:
    """Api-key providers: the key is checked by the provider's hooks.verify_key when it has one, then sealed."""
    spec = _spec(key)
    if spec.auth.mode is not AuthMode.API_KEY:
        raise HTTPException(400, f"{spec.name} connects with a sign-in, not an API key.")
    env = env_for(request.app)
    try:
        value = validate_credential("The API key", api_key)
    except CredentialError as e:
        return await _key_refused(request, ctx, spec, f"{e}.")
    hooks = registry.import_module(key, "hooks")
    verify = getattr(hooks, "verify_key", None)
    account = AccountInfo(id=key, name=spec.name)
    if verify is not None:
        async with env.endpoints.client(key) as http:
            try:
                account = await verify(spec, env, http, value)
            except ValueError as e:
                return await _key_refused(request, ctx, spec, f"{spec.name} did not accept that key: {e}")
    try:
        conn = await service.save_connected(
            ctx.db, env.vault, tenant_id=ctx.tenant_id, provider=key, account=account, tokens=TokenSet(value)
        )
    except service.AccountHeld as e:
        return await _key_refused(request, ctx, spec, e.message)
    await ctx.db.commit()
    await flow.follow_up_connect(env, ctx.db, conn)  # as after an OAuth connect: the provider's own set-up
    return RedirectResponse(service.settings_link(key) + "?connected=" + key, status_code=303)


async def _key_refused(request: Request, ctx: Ctx, spec: ProviderSpec, message: str) -> Response:
    """The provider's page again, the reason beside the key field; the key itself is never written back."""
    from fieldhub.web.routes.settings import provider_page  # imported late: settings imports this module

    return await provider_page(request, ctx, spec, key_error=message, status=400)
