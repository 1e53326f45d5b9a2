"""DocuSign's stand-in: DocuSign's OAuth (8-hour access, 30-day refresh), /oauth/userinfo with accounts, and the
eSignature REST API's envelopes with their signing pages and Connect notifications (envelopes.py).

Paths are DocuSign's own: /oauth/auth, /oauth/token, /oauth/userinfo (account.docusign.com), /restapi/v2.1/...
(the account's base URI), /Signing/... (the signer's pages).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer, RateRule
from fieldhub.hub.emulator.core import STR, error_shape
from fieldhub.hub.emulator.delivery import Sender
from fieldhub.hub.emulator.openapi import Referee, find_shared
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.providers.docusign.emulator.envelopes import CONNECT_RETRIES, Envelopes

USERS = [
    Account(
        "5f3e2d1c-0000-4000-8000-0000000000a1",
        "Olivia Owner",
        "olivia@riverbend.example",
        {"acct": "Riverbend Plumbing & Heating"},
    ),
    Account(
        "5f3e2d1c-0000-4000-8000-0000000000a2", "Sam Okafor", "sam@northside.example", {"acct": "Northside Electric"}
    ),
]


def _account_bucket(request: Request) -> str | None:
    parts = request.url.path.split("/")
    return parts[4] if len(parts) > 4 and parts[1] == "restapi" else None


_referee: Referee | None = None


def referee() -> Referee:
    global _referee
    if _referee is None:
        path = find_shared("docusign/esignature.rest.swagger-v2.1.json")
        if path is None:
            raise SpecMissing("shared/specs/docusign/esignature.rest.swagger-v2.1.json")
        _referee = Referee(path, base_path="/restapi")
    return _referee


class DocuSignEmulator(Emulator):
    key = "docusign"
    spec_label: ClassVar[str] = "DocuSign"
    error_schema = error_shape({"errorCode": STR, "message": STR})
    persisted = ("envelopes", "inbox")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.hub_root = ""
        self.envelopes: dict[str, dict[str, Any]] = {}
        self.inbox: list[dict[str, Any]] = []  # the emails DocuSign sent signers (links to sign, reminders)
        self.views: dict[str, dict[str, Any]] = {}  # recipient view URLs not yet opened
        self.sessions: dict[str, str] = {}  # an embedded signer's token -> where to send them back
        # Connect retries a message that asked for acknowledgment and got no 2xx.
        self.connect = Sender(
            self, schedule=CONNECT_RETRIES, transport=webhook_transport, enabled=config.deliver_webhooks
        )
        self.connect.install()
        # 3,000 calls an hour per account; bursts of 500 per 30 s (production; the developer host allows 200).
        self.rate_rules.append(RateRule("hourly", limit=3000, window=3600, applies=_account_bucket))
        self.rate_rules.append(RateRule("burst", limit=500, window=30, applies=_account_bucket))
        rules = OAuthRules.for_config(
            config,
            access_lifetime=28800,
            refresh_lifetime=2_592_000,
            token_extra=lambda account: {"token_type": "Bearer"},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(USERS),
            title="DocuSign",
            brand_color="#FFCC22",
            authorize_path="/oauth/auth",
            token_path="/oauth/token",
            revoke_path="/oauth/revoke",
        )
        self.app.add_api_route("/oauth/userinfo", self.userinfo, methods=["GET"])
        self.esign = Envelopes(self)
        self.esign.install()

    def account_id(self, account: Account) -> str:
        return f"{account.id[-2:]}0a1b2c-0000-4000-8000-000000000001"

    def run_due(self) -> int:
        ran = self.esign.run_due()
        self.connect.kick()
        return ran

    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """The REST API's replies against DocuSign's published spec; OAuth and the signing pages are not in it."""
        if not path.startswith("/restapi/"):
            return super().spec_problems(method, path, status, body)
        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return referee().response_errors(method, path, status, data)

    def state(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for env in self.envelopes.values():
            counts[env["status"]] = counts.get(env["status"], 0) + 1
        return {"envelopes": counts, "inbox": len(self.inbox), "connect": self.connect.counts()}

    def reset(self) -> None:
        super().reset()
        self.envelopes.clear()
        self.inbox.clear()
        self.views.clear()
        self.sessions.clear()
        self.connect.deliveries.clear()

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        code = {
            401: "AUTHORIZATION_INVALID_TOKEN",
            404: "RESOURCE_NOT_FOUND",
            405: "RESOURCE_NOT_FOUND",
            429: "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
        }.get(status, "INVALID_REQUEST_PARAMETER" if status < 500 else "UNSPECIFIED_ERROR")
        return JSONResponse({"errorCode": code, "message": message}, status_code=status)

    def route_error(self, status: int, request: Request) -> Response:
        return self.error_response(404, "The URL provided does not resolve to a resource.", request)

    async def userinfo(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "The access token provided is expired, revoked or malformed.")
        entry = {
            "account_id": self.account_id(account),
            "is_default": True,
            "account_name": account.extra["acct"],
            "base_uri": "https://demo.docusign.net",
        }
        return JSONResponse({"sub": account.id, "name": account.name, "email": account.email, "accounts": [entry]})


def create_emulator(
    config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> DocuSignEmulator:
    return DocuSignEmulator(config, webhook_transport=webhook_transport)
