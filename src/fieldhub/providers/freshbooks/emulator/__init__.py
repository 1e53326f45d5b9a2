"""FreshBooks' stand-in: OAuth with single-use refresh tokens (the old one dies at once) and /auth/api/v1/users/me.

Paths are FreshBooks' own: authorize /oauth/authorize (auth.freshbooks.com), token /auth/oauth/token
and identity /auth/api/v1/users/me (api.freshbooks.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import STR, error_shape

BUSINESSES = [
    Account(
        "2192788", "Riverbend Plumbing & Heating", "office@riverbend.example", {"account_id": "zDmNq", "uuid": "b1"}
    ),
    Account("2192790", "Northside Electric", "office@northside.example", {"account_id": "xPqRt", "uuid": "b2"}),
]


class FreshBooksEmulator(Emulator):
    key = "freshbooks"
    error_schema = error_shape({"error": STR, "message": STR})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=43200,
            rotation="single_use",
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(BUSINESSES),
            title="FreshBooks",
            brand_color="#0075DD",
            authorize_path="/oauth/authorize",
            token_path="/auth/oauth/token",
            revoke_path="/auth/oauth/revoke",
        )
        self.app.add_api_route("/auth/api/v1/users/me", self.me, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        error = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 429: "rate_limited"}.get(status, "error")
        return JSONResponse({"error": error, "message": message}, status)

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
                    "id": 900100,
                    "email": account.email,
                    "first_name": "Demo",
                    "last_name": "Owner",
                    "business_memberships": [{"id": 1, "role": "owner", "business": business}],
                    "roles": [{"role": "admin", "accountid": account.extra["account_id"]}],
                }
            }
        )


def create_emulator(config: EmulatorConfig) -> FreshBooksEmulator:
    return FreshBooksEmulator(config)
