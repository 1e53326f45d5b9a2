"""Google Calendar's stand-in: Google's OAuth and userinfo (hub/emulator/google.py) and the calendar list.

Paths are Google's own: /calendar/v3/users/me/calendarList (www.googleapis.com).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, EmulatorConfig
from fieldhub.hub.emulator.google import GoogleEmulator


class GoogleCalendarEmulator(GoogleEmulator):
    key = "google_calendar"
    users = [
        Account("108234567890123456789", "Olivia Owner", "olivia@riverbend.example"),
        Account("108234567890123456790", "Sam Okafor", "sam@northside-electric.example"),
    ]

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.app.add_api_route("/calendar/v3/users/me/calendarList", self.calendar_list, methods=["GET"])

    async def calendar_list(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        primary = {"kind": "calendar#calendarListEntry", "id": account.email, "summary": account.email, "primary": True}
        return JSONResponse({"kind": "calendar#calendarList", "items": [primary]})


def create_emulator(config: EmulatorConfig) -> GoogleCalendarEmulator:
    return GoogleCalendarEmulator(config)
