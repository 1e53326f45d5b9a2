"""Google's own API client, built from the discovery document, against the Calendar emulator's events API.

`googleapiclient.discovery.build_from_document` reads shared/specs/google-calendar/calendar.v3.json and is
pointed at the emulator's port (client_options api_endpoint), nothing else changed: calendars, events with a
client-chosen id (the same id again is 409 duplicate), the list's paging and nextSyncToken, an incremental
list carrying a cancellation, an expired token's 410, freeBusy, and a watch channel that POSTs back.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httplib2
import pytest
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from fieldhub.providers.google_calendar.emulator import discovery
from tests.providers.google_calendar.test_sdk import _consent, _session, served  # noqa: F401 - the fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _service(port: int, token: str):  # noqa: ANN202 - googleapiclient's Resource is dynamic
    document = discovery.load_document()
    assert document is not None, "shared/specs/google-calendar/calendar.v3.json is needed"
    http = AuthorizedHttp(Credentials(token=token), http=httplib2.Http())
    return build_from_document(
        document, http=http, client_options={"api_endpoint": f"http://127.0.0.1:{port}/calendar/v3/"}
    )


class _Hook(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        _Hook.seen.append({**{k.lower(): v for k, v in self.headers.items()}, "body": body.decode()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_issue17_item8_google_api_client_drives_events_sync_freebusy_and_watch(served) -> None:  # noqa: ANN001, F811
    emulator, port = served
    tokens = _consent(port, emulator.users[0].id)
    api = _service(port, tokens["access_token"])

    listed = api.calendarList().list().execute()
    assert listed["items"][0]["primary"] is True
    jobs_cal = api.calendars().insert(body={"summary": "fieldhub jobs", "timeZone": "America/Chicago"}).execute()
    assert jobs_cal["id"].endswith("@group.calendar.google.com")
    names = [c["summary"] for c in api.calendarList().list().execute()["items"]]
    assert "fieldhub jobs" in names

    body = {
        "id": "fhjob000001v1",
        "summary": "Water heater install",
        "location": "12 Elm St",
        "start": {"dateTime": "2026-12-08T09:00:00-06:00", "timeZone": "America/Chicago"},
        "end": {"dateTime": "2026-12-08T11:00:00-06:00", "timeZone": "America/Chicago"},
        "extendedProperties": {"private": {"fieldhub": "job:1"}},
        "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 30}]},
    }
    created = api.events().insert(calendarId=jobs_cal["id"], body=body).execute()
    assert created["id"] == "fhjob000001v1" and created["status"] == "confirmed"
    with pytest.raises(HttpError) as dup:
        api.events().insert(calendarId=jobs_cal["id"], body=body).execute()
    assert dup.value.status_code == 409
    assert json.loads(dup.value.content)["error"]["errors"][0]["reason"] == "duplicate"
    with pytest.raises(HttpError) as bad:
        api.events().insert(calendarId=jobs_cal["id"], body={**body, "id": "NOT-base32hex"}).execute()
    assert bad.value.status_code == 400

    for n in range(2, 5):
        api.events().insert(calendarId=jobs_cal["id"], body={**body, "id": f"fhjob00000{n}v1"}).execute()
    # A full sync in pages of two: nextSyncToken only on the last page.
    pages, token, request = [], None, api.events().list(calendarId=jobs_cal["id"], maxResults=2)
    while request is not None:
        page = request.execute()
        pages.append(page)
        token = page.get("nextSyncToken", token)
        request = api.events().list_next(request, page)
    assert [len(p["items"]) for p in pages] == [2, 2] and "nextSyncToken" not in pages[0] and token

    moved = (
        api.events()
        .patch(
            calendarId=jobs_cal["id"],
            eventId="fhjob000002v1",
            body={"start": {"dateTime": "2026-12-09T13:00:00Z"}, "end": {"dateTime": "2026-12-09T14:00:00Z"}},
        )
        .execute()
    )
    assert moved["sequence"] == 1
    api.events().delete(calendarId=jobs_cal["id"], eventId="fhjob000003v1").execute()
    changes = api.events().list(calendarId=jobs_cal["id"], syncToken=token).execute()
    assert {e["id"]: e["status"] for e in changes["items"]} == {
        "fhjob000002v1": "confirmed",
        "fhjob000003v1": "cancelled",
    }
    assert changes["nextSyncToken"]

    busy = (
        api.freebusy()
        .query(
            body={
                "timeMin": "2026-12-08T00:00:00Z",
                "timeMax": "2026-12-10T00:00:00Z",
                "items": [{"id": jobs_cal["id"]}],
            }
        )
        .execute()
    )
    assert busy["calendars"][jobs_cal["id"]]["busy"][0] == {
        "start": "2026-12-08T15:00:00.000Z",
        "end": "2026-12-08T17:00:00.000Z",
    }
    assert len(busy["calendars"][jobs_cal["id"]]["busy"]) == 3  # the cancelled one is free

    # Google expires sync tokens: 410 fullSyncRequired, and a full list starts over.
    emulator.counters["epoch"] += 1
    with pytest.raises(HttpError) as gone:
        api.events().list(calendarId=jobs_cal["id"], syncToken=changes["nextSyncToken"]).execute()
    assert gone.value.status_code == 410
    assert json.loads(gone.value.content)["error"]["errors"][0]["reason"] == "fullSyncRequired"

    # A watch channel: Google POSTs an empty body with the channel in headers, "sync" first, then "exists".
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        channel = (
            api.events()
            .watch(
                calendarId=jobs_cal["id"],
                body={
                    "id": "chan-1",
                    "type": "web_hook",
                    "address": f"http://127.0.0.1:{server.server_port}/hook",
                    "token": "tok-1",
                },
            )
            .execute()
        )
        assert channel["resourceId"] and int(channel["expiration"]) > 0
        api.events().patch(calendarId=jobs_cal["id"], eventId="fhjob000001v1", body={"summary": "Moved"}).execute()
        import time

        deadline = time.time() + 5
        while len(_Hook.seen) < 2 and time.time() < deadline:
            time.sleep(0.05)
        states = [(h["x-goog-resource-state"], h["x-goog-channel-token"], h["body"]) for h in _Hook.seen]
        assert states[:2] == [("sync", "tok-1", ""), ("exists", "tok-1", "")]
        api.channels().stop(body={"id": "chan-1", "resourceId": channel["resourceId"]}).execute()
        assert not emulator.channels
    finally:
        server.shutdown()


def test_issue17_item8_calendar_replies_meet_the_discovery_document() -> None:
    ok = {"kind": "calendar#event", "id": "abcde", "start": {"dateTime": "2026-12-08T09:00:00Z"}}
    assert discovery.problems("Event", ok) == []
    assert discovery.problems("Event", {**ok, "colour": "red"})  # a key Google's Event does not have
    assert discovery.method_for("POST", "/calendar/v3/calendars/x/events/watch")["id"] == "calendar.events.watch"
    assert discovery.method_for("GET", "/calendar/v3/calendars/x/events/y")["id"] == "calendar.events.get"
