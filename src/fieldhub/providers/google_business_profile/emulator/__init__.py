"""Google Business Profile's stand-in: Google's OAuth (no rotation), userinfo and the list of accounts.

Paths are Google's own: authorize /o/oauth2/v2/auth, token /token, revoke /revoke, /v1/userinfo,
and /v1/accounts (mybusinessaccountmanagement.googleapis.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer

USERS = [
    Account("108234567890123456789", "Dana Rivera", "dana@riverside-hvac.example", {"business": "Riverside HVAC"}),
    Account("108234567890123456790", "Sam Okafor", "sam@northside.example", {"business": "Northside Electric"}),
]


class GoogleBusinessProfileEmulator(Emulator):
    key = "google_business_profile"

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=3599,
            rotation="none",
            pkce=True,
            token_extra=lambda account: {"token_type": "Bearer"},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(USERS),
            title="Google",
            brand_color="#34A853",
            authorize_path="/o/oauth2/v2/auth",
            token_path="/token",
            revoke_path="/revoke",
        )
        self.app.add_api_route("/v1/userinfo", self.userinfo, methods=["GET"])
        self.app.add_api_route("/v1/accounts", self.accounts, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        reason = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}.get(status, "INTERNAL")
        return JSONResponse({"error": {"code": status, "message": message, "status": reason}}, status_code=status)

    async def userinfo(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "Request had invalid authentication credentials.")
        return JSONResponse({"sub": account.id, "name": account.name, "email": account.email, "email_verified": True})

    async def accounts(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "Request had invalid authentication credentials.")
        entry = {"name": f"accounts/{account.id}", "accountName": account.extra["business"], "type": "PERSONAL"}
        return JSONResponse({"accounts": [entry]})


def create_emulator(config: EmulatorConfig) -> GoogleBusinessProfileEmulator:
    return GoogleBusinessProfileEmulator(config)
