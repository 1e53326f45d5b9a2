"""Ahrefs' stand-in: API v3 keys sent as a Bearer token, checked against the keys the emulator was given.

`/v3/subscription-info/limits-and-usage` is the cheap call that proves a key works (it costs no units).
"""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.core import STR, error_shape


class AhrefsEmulator(Emulator):
    key = "ahrefs"
    error_schema = error_shape({"error": STR})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        # The mount adds the hub's configured key; tests may add others.
        self.api_keys: set[str] = set()
        self.app.add_api_route("/v3/subscription-info/limits-and-usage", self.limits, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def _authorized(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and any(secrets.compare_digest(value.strip(), k) for k in self.api_keys)

    async def limits(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return self.error_response(401, "Invalid API key")
        return JSONResponse(
            {
                "limits_and_usage": {
                    "subscription": "Standard, billed monthly",
                    "usage_reset_date": "2026-01-01T00:00:00Z",
                    "units_limit_workspace": 150000,
                    "units_usage_workspace": 1200,
                    "units_limit_api_key": 25000,
                    "units_usage_api_key": 300,
                    "api_key_expiration_date": "2027-01-01T00:00:00Z",
                }
            }
        )


def create_emulator(config: EmulatorConfig) -> AhrefsEmulator:
    return AhrefsEmulator(config)
