"""Wave's stand-in: OAuth (paths with Wave's trailing slashes) and the GraphQL `user` and `businesses` queries.

Wave's API is GraphQL at /graphql/public (gql.waveapps.com); only what connecting needs is answered here.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import STR, error_shape

BUSINESSES = [
    Account("QnVzaW5lc3M6ZGVtby0x", "Riverbend Plumbing & Heating", "office@riverbend.example"),
    Account("QnVzaW5lc3M6ZGVtby0y", "Summit Roofing", "books@summit.example"),
]


class WaveEmulator(Emulator):
    key = "wave"
    error_schema = error_shape(
        {
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": error_shape({"message": STR, "extensions": error_shape({"code": STR})}, closed=False),
            }
        }
    )

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=7200,
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(BUSINESSES),
            title="Wave",
            brand_color="#1C6EF2",
            authorize_path="/oauth2/authorize/",
            token_path="/oauth2/token/",
            revoke_path="/oauth2/revoke/",
        )
        self.app.add_api_route("/graphql/public", self.graphql, methods=["POST"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 429: "RATE_LIMITED"}.get(
            status, "BAD_USER_INPUT" if status < 500 else "INTERNAL_SERVER_ERROR"
        )
        return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

    async def graphql(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "Not authenticated")
        query = str((await request.json()).get("query", ""))
        data: dict = {}
        if "user" in query:
            data["user"] = {"id": "VXNlcjpkZW1v", "defaultEmail": account.email}
        if "businesses" in query:
            # The grant reaches the business chosen on the consent page.
            data["businesses"] = {"edges": [{"node": {"id": account.id, "name": account.name}}]}
        return JSONResponse({"data": data})


def create_emulator(config: EmulatorConfig) -> WaveEmulator:
    return WaveEmulator(config)
