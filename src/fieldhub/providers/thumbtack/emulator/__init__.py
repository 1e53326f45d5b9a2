"""Thumbtack's stand-in: Thumbtack's OAuth (audience urn:partner-api) and GET /api/v4/businesses.

Paths are Thumbtack's own: /oauth2/auth and /oauth2/token (auth.thumbtack.com), /api/v4/... (api.thumbtack.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import INT, STR, error_shape

BUSINESSES = [
    Account("286845156044809661", "Riverbend Plumbing & Heating", "office@riverbend.example"),
    Account("286845156044809662", "Northside Electric Co", "sam@northside.example"),
]


class ThumbtackEmulator(Emulator):
    key = "thumbtack"
    error_schema = error_shape(
        {"errors": {"type": "array", "minItems": 1, "items": error_shape({"message": STR, "code": INT})}}
    )

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=3600,
            token_extra=lambda account: {"token_type": "bearer"},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(BUSINESSES),
            title="Thumbtack",
            brand_color="#009FD9",
            authorize_path="/oauth2/auth",
            token_path="/oauth2/token",
            revoke_path="/oauth2/revoke",
        )
        self.app.add_api_route("/api/v4/businesses", self.businesses, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"errors": [{"message": message, "code": status}]}, status_code=status)

    async def businesses(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "unauthorized")
        entry = {"businessID": account.id, "name": account.name, "imageURL": ""}
        return JSONResponse({"data": [entry], "pagination": {"limit": 20}})


def create_emulator(config: EmulatorConfig) -> ThumbtackEmulator:
    return ThumbtackEmulator(config)
