"""Google's side of every Google product's emulator: its OAuth server and userinfo, written once.

Google Calendar and Google Business Profile share Google's identity platform: authorize
/o/oauth2/v2/auth (accounts.google.com), token /token and revoke /revoke (oauth2.googleapis.com),
/v1/userinfo (openidconnect.googleapis.com), PKCE, one-hour access tokens and refresh tokens that never
rotate, and Google's error body. Each product's emulator adds its own API routes on top.
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator.core import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.oauth import Account, OAuthRules, OAuthServer


class GoogleEmulator(Emulator):
    brand_color = "#4285F4"
    users: ClassVar[list[Account]] = []

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
            list(self.users),
            title="Google",
            brand_color=self.brand_color,
            authorize_path="/o/oauth2/v2/auth",
            token_path="/token",
            revoke_path="/revoke",
        )
        self.app.add_api_route("/v1/userinfo", self.userinfo, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        reason = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}.get(status, "INTERNAL")
        return JSONResponse({"error": {"code": status, "message": message, "status": reason}}, status_code=status)

    def unauthenticated(self) -> JSONResponse:
        return self.error_response(401, "Request had invalid authentication credentials.")

    async def userinfo(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        return JSONResponse({"sub": account.id, "name": account.name, "email": account.email, "email_verified": True})
