"""Outlook (Microsoft Graph) as the calendar capability's CalendarApi (capabilities/calendar/protocol.py).

Creates carry `transactionId` (the engine's committed key): Graph answers a retried create with the event the
first one made. Changes come from /calendars/{id}/calendarView/delta over a window (a year back to two ahead),
the deltaLink's $deltatoken kept as the cursor; 410 (syncStateNotFound, or a reset) means start over (CursorExpired).
Times go out and come back in UTC. A job's event is known by its id in the ledger, not by a marker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fieldhub.capabilities.calendar.protocol import CalendarEvent, CalendarInfo, Changes, CursorExpired
from fieldhub.hub.errors import Rejected
from fieldhub.hub.http import ProviderClient

WINDOW_BACK = timedelta(days=30)
WINDOW_AHEAD = timedelta(days=730)


def _when(value: dict[str, Any] | None) -> datetime | None:
    if not value or not value.get("dateTime"):
        return None
    when = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00")[:26])
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _utc(value: datetime) -> dict[str, str]:
    return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def to_event(data: dict[str, Any], calendar_id: str) -> CalendarEvent:
    removed = "@removed" in data or bool(data.get("isCancelled"))
    start = _when(data.get("start")) or datetime.fromtimestamp(0, UTC)
    end = _when(data.get("end")) or start
    modified = data.get("lastModifiedDateTime")
    return CalendarEvent(
        calendar_id=calendar_id,
        key=str(data.get("id", "")),
        summary=str(data.get("subject", "")),
        start=start,
        end=end if removed or end > start else start,
        time_zone="UTC",
        location=str((data.get("location") or {}).get("displayName", "")),
        description=str((data.get("body") or {}).get("content", "")),
        reminder_minutes=int(data["reminderMinutesBeforeStart"]) if data.get("isReminderOn") else None,
        busy=data.get("showAs", "busy") not in ("free", "workingElsewhere"),
        private=data.get("sensitivity") in ("private", "confidential"),
        cancelled=removed or not end > start,
        updated=datetime.fromisoformat(modified.replace("Z", "+00:00")) if modified else None,
        all_day=bool(data.get("isAllDay")),
        raw=data,
    )


def to_body(event: CalendarEvent) -> dict[str, Any]:
    return {
        "subject": event.summary,
        "body": {"contentType": "text", "content": event.description},
        "start": _utc(event.start),
        "end": _utc(event.end),
        "location": {"displayName": event.location},
        "showAs": "busy" if event.busy else "free",
        "isReminderOn": event.reminder_minutes is not None,
        "reminderMinutesBeforeStart": event.reminder_minutes or 0,
    }


class OutlookCalendar:
    def __init__(self, client: ProviderClient) -> None:
        self.client = client

    async def calendars(self) -> list[CalendarInfo]:
        reply = (await self.client.get("/me/calendars")).json()
        return [
            CalendarInfo(str(c["id"]), str(c.get("name", "")), bool(c.get("isDefaultCalendar")))
            for c in reply.get("value", [])
            if c.get("canEdit", True)
        ]

    async def create_calendar(self, name: str, time_zone: str) -> CalendarInfo:
        try:
            reply = (await self.client.post("/me/calendars", json={"name": name})).json()
        except Rejected as e:
            if e.status != 409:
                raise
            found = next((c for c in await self.calendars() if c.name == name), None)
            if found is None:
                raise
            return found
        return CalendarInfo(str(reply["id"]), str(reply.get("name", name)))

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> CalendarEvent:
        body = {**to_body(event), "transactionId": idempotency_key}
        # transactionId makes the POST safe to repeat: Graph answers a retry with the first one's event.
        reply = await self.client.post(
            f"/me/calendars/{quote(event.calendar_id, safe='')}/events", json=body, idempotent=True
        )
        return to_event(reply.json(), event.calendar_id)

    async def find_event(self, calendar_id: str, key: str, idempotency_key: str = "") -> CalendarEvent | None:
        if key:
            try:
                return to_event((await self.client.get(f"/me/events/{quote(key, safe='')}")).json(), calendar_id)
            except Rejected as e:
                if e.status == 404:
                    return None
                raise
        return None  # by transactionId, a create's replay is what finds it (create_event)

    async def update_event(self, event: CalendarEvent) -> CalendarEvent:
        reply = await self.client.request(
            "PATCH", f"/me/events/{quote(event.key, safe='')}", json=to_body(event), idempotent=True
        )
        return to_event(reply.json(), event.calendar_id)

    async def move_event(self, event: CalendarEvent, from_calendar: str) -> CalendarEvent:
        raise Rejected("not_supported", "Outlook events are not moved between calendars by fieldhub yet.", "")

    async def delete_event(self, calendar_id: str, key: str) -> None:
        try:
            await self.client.delete(f"/me/events/{quote(key, safe='')}")
        except Rejected as e:
            if e.status not in (404, 410):
                raise

    async def changes(self, calendar_id: str, cursor: str) -> Changes:
        events: list[CalendarEvent] = []
        if cursor:
            path = f"/me/calendars/{quote(calendar_id, safe='')}/calendarView/delta"
            params: dict[str, Any] | None = {"$deltatoken": cursor}
        else:
            now = datetime.now(UTC)
            path = f"/me/calendars/{quote(calendar_id, safe='')}/calendarView/delta"
            params = {
                "startDateTime": (now - WINDOW_BACK).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endDateTime": (now + WINDOW_AHEAD).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        while True:
            try:
                reply = (await self.client.get(path, params=params)).json()
            except Rejected as e:
                if e.status == 410 or e.code in ("syncStateNotFound", "resyncRequired"):
                    raise CursorExpired(str(e)) from e
                raise
            events += [to_event(item, calendar_id) for item in reply.get("value", [])]
            if reply.get("@odata.nextLink"):
                path, params = _relative(reply["@odata.nextLink"]), None
                continue
            # The cursor is the deltaLink's $deltatoken: the link is rebuilt from the calendar, as it was.
            token = parse_qs(urlsplit(str(reply.get("@odata.deltaLink", ""))).query).get("$deltatoken", [""])[0]
            return Changes(events, token, full=not cursor)


def _relative(link: str) -> str:
    """A Graph link as a path under the client's base URL (…/v1.0): where the delta's pages say to go next."""
    parts = urlsplit(link)
    path = parts.path.split("/v1.0", 1)[-1]
    return path + (f"?{parts.query}" if parts.query else "")


def open_calendar(connection: Any, client: ProviderClient) -> OutlookCalendar:
    return OutlookCalendar(client)
