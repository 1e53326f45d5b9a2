"""Dropbox Sign's (HelloSign's) stand-in: its OAuth (one-day access tokens) and GET /v3/account.

Paths are Dropbox Sign's own: /oauth/authorize and /oauth/token (app.hellosign.com), /v3/... (api.hellosign.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import STR, error_shape

USERS = [
    Account("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4", "Olivia Owner", "olivia@riverbend.example"),
    Account("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d5", "Sam Okafor", "sam@northside.example"),
]


class DropboxSignEmulator(Emulator):
    key = "dropbox_sign"
    error_schema = error_shape({"error": error_shape({"error_msg": STR, "error_name": STR}, closed=False)})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
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
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "Unauthorized api key")
        return JSONResponse({"account": {"account_id": account.id, "email_address": account.email, "is_locked": False}})


def create_emulator(config: EmulatorConfig) -> DropboxSignEmulator:
    return DropboxSignEmulator(config)
