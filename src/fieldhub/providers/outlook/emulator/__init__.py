"""Outlook's stand-in: Microsoft identity platform v2.0 OAuth (refresh tokens replace themselves; the old one
keeps working for its own 90 days) and Microsoft Graph /v1.0/me.

Paths are Microsoft's own: /common/oauth2/v2.0/authorize and /common/oauth2/v2.0/token
(login.microsoftonline.com), /v1.0/... (graph.microsoft.com). There is no revocation endpoint.
The calendar API: emulator/calendar.py.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import STR, error_shape

USERS = [
    Account("6e7b768e-07e2-4810-8459-485f84f8f204", "Olivia Owner", "olivia@riverbend.onmicrosoft.example"),
    Account("6e7b768e-07e2-4810-8459-485f84f8f205", "Sam Okafor", "sam@outlook.example"),
]
NINETY_DAYS = 7_776_000


class OutlookEmulator(Emulator):
    key = "outlook"
    error_schema = error_shape({"error": error_shape({"code": STR, "message": STR}, closed=False)})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=3600,
            refresh_lifetime=NINETY_DAYS,
            rotation="rotate",
            reuse_grace=NINETY_DAYS,
            pkce=True,
            token_extra=lambda account: {"token_type": "Bearer", "ext_expires_in": 3600},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(USERS),
            title="Microsoft",
            brand_color="#0078D4",
            authorize_path="/common/oauth2/v2.0/authorize",
            token_path="/common/oauth2/v2.0/token",
            revoke_path="/common/oauth2/v2.0/logout",
        )
        self.app.add_api_route("/v1.0/me", self.me, methods=["GET"])
        from fieldhub.providers.outlook.emulator import calendar

        calendar.install(self)

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        code = {
            400: "invalidRequest",
            401: "InvalidAuthenticationToken",
            403: "accessDenied",
            404: "itemNotFound",
            405: "notSupported",
            429: "TooManyRequests",
        }.get(status, "generalException")
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    async def me(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "Access token is empty or invalid.")
        return JSONResponse(
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "id": account.id,
                "displayName": account.name,
                "mail": account.email,
                "userPrincipalName": account.email,
            }
        )


def create_emulator(config: EmulatorConfig) -> OutlookEmulator:
    return OutlookEmulator(config)
