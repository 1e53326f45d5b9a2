"""Dropbox Sign's (HelloSign's) stand-in: its OAuth (one-day access tokens), GET /v3/account, and signature
requests with their signing pages and event callbacks (requests.py).

Paths are Dropbox Sign's own: /oauth/authorize and /oauth/token (app.hellosign.com), /v3/... (api.hellosign.com),
/sign/... and /editor/embeddedSign (the signer's pages).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, ClassVar

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer, RateRule
from fieldhub.hub.emulator.core import STR, error_shape
from fieldhub.hub.emulator.delivery import Sender
from fieldhub.hub.emulator.openapi import Referee, find_shared
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.providers.dropbox_sign.emulator.requests import REPLY, RETRIES, Requests

# The key Dropbox Sign's own SDK tests sign callbacks with: the emulator's account key when the hub sets none.
DEFAULT_API_KEY = "324e3b0840f065eb51f3fd63231d0d33daa35d4ed10d27718839e81737065782"
HIGH_TIER = ("/v3/signature_request/send", "/v3/signature_request/create_embedded", "/v3/signature_request/files")
_referee: Referee | None = None


def referee() -> Referee:
    global _referee
    if _referee is None:
        path = find_shared("hellosign/openapi.yaml")
        if path is None:
            raise SpecMissing("shared/specs/hellosign/openapi.yaml")
        _referee = Referee(path, base_path="/v3")
    return _referee


USERS = [
    Account("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4", "Olivia Owner", "olivia@riverbend.example"),
    Account("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d5", "Sam Okafor", "sam@northside.example"),
]


class DropboxSignEmulator(Emulator):
    key = "dropbox_sign"
    spec_label: ClassVar[str] = "Dropbox Sign"
    error_schema = error_shape({"error": error_shape({"error_msg": STR, "error_name": STR}, closed=False)})
    persisted = ("signature_requests", "inbox")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        # API keys: the mount adds the one the hub is configured with (it checks callbacks' event_hash with it).
        self.api_keys: set[str] = set()
        self.signature_requests: dict[str, dict[str, Any]] = {}
        self.inbox: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.sessions: set[str] = set()
        # A callback counts as received only when answered 200 with exactly this text.
        self.callbacks = Sender(
            self,
            schedule=RETRIES,
            accepted=lambda status, text: status == 200 and text == REPLY,
            transport=webhook_transport,
            enabled=config.deliver_webhooks,
        )
        self.callbacks.install()
        # Per account: 100 requests a minute, 25 for sending and file downloads (the help centre's figures).
        self.rate_rules.append(RateRule("standard", limit=100, window=60, applies=self._bucket))
        self.rate_rules.append(RateRule("high", limit=25, window=60, applies=self._high_bucket))
        rules = OAuthRules.for_config(
            config,
            access_lifetime=86400,
            token_extra=lambda account: {"token_type": "Bearer", "state": None},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(USERS),
            title="Dropbox Sign",
            brand_color="#0061FE",
            authorize_path="/oauth/authorize",
            token_path="/oauth/token",
            revoke_path="/oauth/revoke",
        )
        self.app.add_api_route("/v3/account", self.account_info, methods=["GET"])
        self.signing = Requests(self)
        self.signing.install()

    def _bucket(self, request: Request) -> str | None:
        return request.headers.get("authorization", "")[-12:] or None if request.url.path.startswith("/v3/") else None

    def _high_bucket(self, request: Request) -> str | None:
        return self._bucket(request) if request.url.path.startswith(HIGH_TIER) else None

    def caller(self, request: Request) -> str | None:
        """The account behind the API key (Basic, the key as user name) or the OAuth access token (Bearer)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value.strip()).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                return None
            keys = self.api_keys or {DEFAULT_API_KEY}
            return USERS[0].id if any(secrets.compare_digest(user, k) for k in keys) else None
        account = self.oauth.authenticate(request)
        return account.id if account else None

    def email_of(self, account_id: str) -> str:
        return next((u.email for u in USERS if u.id == account_id), "")

    def event_key(self) -> str:
        """The API key event hashes are made with (the app owner's)."""
        return next(iter(sorted(self.api_keys)), DEFAULT_API_KEY)

    def run_due(self) -> int:
        ran = self.signing.run_due()
        self.callbacks.kick()
        return ran

    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """The API's replies (/v3) against Dropbox Sign's published OpenAPI; not OAuth, not the signing pages."""
        if not path.startswith("/v3/"):
            return super().spec_problems(method, path, status, body)
        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return referee().response_errors(method, path, status, data)

    def state(self) -> dict[str, Any]:
        return {
            "signature_requests": len(self.signature_requests),
            "inbox": len(self.inbox),
            "callbacks": self.callbacks.counts(),
        }

    def reset(self) -> None:
        super().reset()
        self.signature_requests.clear()
        self.inbox.clear()
        self.views.clear()
        self.sessions.clear()
        self.callbacks.deliveries.clear()

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        name = {
            400: "bad_request",
            401: "unauthorized",
            402: "payment_required",
            403: "forbidden",
            404: "not_found",
            405: "method_not_supported",
            409: "conflict",
            410: "deleted",
            429: "exceeded_rate",
        }.get(status, "unknown")
        return JSONResponse({"error": {"error_msg": message, "error_name": name}}, status_code=status)

    async def account_info(self, request: Request) -> JSONResponse:
        account_id = self.caller(request)
        if account_id is None:
            return self.error_response(401, "Unauthorized api key")
        email = self.email_of(account_id)
        return JSONResponse({"account": {"account_id": account_id, "email_address": email, "is_locked": False}})


def create_emulator(
    config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> DropboxSignEmulator:
    return DropboxSignEmulator(config, webhook_transport=webhook_transport)
