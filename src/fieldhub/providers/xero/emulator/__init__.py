"""Xero's stand-in: Xero Identity OAuth (PKCE, rotating refresh tokens with a 30-minute grace) and /connections.

Paths are Xero's own: authorize /identity/connect/authorize (login.xero.com), token /connect/token and
revocation /connect/revocation (identity.xero.com), connections /connections (api.xero.com).
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import INT, STR, error_shape

ORGANISATIONS = [
    Account("a3b4c5d6-0000-4000-8000-00000000c001", "Riverbend Plumbing & Heating", "office@riverbend.example"),
    Account("a3b4c5d6-0000-4000-8000-00000000c002", "Bayside Plumbing Ltd", "accounts@bayside.example"),
]


class XeroEmulator(Emulator):
    key = "xero"
    # Xero's problem details (RFC 7807 with Xero's capitalised names), as api.xero.com answers.
    error_schema = error_shape(
        {"Type": {"type": ["string", "null"]}, "Title": STR, "Status": INT, "Detail": STR}, closed=False
    )

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        rules = OAuthRules.for_config(
            config,
            access_lifetime=1800,
            refresh_lifetime=5_184_000,
            rotation="rotate",
            reuse_grace=1800,
            pkce=True,
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(ORGANISATIONS),
            title="Xero",
            brand_color="#13B5EA",
            authorize_path="/identity/connect/authorize",
            token_path="/connect/token",
            revoke_path="/connect/revocation",
        )
        self.app.add_api_route("/connections", self.connections, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        body: dict[str, Any] = {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": message,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        }
        return JSONResponse(body, status_code=status)

    async def connections(self, request: Request) -> JSONResponse:
        """The organisations this grant reaches; the consent page picks one, as Xero's does."""
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "AuthenticationUnsuccessful")
        return JSONResponse(
            [
                {
                    "id": f"c0{account.id[2:]}",
                    "authEventId": "d99ecdfe-0000-4000-8000-000000000001",
                    "tenantId": account.id,
                    "tenantType": "ORGANISATION",
                    "tenantName": account.name,
                    "createdDateUtc": "2024-01-01T00:00:00.0000000",
                    "updatedDateUtc": "2024-01-01T00:00:00.0000000",
                }
            ]
        )


def create_emulator(config: EmulatorConfig) -> XeroEmulator:
    return XeroEmulator(config)
