"""DocuSign's stand-in: DocuSign's OAuth (8-hour access, 30-day refresh) and /oauth/userinfo with accounts.

Paths are DocuSign's own: /oauth/auth, /oauth/token, /oauth/userinfo (account.docusign.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import STR, error_shape

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


class DocuSignEmulator(Emulator):
    key = "docusign"
    error_schema = error_shape({"errorCode": STR, "message": STR})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.hub_root = ""
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
            "account_id": f"{account.id[-2:]}0a1b2c-0000-4000-8000-000000000001",
            "is_default": True,
            "account_name": account.extra["acct"],
            "base_uri": "https://demo.docusign.net",
        }
        return JSONResponse({"sub": account.id, "name": account.name, "email": account.email, "accounts": [entry]})


def create_emulator(config: EmulatorConfig) -> DocuSignEmulator:
    return DocuSignEmulator(config)
