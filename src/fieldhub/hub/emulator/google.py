"""Google's side of every Google product's emulator: its OAuth server and userinfo, written once.

Google Calendar and Google Business Profile share Google's identity platform: authorize
/o/oauth2/v2/auth (accounts.google.com), token /token and revoke /revoke (oauth2.googleapis.com),
/v1/userinfo (openidconnect.googleapis.com), PKCE, one-hour access tokens and refresh tokens that never
rotate, and Google's error body. Each product's emulator adds its own API routes on top.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator.core import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.oauth import Account, OAuthRules, OAuthServer

# HTTP status -> (google.rpc status, the legacy `errors[].reason`), as Google's APIs answer them.
GOOGLE_STATUS = {
    400: ("INVALID_ARGUMENT", "badRequest"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "forbidden"),
    404: ("NOT_FOUND", "notFound"),
    409: ("ALREADY_EXISTS", "duplicate"),
    410: ("NOT_FOUND", "deleted"),
    412: ("FAILED_PRECONDITION", "conditionNotMet"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
}
GOOGLE_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "errors", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"enum": sorted({s for s, _ in GOOGLE_STATUS.values()})},
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["message", "domain", "reason"],
                        "properties": {"message": {"type": "string"}, "domain": {}, "reason": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def google_error(
    status: int, message: str, *, reason: str = "", detail: str = "", details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """Google's error body: `{"error": {code, message, errors: [{message, domain, reason}], status, details?}}`."""
    rpc, default_reason = GOOGLE_STATUS.get(status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", "error"))
    item: dict[str, Any] = {"message": detail or message, "domain": "global", "reason": reason or default_reason}
    if status == 401:
        item |= {"location": "Authorization", "locationType": "header"}
    body: dict[str, Any] = {"error": {"code": status, "message": message, "errors": [item], "status": rpc}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status)


def google_route_error(status: int) -> JSONResponse:
    # Google's front end has no 405: a method an API does not define on a path is "not found" like the path.
    if status == 405:
        return google_error(404, "Method not found.")
    return google_error(status, "Not Found")


class GoogleEmulator(Emulator):
    brand_color = "#4285F4"
    users: ClassVar[list[Account]] = []
    error_schema = GOOGLE_ERROR_SCHEMA

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
        return google_error(status, message)

    def route_error(self, status: int, request: Request) -> Response:
        return google_route_error(status)

    def unauthenticated(self) -> JSONResponse:
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
            "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            detail="Invalid Credentials",
        )

    async def userinfo(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        return JSONResponse({"sub": account.id, "name": account.name, "email": account.email, "email_verified": True})
