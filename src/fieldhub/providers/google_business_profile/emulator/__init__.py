"""Google Business Profile's stand-in: Google's OAuth and userinfo (hub/emulator/google.py) and the accounts list.

Paths are Google's own: /v1/accounts (mybusinessaccountmanagement.googleapis.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, EmulatorConfig
from fieldhub.hub.emulator.google import GoogleEmulator


class GoogleBusinessProfileEmulator(GoogleEmulator):
    key = "google_business_profile"
    brand_color = "#34A853"
    users = [
        Account(
            "108234567890123456789",
            "Olivia Owner",
            "olivia@riverbend.example",
            {"business": "Riverbend Plumbing & Heating"},
        ),
        Account("108234567890123456790", "Sam Okafor", "sam@northside.example", {"business": "Northside Electric"}),
    ]

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.app.add_api_route("/v1/accounts", self.accounts, methods=["GET"])

    async def accounts(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        entry = {"name": f"accounts/{account.id}", "accountName": account.extra["business"], "type": "PERSONAL"}
        return JSONResponse({"accounts": [entry]})


def create_emulator(config: EmulatorConfig) -> GoogleBusinessProfileEmulator:
    return GoogleBusinessProfileEmulator(config)
