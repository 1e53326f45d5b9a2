"""FreshBooks' stand-in: OAuth with single-use refresh tokens, identity, the accounting API and webhooks.

Paths are FreshBooks' own: authorize /oauth/authorize (auth.freshbooks.com), token /auth/oauth/token
and identity /auth/api/v1/users/me (api.freshbooks.com); the accounting API (accounting.py) under
/accounting/account/{account_id}/...; webhook callbacks under /events/account/{account_id}/events/callbacks.
Access tokens last 12 hours; a refresh token works once (the old one dies the moment a new one is issued).

Webhooks (facts §3.4): registering a callback sends its URI a form-encoded verification message
(`name=callback.verify&object_id=<callbackid>&verifier=<code>`); the callback stays unverified, and gets nothing
else, until the app PUTs that verifier back (`{"callback": {"verifier": ...}}`; `{"callback": {"resend": true}}`
sends it again). Each change to a client, item, invoice, payment or credit note is then POSTed form-encoded
(`name=invoice.update&object_id=..&account_id=..&business_id=..&identity_id=..&user_id=..`) to the verified
callbacks for that event, signed `X-FreshBooks-Hmac-SHA256` = base64(HMAC-SHA256(verifier, json.dumps(form))).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import INT, STR
from fieldhub.hub.emulator.delivery import Outgoing, Sender
from fieldhub.providers.freshbooks.emulator.accounting import AccountingAPI, envelope, errors

BUSINESSES = [
    Account(
        "2192788", "Riverbend Plumbing & Heating", "office@riverbend.example", {"account_id": "zDmNq", "uuid": "b1"}
    ),
    Account("2192790", "Northside Electric", "office@northside.example", {"account_id": "xPqRt", "uuid": "b2"}),
]
IDENTITY_ID = 900100
EVENTS = {f"{obj}.{verb}" for obj in ("client", "item", "invoice", "payment", "credit_note")
          for verb in ("create", "update", "delete")}  # fmt: skip
RETRIES = (60.0, 300.0, 1800.0)  # [I] FreshBooks publishes no retry schedule


def sign(verifier: str, form: dict[str, str]) -> str:
    """FreshBooks' signature: base64 HMAC-SHA256 over json.dumps of the form, keyed by the callback's verifier."""
    digest = hmac.new(verifier.encode(), json.dumps(form).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


ACCOUNTING_ERROR = {
    "type": "object",
    "required": ["response"],
    "additionalProperties": False,
    "properties": {
        "response": {
            "type": "object",
            "required": ["errors"],
            "additionalProperties": False,
            "properties": {
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["errno", "field", "message", "object", "value"],
                        "additionalProperties": False,
                        "properties": {"errno": INT, "field": STR, "message": STR, "object": STR, "value": STR},
                    },
                }
            },
        }
    },
}
AUTH_ERROR = {
    "type": "object",
    "required": ["error", "error_description"],
    "additionalProperties": False,
    "properties": {"error": STR, "error_description": STR},
}
EVENTS_ERROR = {  # the newer (events) API's body (create_callback_response__validation_error.json)
    "type": "object",
    "required": ["errno", "message", "details"],
    "additionalProperties": False,
    "properties": {"errno": INT, "message": STR, "details": {"type": "array", "items": STR}},
}


class FreshBooksOAuth(OAuthServer):
    """The token reply as FreshBooks sends it (auth_token_response.json): `token_type` "Bearer" and `created_at`
    (epoch seconds), which the official SDK needs to work out when the access token expires."""

    def _issue(self, account: Account, scope: str, refresh: Any, grant: dict[str, Any] | None = None) -> dict[str, Any]:  # noqa: ANN401
        body = super()._issue(account, scope, refresh, grant)
        body |= {"token_type": "Bearer", "scope": scope, "created_at": int(self.emulator.clock.now())}
        order = ("access_token", "refresh_token", "token_type", "expires_in", "scope", "created_at")
        return {key: body[key] for key in order if key in body}


class FreshBooksEmulator(Emulator):
    key = "freshbooks"
    # Accounting errors in the recorded envelope (get_client_response__not_found.json), the events API's own, and
    # auth errors as OAuth's.
    error_schema = {"oneOf": [ACCOUNTING_ERROR, EVENTS_ERROR, AUTH_ERROR]}
    persisted = ("books", "counters", "callbacks")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(config, access_lifetime=43200, rotation="single_use")
        self.oauth = FreshBooksOAuth(
            self,
            rules,
            list(BUSINESSES),
            title="FreshBooks",
            brand_color="#0075DD",
            authorize_path="/oauth/authorize",
            token_path="/auth/oauth/token",
            revoke_path="/auth/oauth/revoke",
        )
        self.books: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.counters: dict[str, int] = {}
        self.callbacks: dict[str, dict[str, Any]] = {}  # callbackid -> callback (with its verifier, never shown)
        self.sender = Sender(self, schedule=RETRIES, transport=webhook_transport, enabled=config.deliver_webhooks)
        self.sender.install()
        self.app.add_api_route("/auth/api/v1/users/me", self.me, methods=["GET"])
        hooks = "/events/account/{account_id}/events/callbacks"
        self.app.add_api_route(hooks, self.callbacks_route, methods=["GET", "POST"])
        self.app.add_api_route(hooks + "/{callback_id}", self.callback_route, methods=["GET", "PUT", "DELETE"])
        self.accounting = AccountingAPI(self)

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        if status == 401:
            return JSONResponse({"error": "unauthenticated", "error_description": message}, status)
        errno = {403: 1003, 404: 1012, 405: 1000, 429: 1006}.get(status, 1000)
        error = {"errno": errno, "field": "", "message": message, "object": "", "value": ""}
        return errors(status, error)

    async def me(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "This action requires authentication to continue.")
        business = {
            "id": int(account.id),
            "business_uuid": account.extra["uuid"],
            "name": account.name,
            "account_id": account.extra["account_id"],
        }
        return JSONResponse(
            {
                "response": {
                    "id": IDENTITY_ID,
                    "email": account.email,
                    "first_name": "Demo",
                    "last_name": "Owner",
                    "business_memberships": [{"id": 1, "role": "owner", "business": business}],
                    "roles": [{"role": "admin", "accountid": account.extra["account_id"]}],
                }
            }
        )

    # --- webhooks -------------------------------------------------------------------------------
    def _owner(self, request: Request, account_id: str) -> JSONResponse | None:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "This action requires authentication to continue.")
        if account.extra["account_id"] != account_id:
            return self.error_response(403, "Not authorized for this account.")
        return None

    @staticmethod
    def _public(callback: dict[str, Any]) -> dict[str, Any]:
        return {k: callback[k] for k in ("callbackid", "verified", "uri", "event", "updated_at")}

    def _verify_message(self, callback: dict[str, Any]) -> None:
        form = {"name": "callback.verify", "object_id": str(callback["callbackid"]), "verifier": callback["verifier"]}
        self.sender.enqueue(
            Outgoing(
                callback["uri"],
                urlencode(form).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
                kind="callback.verify",
            )
        )

    async def callbacks_route(self, request: Request, account_id: str) -> JSONResponse:
        refused = self._owner(request, account_id)
        if refused is not None:
            return refused
        mine = [c for c in self.callbacks.values() if c["account_id"] == account_id]
        if request.method == "GET":
            listed = [self._public(c) for c in mine]
            return envelope({"callbacks": listed, "page": 1, "pages": 1, "per_page": 100, "total": len(listed)})
        try:
            data = (await request.json())["callback"]
            event, uri = data.get("event", ""), data.get("uri", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            event, uri = "", ""
        details = ([] if event in EVENTS else ["event: Value error, Unrecognized event."]) + (
            [] if str(uri).startswith(("http://", "https://")) else ["uri: Input should be a valid URL"]
        )
        if details:  # the newer API's error body (create_callback_response__validation_error.json)
            message = "The request was well-formed but was unable to be followed due to semantic errors."
            return JSONResponse({"errno": 422, "message": message, "details": details}, 422)
        self.counters["callback"] = self.counters.get("callback", 0) + 1
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        callback = {"callbackid": self.counters["callback"], "verified": False, "uri": uri, "event": event,
                    "updated_at": stamp, "account_id": account_id, "verifier": secrets.token_urlsafe(24)}  # fmt: skip
        self.callbacks[str(callback["callbackid"])] = callback
        self._verify_message(callback)
        return envelope({"callback": self._public(callback)})

    async def callback_route(self, request: Request, account_id: str, callback_id: str) -> JSONResponse:
        refused = self._owner(request, account_id)
        if refused is not None:
            return refused
        callback = self.callbacks.get(callback_id)
        if callback is None or callback["account_id"] != account_id:
            return errors(404, {"errno": 1012, "field": "callbackid", "message": "Callback not found.",
                                "object": "callback", "value": callback_id})  # fmt: skip
        if request.method == "DELETE":
            del self.callbacks[callback_id]
            return envelope({})
        if request.method == "PUT":
            try:
                data = (await request.json())["callback"]
            except (ValueError, KeyError, TypeError):
                data = {}
            if data.get("resend"):
                self._verify_message(callback)
            elif "verifier" in data:
                if not hmac.compare_digest(str(data["verifier"]), callback["verifier"]):
                    return errors(422, {"errno": 1003, "field": "verifier", "message": "Invalid verifier.",
                                        "object": "callback", "value": ""})  # fmt: skip
                callback["verified"] = True
        return envelope({"callback": self._public(callback)})

    def changed(self, account_id: str, obj: str, verb: str, record: dict[str, Any]) -> None:
        """An object changed: tell every verified callback for `<obj>.<verb>` on that account, signed."""
        business = next((a for a in BUSINESSES if a.extra["account_id"] == account_id), None)
        for callback in self.callbacks.values():
            if callback["account_id"] != account_id or not callback["verified"] or callback["event"] != f"{obj}.{verb}":
                continue
            form = {
                "name": f"{obj}.{verb}",
                "object_id": str(record["id"]),
                "account_id": account_id,
                "business_id": business.id if business else "",
                "identity_id": str(IDENTITY_ID),
                "user_id": "1",
            }
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-FreshBooks-Hmac-SHA256": sign(callback["verifier"], form),
            }
            self.sender.enqueue(Outgoing(callback["uri"], urlencode(form).encode(), headers, kind=form["name"]))

    def state(self) -> dict[str, Any]:
        return {
            "books": {k: {p: len(v) for p, v in b.items()} for k, b in self.books.items()},
            "callbacks": [self._public(c) for c in self.callbacks.values()],
            "webhooks": self.sender.counts(),
        }


def create_emulator(
    config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> FreshBooksEmulator:
    return FreshBooksEmulator(config, webhook_transport=webhook_transport)
