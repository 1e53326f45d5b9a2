"""An OAuth 2.0 authorization server for emulators, set to each provider's real rules.

Covers the authorization-code grant with a consent page (pick the account, approve or deny), PKCE,
client authentication (Basic or in the form), exact redirect URIs, the refresh grant with the
provider's rotation rule (keep, rotate with a grace period for the old token, or single-use),
revocation, and the standard error bodies (`invalid_grant`, `invalid_client`, ...).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fieldhub.hub.emulator.core import CONTROL_PREFIX, Emulator, EmulatorConfig


@dataclass
class Account:
    """Something the user can pick on the consent page: a company, an organisation, a mailbox."""

    id: str
    name: str
    email: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OAuthRules:
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    redirect_uris: list[str] = field(default_factory=list)  # exact match; empty = any (a bare emulator)
    scopes: list[str] = field(default_factory=list)
    access_lifetime: int = 3600
    refresh_lifetime: int | None = None
    # none: the refresh token never changes; rotate: a new one each refresh, the previous one still
    # accepted for `reuse_grace` seconds; single_use: the previous one dies at once.
    rotation: Literal["none", "rotate", "single_use"] = "none"
    reuse_grace: int = 0
    pkce: bool = False
    issue_refresh_token: bool = True
    code_lifetime: int = 600
    callback_params: Callable[[Account], dict[str, str]] = lambda account: {}
    token_extra: Callable[[Account], dict[str, Any]] = lambda account: {}

    @classmethod
    def for_config(cls, config: EmulatorConfig, *, access_lifetime: int, **rules: Any) -> OAuthRules:
        """The provider's rules, with the app registration and any demo lifetime override from the config."""
        return cls(
            client_id=config.client_id,
            client_secret=config.client_secret,
            redirect_uris=[config.redirect_uri],
            access_lifetime=config.access_lifetime or access_lifetime,
            **rules,
        )


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    account: Account
    scope: str
    challenge: str
    challenge_method: str
    expires_at: float
    used: bool = False
    grant: dict[str, Any] = field(default_factory=dict)  # what the provider notes of this consent (an auth event)


@dataclass
class _Token:
    value: str
    kind: Literal["access", "refresh"]
    account: Account
    scope: str
    expires_at: float | None
    revoked: bool = False
    superseded_at: float | None = None  # when a newer refresh token replaced this one
    grant: dict[str, Any] = field(default_factory=dict)  # the consent's notes, carried from code to every token


class OAuthServer:
    """Adds the OAuth routes to an emulator's app and answers `authenticate(request)` for its API routes."""

    def __init__(
        self,
        emulator: Emulator,
        rules: OAuthRules,
        accounts: list[Account],
        *,
        title: str,
        brand_color: str = "#3b82f6",
        authorize_path: str = "/oauth/authorize",
        token_path: str = "/oauth/token",
        revoke_path: str = "/oauth/revoke",
    ) -> None:
        self.emulator = emulator
        self.rules = rules
        self.accounts = accounts
        self.title = title
        self.brand_color = brand_color
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, _Token] = {}
        self.refresh_requests = 0
        self.revocations: list[str] = []
        # What this server answers in RFC 6749's bodies rather than the provider's API error body.
        self.paths = {authorize_path, token_path, revoke_path}
        app = emulator.app
        app.add_api_route(authorize_path, self.authorize, methods=["GET"])
        app.add_api_route(authorize_path, self.consent, methods=["POST"])
        app.add_api_route(token_path, self.token, methods=["POST"])
        app.add_api_route(revoke_path, self.revoke, methods=["POST"])
        app.add_api_route(f"{CONTROL_PREFIX}/tokens/expire", self.control_expire, methods=["POST"])
        app.add_api_route(f"{CONTROL_PREFIX}/tokens/revoke", self.control_revoke, methods=["POST"])
        app.add_api_route(f"{CONTROL_PREFIX}/oauth", self.control_state, methods=["GET"])

    # --- what API routes call -------------------------------------------------------------------
    def authenticate(self, request: Request) -> Account | None:
        """The account behind a valid Bearer access token, or None (the route answers 401 its own way)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = self.tokens.get(value.strip())
        if token is None or token.kind != "access" or token.revoked or self._expired(token):
            return None
        return token.account

    def account(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    # --- authorize ------------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        problem = self._check_client_and_redirect(q.get("client_id", ""), q.get("redirect_uri", ""))
        if problem:
            # Never redirect to an unverified redirect_uri: show the error here, as real servers do.
            return HTMLResponse(self._page(f"<p class=err>{html.escape(problem)}</p>"), status_code=400)
        if q.get("response_type") != "code":
            return self._redirect_error(q, "unsupported_response_type")
        if self.rules.pkce and not q.get("code_challenge"):
            return self._redirect_error(q, "invalid_request", "code_challenge required")
        options = "".join(
            f'<label class=acct><input type=radio name=account value="{html.escape(a.id)}"'
            f" {'checked' if i == 0 else ''}>"
            f"<b>{html.escape(a.name)}</b><small>{html.escape(a.email or a.id)}</small></label>"
            for i, a in enumerate(self.accounts)
        )
        hidden = "".join(f'<input type=hidden name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in q.items())
        scopes = html.escape(q.get("scope", " ".join(self.rules.scopes)))
        body = (
            f"<p>An app wants access to your {html.escape(self.title)} account.</p>"
            f"<p class=scopes>Requested access: <code>{scopes}</code></p>"
            f"<form method=post>{hidden}<fieldset><legend>Choose an account</legend>{options}</fieldset>"
            f"<div class=actions><button name=decision value=deny type=submit class=deny>Cancel</button>"
            f"<button name=decision value=approve type=submit class=ok id=approve>Connect</button></div></form>"
        )
        return HTMLResponse(self._page(body))

    async def consent(self, request: Request) -> Response:
        form = await request.form()
        q = {k: str(v) for k, v in form.items()}
        problem = self._check_client_and_redirect(q.get("client_id", ""), q.get("redirect_uri", ""))
        if problem:
            return HTMLResponse(self._page(f"<p class=err>{html.escape(problem)}</p>"), status_code=400)
        if q.get("decision") != "approve":
            return self._redirect_error(q, "access_denied", "The user denied access")
        account = self.account(q.get("account", ""))
        if account is None:
            return self._redirect_error(q, "access_denied", "No account chosen")
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            account=account,
            scope=q.get("scope", ""),
            challenge=q.get("code_challenge", ""),
            challenge_method=q.get("code_challenge_method", "plain"),
            expires_at=self.emulator.clock.now() + self.rules.code_lifetime,
        )
        self.authorized(account, self.codes[code], q)
        params = {
            "code": code,
            **({"state": q["state"]} if "state" in q else {}),
            **self.rules.callback_params(account),
        }
        return RedirectResponse(_add_query(q["redirect_uri"], params), status_code=302)

    # --- token ----------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, client_secret = self._client_credentials(request, form)
        if client_id != self.rules.client_id or not secrets.compare_digest(client_secret, self.rules.client_secret):
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._exchange_code(form, client_id)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _exchange_code(self, form: dict[str, str], client_id: str) -> Response:
        code = self.codes.get(form.get("code", ""))
        now = self.emulator.clock.now()
        if code is None or code.used or code.expires_at < now or code.client_id != client_id:
            if code is not None and code.used:
                # RFC 6749 §4.1.2: a reused code should revoke what it issued.
                self._revoke_account(code.account.id)
            return _oauth_error(400, "invalid_grant", "Authorization code is invalid or expired")
        if form.get("redirect_uri", "") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        if code.challenge and not _pkce_ok(code.challenge, code.challenge_method, form.get("code_verifier", "")):
            return _oauth_error(400, "invalid_grant", "PKCE verification failed")
        code.used = True
        return JSONResponse(self._issue(code.account, code.scope, refresh=None, grant=code.grant), headers=_no_store())

    def _refresh(self, form: dict[str, str]) -> Response:
        self.refresh_requests += 1
        now = self.emulator.clock.now()
        old = self.tokens.get(form.get("refresh_token", ""))
        if old is None or old.kind != "refresh" or old.revoked or self._expired(old):
            return _oauth_error(400, "invalid_grant", "Refresh token is invalid, expired or revoked")
        if old.superseded_at is not None:
            # Grace for a superseded token; single-use tokens have none.
            grace = self.rules.reuse_grace if self.rules.rotation == "rotate" else 0
            if now > old.superseded_at + grace:
                return _oauth_error(400, "invalid_grant", "Refresh token has already been used")
        return JSONResponse(self._issue(old.account, old.scope, refresh=old, grant=old.grant), headers=_no_store())

    # --- provider hooks -------------------------------------------------------------------------
    def authorized(self, account: Account, code: _Code, query: dict[str, str]) -> None:
        """The user approved: a provider notes what its consent creates (Xero: a connection, an auth event)."""

    def access_value(self, account: Account, scope: str, grant: dict[str, Any], expires_at: float) -> str:
        """The access token's text: opaque here; a provider whose tokens are JWTs signs one."""
        return secrets.token_urlsafe(32)

    def _issue(
        self, account: Account, scope: str, refresh: _Token | None, grant: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        now = self.emulator.clock.now()
        grant = grant if grant is not None else {}
        expires = now + self.rules.access_lifetime
        value = self.access_value(account, scope, grant, expires)
        access = _Token(value, "access", account, scope, expires, grant=grant)
        self.tokens[access.value] = access
        body: dict[str, Any] = {
            "access_token": access.value,
            "token_type": "bearer",
            "expires_in": self.rules.access_lifetime,
        }
        if scope:
            body["scope"] = scope
        if self.rules.issue_refresh_token:
            if refresh is not None and self.rules.rotation == "none":
                new_refresh = refresh
            else:
                lifetime = self.rules.refresh_lifetime
                new_refresh = _Token(
                    secrets.token_urlsafe(32),
                    "refresh",
                    account,
                    scope,
                    now + lifetime if lifetime else None,
                    grant=grant,
                )
                self.tokens[new_refresh.value] = new_refresh
                if refresh is not None and refresh.superseded_at is None:
                    refresh.superseded_at = now
            body["refresh_token"] = new_refresh.value
            if self.rules.refresh_lifetime and new_refresh.expires_at:
                body["refresh_token_expires_in"] = int(new_refresh.expires_at - now)
        body.update(self.rules.token_extra(account))
        return body

    # --- revoke ---------------------------------------------------------------------------------
    async def revoke(self, request: Request) -> Response:
        value = request.query_params.get("token", "")
        if not value:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                value = str((await request.json()).get("token", ""))
            else:
                value = str((await request.form()).get("token", ""))
        token = self.tokens.get(value)
        if token is None:
            return _oauth_error(400, "invalid_token", "Token not found")
        self.revocations.append(token.account.id)
        self._revoke_account(token.account.id)
        return Response(status_code=200)

    def _revoke_account(self, account_id: str) -> None:
        for token in self.tokens.values():
            if token.account.id == account_id:
                token.revoked = True

    # --- control surface ------------------------------------------------------------------------
    async def control_expire(self, account_id: str = "") -> dict[str, int]:
        """Expire access tokens now (all, or one account's): the next API call gets a 401."""
        count = 0
        for token in self.tokens.values():
            if token.kind == "access" and (not account_id or token.account.id == account_id):
                token.expires_at = self.emulator.clock.now() - 1
                count += 1
        return {"expired": count}

    async def control_revoke(self, account_id: str = "") -> dict[str, int]:
        """Revoke every token (all, or one account's), as a user removing the app at the provider does."""
        count = 0
        for token in self.tokens.values():
            if not account_id or token.account.id == account_id:
                token.revoked = True
                count += 1
        return {"revoked": count}

    async def control_state(self) -> dict[str, Any]:
        live = [t for t in self.tokens.values() if not t.revoked and not self._expired(t)]
        return {
            "refresh_requests": self.refresh_requests,
            "revocations": self.revocations,
            "live_access_tokens": sum(1 for t in live if t.kind == "access"),
            "live_refresh_tokens": sum(1 for t in live if t.kind == "refresh"),
        }

    # --- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "codes": self.codes,
            "tokens": self.tokens,
            "refresh_requests": self.refresh_requests,
            "revocations": self.revocations,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.codes = state["codes"]
        self.tokens = state["tokens"]
        self.refresh_requests = state["refresh_requests"]
        self.revocations = state["revocations"]

    # --- helpers --------------------------------------------------------------------------------
    def _expired(self, token: _Token) -> bool:
        return token.expires_at is not None and token.expires_at <= self.emulator.clock.now()

    def _check_client_and_redirect(self, client_id: str, redirect_uri: str) -> str:
        if client_id != self.rules.client_id:
            return "Unknown client_id: this app is not registered."
        if not redirect_uri or (self.rules.redirect_uris and redirect_uri not in self.rules.redirect_uris):
            return "The redirect_uri does not match any registered for this app."
        return ""

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(value).decode().partition(":")
                return client_id, secret
            except ValueError:
                return "", ""
        return form.get("client_id", ""), form.get("client_secret", "")

    def _redirect_error(self, q: Any, error: str, description: str = "") -> Response:
        params = {"error": error, **({"error_description": description} if description else {})}
        if q.get("state"):
            params["state"] = q["state"]
        return RedirectResponse(_add_query(q["redirect_uri"], params), status_code=302)

    def _page(self, body: str) -> str:
        color = html.escape(self.brand_color)
        return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1"><title>{html.escape(self.title)} — authorize</title>
<style>body{{font:15px system-ui,sans-serif;background:#f3f4f6;margin:0;color:#111827}}
main{{max-width:440px;margin:6vh auto;background:#fff;border-radius:12px;padding:24px;box-shadow:0 2px 12px #0002}}
h1{{font-size:20px;margin:0 0 4px;color:{color}}} .note{{color:#6b7280;font-size:12px}}
fieldset{{border:1px solid #e5e7eb;border-radius:8px;margin:12px 0}}
.acct{{display:flex;gap:8px;align-items:center;padding:6px 0}}
.acct small{{color:#6b7280;margin-left:auto}} .actions{{display:flex;gap:8px;justify-content:flex-end}}
button{{padding:8px 16px;border-radius:8px;border:1px solid #d1d5db;background:#fff;font:inherit;cursor:pointer}}
button.ok{{background:{color};color:#fff;border-color:{color}}} .err{{color:#b91c1c}}
code{{font-size:12px}}</style></head>
<body><main><h1>{html.escape(self.title)}</h1>
<p class=note>Local emulator — no real account is touched.</p>{body}</main></body></html>"""


def _pkce_ok(challenge: str, method: str, verifier: str) -> bool:
    if not verifier:
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return secrets.compare_digest(computed, challenge)
    return secrets.compare_digest(verifier, challenge)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_no_store())


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _add_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)
