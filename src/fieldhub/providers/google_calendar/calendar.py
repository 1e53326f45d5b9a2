"""Google Calendar v3 as the calendar capability's CalendarApi (capabilities/calendar/protocol.py).

Idempotent creates use a client-chosen event id derived from the engine's key (hex is base32hex), so a
replay answers 409 duplicate: the event is there, and it is brought up to date. Our job id rides in
extendedProperties.private. Incremental reads follow nextPageToken to the nextSyncToken; 410 means the
token expired (CursorExpired).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fieldhub.capabilities.calendar.protocol import CalendarEvent, CalendarInfo, Changes, CursorExpired
from fieldhub.hub.errors import Rejected
from fieldhub.hub.http import ProviderClient

MARK = "fieldhub_job"
MARK_VERSION = "fieldhub_version"


def event_id(idempotency_key: str) -> str:
    """base32hex (a-v, 0-9), 5-1024 chars: the key's hex digits are all allowed."""
    return "fh" + idempotency_key.removeprefix("fh-").lower()


def _cal(calendar_id: str) -> str:
    return quote(calendar_id, safe="")


def _when(value: dict[str, Any] | None) -> tuple[datetime | None, bool]:
    if not value:
        return None, False
    if value.get("dateTime"):
        when = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(value.get("timeZone") or "UTC"))
        return when.astimezone(UTC), False
    if value.get("date"):
        return datetime.fromisoformat(str(value["date"])).replace(tzinfo=UTC), True
    return None, False


def to_event(data: dict[str, Any], calendar_id: str) -> CalendarEvent:
    start, all_day = _when(data.get("start"))
    end, _ = _when(data.get("end"))
    cancelled = data.get("status") == "cancelled"
    start = start or datetime.fromtimestamp(0, UTC)
    end = end or start
    private = (data.get("extendedProperties") or {}).get("private") or {}
    job = private.get(MARK)
    version = private.get(MARK_VERSION)
    overrides = (data.get("reminders") or {}).get("overrides") or []
    updated = data.get("updated")
    return CalendarEvent(
        calendar_id=calendar_id,
        key=str(data.get("id", "")),
        summary=str(data.get("summary", "")),
        start=start,
        end=end if cancelled or end > start else start,
        time_zone=str((data.get("start") or {}).get("timeZone") or "UTC"),
        location=str(data.get("location", "")),
        description=str(data.get("description", "")),
        reminder_minutes=int(overrides[0]["minutes"]) if overrides else None,
        busy=data.get("transparency") != "transparent",
        private=data.get("visibility") in ("private", "confidential"),
        cancelled=cancelled or not (end and end > start),
        job_id=int(job) if job and str(job).isdigit() else None,
        job_version=int(version) if version and str(version).isdigit() else None,
        updated=datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None,
        all_day=all_day,
        raw=data,
    )


def to_body(event: CalendarEvent) -> dict[str, Any]:
    zone = ZoneInfo(event.time_zone)
    body: dict[str, Any] = {
        "summary": event.summary,
        "description": event.description,
        "location": event.location,
        "start": {"dateTime": event.start.astimezone(zone).isoformat(), "timeZone": event.time_zone},
        "end": {"dateTime": event.end.astimezone(zone).isoformat(), "timeZone": event.time_zone},
        "status": "confirmed",
        "transparency": "opaque" if event.busy else "transparent",
        "reminders": {
            "useDefault": False,
            "overrides": []
            if event.reminder_minutes is None
            else [{"method": "popup", "minutes": event.reminder_minutes}],
        },
    }
    if event.job_id is not None:
        body["extendedProperties"] = {"private": {MARK: str(event.job_id), MARK_VERSION: str(event.job_version or 0)}}
    return body


class GoogleCalendar:
    def __init__(self, client: ProviderClient) -> None:
        self.client = client

    async def calendars(self) -> list[CalendarInfo]:
        reply = (await self.client.get("/users/me/calendarList")).json()
        return [
            CalendarInfo(str(c["id"]), str(c.get("summaryOverride") or c.get("summary", "")), bool(c.get("primary")))
            for c in reply.get("items", [])
            if c.get("accessRole", "owner") in ("owner", "writer")
        ]

    async def create_calendar(self, name: str, time_zone: str) -> CalendarInfo:
        reply = (await self.client.post("/calendars", json={"summary": name, "timeZone": time_zone})).json()
        return CalendarInfo(str(reply["id"]), str(reply.get("summary", name)))

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> CalendarEvent:
        key = event_id(idempotency_key)
        path = f"/calendars/{_cal(event.calendar_id)}/events"
        try:
            # A chosen id makes the POST safe to repeat: a second one is 409, never a second event.
            reply = await self.client.post(path, json={"id": key, **to_body(event)}, idempotent=True)
        except Rejected as e:
            if e.status != 409:
                raise
            return await self.update_event(CalendarEvent(**{**_fields(event), "key": key}))
        return to_event(reply.json(), event.calendar_id)

    async def find_event(self, calendar_id: str, key: str, idempotency_key: str = "") -> CalendarEvent | None:
        wanted = key or event_id(idempotency_key)
        try:
            reply = await self.client.get(f"/calendars/{_cal(calendar_id)}/events/{wanted}")
        except Rejected as e:
            if e.status in (404, 410):
                return None
            raise
        return to_event(reply.json(), calendar_id)

    async def update_event(self, event: CalendarEvent) -> CalendarEvent:
        path = f"/calendars/{_cal(event.calendar_id)}/events/{event.key}"
        reply = await self.client.put(path, json=to_body(event))
        return to_event(reply.json(), event.calendar_id)

    async def move_event(self, event: CalendarEvent, from_calendar: str) -> CalendarEvent:
        path = f"/calendars/{_cal(from_calendar)}/events/{event.key}/move"
        try:
            reply = await self.client.post(path, params={"destination": event.calendar_id}, idempotent=True)
        except Rejected as e:
            if e.status not in (404, 410):
                raise
            return event  # already moved (a replay), or gone: the update that follows puts it right
        return to_event(reply.json(), event.calendar_id)

    async def delete_event(self, calendar_id: str, key: str) -> None:
        try:
            await self.client.delete(f"/calendars/{_cal(calendar_id)}/events/{key}")
        except Rejected as e:
            if e.status not in (404, 410):
                raise

    async def changes(self, calendar_id: str, cursor: str) -> Changes:
        events: list[CalendarEvent] = []
        params: dict[str, Any] = {"maxResults": "250"}
        if cursor:
            params["syncToken"] = cursor
        else:
            params["singleEvents"] = "true"
        while True:
            try:
                reply = (await self.client.get(f"/calendars/{_cal(calendar_id)}/events", params=params)).json()
            except Rejected as e:
                if e.status == 410:
                    raise CursorExpired(str(e)) from e
                raise
            events += [to_event(item, calendar_id) for item in reply.get("items", [])]
            if reply.get("nextPageToken"):
                params = {k: v for k, v in params.items() if k in ("syncToken", "maxResults", "singleEvents")}
                params["pageToken"] = reply["nextPageToken"]
                continue
            return Changes(events, str(reply.get("nextSyncToken", "")), full=not cursor)

    async def watch(self, calendar_id: str, channel_id: str, address: str, token: str) -> dict[str, Any]:
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token}
        reply = await self.client.post(f"/calendars/{_cal(calendar_id)}/events/watch", json=body, idempotent=True)
        data: dict[str, Any] = reply.json()
        return data

    async def stop(self, channel_id: str, resource_id: str) -> None:
        try:
            await self.client.post(
                "/channels/stop", json={"id": channel_id, "resourceId": resource_id}, idempotent=True
            )
        except Rejected as e:
            if e.status != 404:
                raise


def _fields(event: CalendarEvent) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(event, f.name) for f in fields(event)}


def open_calendar(connection: Any, client: ProviderClient) -> GoogleCalendar:
    return GoogleCalendar(client)


def push_notice(headers: dict[str, str]) -> tuple[str, str, str] | None:
    """A watch channel's notice: (channel id, the token we chose, resource state), or None if it is not one."""
    channel = headers.get("x-goog-channel-id", "")
    state = headers.get("x-goog-resource-state", "")
    if not channel or state not in ("sync", "exists", "not_exists"):
        return None
    return channel, headers.get("x-goog-channel-token", ""), state
