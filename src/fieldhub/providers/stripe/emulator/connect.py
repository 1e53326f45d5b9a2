"""Stripe Connect: legacy OAuth for an existing account, Accounts, Account Links and the hosted onboarding page."""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fieldhub.hub.emulator import Account, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.providers.stripe.emulator import objects as build
from fieldhub.providers.stripe.emulator import pages
from fieldhub.providers.stripe.emulator.api import Ctx, StripeError, invalid, missing, paginate

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

# Stripe's access tokens never expire; the framework wants a lifetime, so give it ten years.
_FOREVER = 10 * 365 * 86400
_CAPABILITIES = ("card_payments", "transfers", "us_bank_account_ach_payments")


@dataclass
class AccountLink:
    account: str
    type: str
    refresh_url: str
    return_url: str
    expires_at: int
    used: bool = False


def install(emu: StripeEmulator) -> None:
    links: dict[str, AccountLink] = emu.account_links

    async def oauth_token(request: Request) -> Response:
        """Stripe authenticates the exchange with the platform secret key (form `client_secret` or Bearer)."""
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        secret = form.get("client_secret", "")
        if not secret:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            secret = value.strip() if scheme.lower() == "bearer" else ""
        if not secret or not secrets.compare_digest(secret.encode(), emu.config.client_secret.encode()):
            return _oauth_error(401, "invalid_client", "No such api key: the client_secret is not this platform's key")
        grant = form.get("grant_type", "")
        if grant == "authorization_code":
            code = emu.oauth.codes.get(form.get("code", ""))
            if code is None:
                return _oauth_error(400, "invalid_grant", f"Authorization code does not exist: {form.get('code', '')}")
            # Stripe does not ask for redirect_uri at the token step; the framework checks it, so echo the code's.
            form.setdefault("redirect_uri", code.redirect_uri)
            reply = emu.oauth._exchange_code(form, emu.config.client_id)
        elif grant == "refresh_token":
            reply = emu.oauth._refresh(form)
        else:
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        body = json.loads(bytes(reply.body))
        if reply.status_code != 200:
            return JSONResponse(body, status_code=reply.status_code)
        body.pop("expires_in", None)
        body.pop("refresh_token_expires_in", None)
        emu.connected.add(body["stripe_user_id"])
        return JSONResponse(body)

    async def oauth_deauthorize(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        secret = form.get("client_secret") or (value.strip() if scheme.lower() == "bearer" else "")
        if not secret or not secrets.compare_digest(secret.encode(), emu.config.client_secret.encode()):
            return _oauth_error(401, "invalid_client", "No such api key")
        if form.get("client_id") != emu.config.client_id:
            return _oauth_error(400, "invalid_client", f"No such application: '{form.get('client_id', '')}'")
        user = form.get("stripe_user_id", "")
        if user not in emu.connected:
            return _oauth_error(
                400,
                "invalid_client",
                f"This application is not connected to stripe account {user}, or that account does not exist.",
            )
        emu.connected.discard(user)
        await emu.oauth.control_revoke(user)
        emu.emit(
            user,
            "account.application.deauthorized",
            {"id": emu.config.client_id, "object": "application", "name": "Fieldhub"},
        )
        emu.webhooks.kick()
        return JSONResponse({"stripe_user_id": user})

    # Registered before the OAuthServer's own /oauth/token so Stripe's rules answer first.
    emu.app.add_api_route("/oauth/token", oauth_token, methods=["POST"])
    emu.app.add_api_route("/oauth/deauthorize", oauth_deauthorize, methods=["POST"])
    accounts = [Account(a["id"], a["business_profile"]["name"], a["email"] or "") for a in emu.demo_accounts()]
    rules = OAuthRules(
        client_id=emu.config.client_id,
        client_secret=emu.config.client_secret,
        redirect_uris=[emu.config.redirect_uri],
        scopes=["read_write"],
        access_lifetime=emu.config.access_lifetime or _FOREVER,
        rotation="none",
        callback_params=lambda account: {"scope": "read_write"},
        token_extra=lambda account: {
            "scope": "read_write",
            "livemode": False,
            "stripe_user_id": account.id,
            "stripe_publishable_key": emu.publishable_key(account.id),
        },
    )
    emu.oauth = OAuthServer(
        emu,
        rules,
        accounts,
        title="Stripe",
        brand_color="#635BFF",
        revoke_path=f"{CONTROL_PREFIX}/oauth/revoke",
    )

    # --- /v1/accounts ---------------------------------------------------------------------------------
    def create_account(ctx: Ctx) -> dict[str, Any]:
        if ctx.connected:
            raise StripeError(400, "Only a platform can create connected accounts.", param="Stripe-Account")
        kind = ctx.str_param("type", need=True)
        if kind not in ("standard", "express", "custom"):
            raise invalid("type", f"Invalid type: must be one of standard, express, or custom (got {kind})")
        requested = [
            name
            for name, value in ctx.dict_param("capabilities").items()
            if isinstance(value, dict) and value.get("requested") == "true"
        ]
        unknown = [c for c in requested if c not in _CAPABILITIES]
        if unknown:
            raise invalid(f"capabilities[{unknown[0]}]", f"Unknown capability: {unknown[0]}")
        profile = ctx.dict_param("business_profile")
        obj = build.account(
            emu.new_id("acct", 16),
            created=emu.now(),
            type=kind,
            email=ctx.str_param("email"),
            country=ctx.str_param("country", default="US") or "US",
            name=profile.get("name") if isinstance(profile.get("name"), str) else None,
            capabilities=requested or ["card_payments", "transfers"],
        )
        obj["metadata"] = ctx.metadata()
        emu.put(emu.platform_id, obj)
        emu.connected.add(obj["id"])
        return obj

    def get_account(ctx: Ctx, account: str) -> dict[str, Any]:
        if account == ctx.account:
            return emu.account_obj(account)
        if ctx.connected or account not in emu.connected:
            raise missing("account", account)
        return emu.account_obj(account)

    def current_account(ctx: Ctx) -> dict[str, Any]:
        return emu.account_obj(ctx.account)

    def list_accounts(ctx: Ctx) -> dict[str, Any]:
        if ctx.connected:
            return paginate(ctx, [], "/v1/accounts")
        items = [a for a in emu.find(emu.platform_id, "account") if a["id"] in emu.connected]
        return paginate(ctx, items, "/v1/accounts")

    def update_account(ctx: Ctx, account: str) -> dict[str, Any]:
        obj = get_account(ctx, account)
        previous: dict[str, Any] = {}
        profile = ctx.dict_param("business_profile")
        for key, value in profile.items():
            if key not in obj["business_profile"]:
                raise invalid(f"business_profile[{key}]", f"Received unknown parameter: business_profile[{key}]")
            previous.setdefault("business_profile", {})[key] = obj["business_profile"][key]
            obj["business_profile"][key] = value or None
        if "email" in ctx.params:
            previous["email"] = obj["email"]
            obj["email"] = ctx.str_param("email")
        if "metadata" in ctx.params:
            previous["metadata"] = copy.deepcopy(obj["metadata"])
            obj["metadata"].update(ctx.metadata())
        if previous:
            emu.emit(account, "account.updated", obj, previous=previous, request=ctx.request_info)
        return obj

    def create_link(ctx: Ctx) -> dict[str, Any]:
        account_id = ctx.str_param("account", need=True) or ""
        if account_id not in emu.connected:
            raise missing("account", account_id, "account")
        kind = ctx.str_param("type", need=True)
        if kind not in ("account_onboarding", "account_update"):
            raise invalid("type", "Invalid type: must be one of account_onboarding or account_update")
        refresh = ctx.str_param("refresh_url", need=True) or ""
        back = ctx.str_param("return_url", need=True) or ""
        for name, url in (("refresh_url", refresh), ("return_url", back)):
            if not url.startswith(("http://", "https://")):
                raise invalid(name, f"Not a valid URL: {name}", code="url_invalid")
        created = emu.now()
        token = secrets.token_urlsafe(12)
        links[token] = AccountLink(account_id, kind, refresh, back, created + emu.timings.account_link_lifetime)
        return {
            "object": "account_link",
            "created": created,
            "expires_at": created + emu.timings.account_link_lifetime,
            "url": f"{ctx.base_url}/setup/e/{account_id}/{token}",
        }

    emu.api.add("POST", "/v1/accounts", create_account)
    emu.api.add("GET", "/v1/accounts", list_accounts)
    emu.api.add("GET", "/v1/accounts/{account}", get_account)
    emu.api.add("POST", "/v1/accounts/{account}", update_account)
    emu.api.add("GET", "/v1/account", current_account)
    emu.api.add("POST", "/v1/account_links", create_link)

    # --- hosted onboarding ----------------------------------------------------------------------------
    def usable(account_id: str, token: str) -> AccountLink | None:
        link = links.get(token)
        if link is None or link.account != account_id:
            return None
        return link

    async def onboarding_page(account_id: str, token: str) -> Response:
        link = usable(account_id, token)
        if link is None:
            return HTMLResponse(pages.shell("Link not valid", pages.notice("This onboarding link is not valid.")), 404)
        if link.used or link.expires_at < emu.now():
            # Stripe sends the user to refresh_url so the platform can mint a new link.
            return RedirectResponse(link.refresh_url, status_code=302)
        return HTMLResponse(pages.onboarding(emu.account_obj(account_id), token))

    async def onboarding_submit(account_id: str, token: str, request: Request) -> Response:
        link = usable(account_id, token)
        if link is None:
            return HTMLResponse(pages.shell("Link not valid", pages.notice("This onboarding link is not valid.")), 404)
        if link.used or link.expires_at < emu.now():
            return RedirectResponse(link.refresh_url, status_code=303)
        link.used = True
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        obj = emu.account_obj(account_id)
        previous = {
            "charges_enabled": obj["charges_enabled"],
            "payouts_enabled": obj["payouts_enabled"],
            "details_submitted": obj["details_submitted"],
            "capabilities": dict(obj["capabilities"]),
            "requirements": copy.deepcopy(obj["requirements"]),
            "business_profile": {"name": obj["business_profile"]["name"]},
        }
        name = form.get("business_name", "").strip() or obj["business_profile"]["name"] or "Connected business"
        obj["business_profile"]["name"] = name
        obj["settings"]["dashboard"]["display_name"] = name
        obj["charges_enabled"] = obj["payouts_enabled"] = obj["details_submitted"] = True
        obj["capabilities"] = {c: "active" for c in obj["capabilities"]}
        for key in ("currently_due", "eventually_due", "past_due"):
            obj["requirements"][key] = []
        obj["requirements"]["disabled_reason"] = None
        obj["tos_acceptance"]["date"] = emu.now()
        if not obj["external_accounts"]["data"]:
            obj["external_accounts"]["data"].append(
                build.bank_account(
                    emu.new_id("ba"), account_id, last4="6789", bank_name="STRIPE TEST BANK", routing="110000000"
                )
            )
        emu.emit(account_id, "account.updated", obj, previous=previous)
        emu.webhooks.kick()
        return RedirectResponse(link.return_url, status_code=303)

    emu.app.add_api_route("/setup/e/{account_id}/{token}", onboarding_page, methods=["GET"])
    emu.app.add_api_route("/setup/e/{account_id}/{token}", onboarding_submit, methods=["POST"])

    async def control_connect(account_id: str) -> Response:
        """Connect a demo account without the OAuth dance (tests that are not about connecting)."""
        if account_id not in emu.objects or emu.objects[account_id].obj.get("object") != "account":
            return JSONResponse(missing("account", account_id).body(), status_code=404)
        emu.connected.add(account_id)
        return JSONResponse({"connected": account_id})

    emu.app.add_api_route(f"{CONTROL_PREFIX}/accounts/{{account_id}}/connect", control_connect, methods=["POST"])


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
