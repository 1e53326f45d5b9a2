"""Google Calendar's stand-in: Google's OAuth and userinfo (hub/emulator/google.py) and Calendar API v3.

Paths are Google's own under /calendar/v3 (www.googleapis.com): the calendar list, calendars insert/get,
events CRUD (a client-chosen base32hex `id` makes an insert idempotent: the same id again is 409 duplicate),
events.list with paging, `nextSyncToken` on the last page and incremental lists that carry cancellations
(an expired token is 410 fullSyncRequired; the control surface expires every token), freeBusy, and watch
channels that really POST Google's empty-bodied notifications (X-Goog-Channel-* headers) to their address.
Replies are Google's shapes, checked against the discovery document (discovery.py); errors Google's body.
Quota: 600 requests a minute per user.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Account, EmulatorConfig
from fieldhub.hub.emulator.core import CONTROL_PREFIX, RateRule
from fieldhub.hub.emulator.google import GoogleEmulator, google_error
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.log import get_logger
from fieldhub.providers.google_calendar.emulator import discovery

log = get_logger(__name__)
API = "/calendar/v3"
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
WATCH_LIFETIME = timedelta(days=7)
DELIVERY_ATTEMPTS = 4
# Google's own words for what this emulator refuses.
NOT_FOUND = "Not Found"
DUPLICATE = "The requested identifier already exists."
FULL_SYNC = "Sync token is no longer valid, a full sync is required."
INCOMPATIBLE = ("iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty", "timeMin", "timeMax")
EVENT_WRITABLE = (
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "transparency",
    "visibility",
    "reminders",
    "extendedProperties",
    "attendees",
    "colorId",
    "source",
    "recurrence",
)


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_when(value: dict[str, Any] | None) -> datetime | None:
    """An EventDateTime as an aware instant (an all-day date as UTC midnight)."""
    if not value:
        return None
    with contextlib.suppress(ValueError, TypeError):
        if value.get("dateTime"):
            when = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                from zoneinfo import ZoneInfo

                when = when.replace(tzinfo=ZoneInfo(value.get("timeZone") or "UTC"))
            return when.astimezone(UTC)
        if value.get("date"):
            return datetime.fromisoformat(str(value["date"])).replace(tzinfo=UTC)
    return None


def _parse_instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class GoogleCalendarEmulator(GoogleEmulator):
    key = "google_calendar"
    spec_label = "Google Calendar"
    users: ClassVar[list[Account]] = [
        Account("108234567890123456789", "Olivia Owner", "olivia@riverbend.example"),
        Account("108234567890123456790", "Sam Okafor", "sam@northside-electric.example"),
    ]
    persisted = ("calendars", "events", "channels", "counters")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(config)
        self.config = config
        self.webhook_transport = webhook_transport
        # calendar id -> {"owner": account id, "calendar": Calendar resource}
        self.calendars: dict[str, dict[str, Any]] = {}
        # calendar id -> event id -> {"seq": change number, "event": Event resource}
        self.events: dict[str, dict[str, dict[str, Any]]] = {}
        # channel id -> {"calendar", "address", "token", "resourceId", "expiration", "number"}
        self.channels: dict[str, dict[str, Any]] = {}
        # seq: the last change number; epoch: sync tokens of an older epoch answer 410
        self.counters: dict[str, int] = {"seq": 0, "epoch": 1}
        self.deliveries: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.rate_rules.append(RateRule("per_user", limit=600, window=60.0, applies=_user_bucket))
        routes: list[tuple[str, Any, list[str]]] = [
            ("/users/me/calendarList", self.calendar_list, ["GET"]),
            ("/users/me/calendarList/{calendar_id}", self.calendar_list_get, ["GET"]),
            ("/calendars", self.calendars_insert, ["POST"]),
            ("/calendars/{calendar_id}", self.calendars_get, ["GET"]),
            ("/calendars/{calendar_id}/events", self.events_list, ["GET"]),
            ("/calendars/{calendar_id}/events", self.events_insert, ["POST"]),
            ("/calendars/{calendar_id}/events/watch", self.events_watch, ["POST"]),
            ("/calendars/{calendar_id}/events/{event_id}/move", self.events_move, ["POST"]),
            ("/calendars/{calendar_id}/events/{event_id}", self.events_get, ["GET"]),
            ("/calendars/{calendar_id}/events/{event_id}", self.events_update, ["PUT", "PATCH"]),
            ("/calendars/{calendar_id}/events/{event_id}", self.events_delete, ["DELETE"]),
            ("/freeBusy", self.free_busy, ["POST"]),
            ("/channels/stop", self.channels_stop, ["POST"]),
        ]
        for path, handler, methods in routes:
            self.app.add_api_route(API + path, handler, methods=methods)
        control = f"{CONTROL_PREFIX}/calendar"
        self.app.add_api_route(f"{control}/expire_sync_tokens", self.control_expire_tokens, methods=["POST"])
        self.app.add_api_route(f"{control}/events", self.control_events, methods=["GET"])
        self.app.add_api_route(f"{control}/calendars/{{calendar_id}}/events", self.control_add, methods=["POST"])
        self.app.add_api_route(
            f"{control}/calendars/{{calendar_id}}/events/{{event_id}}", self.control_edit, methods=["PATCH", "DELETE"]
        )
        self.app.add_api_route(f"{control}/deliveries", self.control_deliveries, methods=["GET"])

    # --- state ----------------------------------------------------------------------------------------
    def _ensure_primary(self, account: Account) -> None:
        if account.email not in self.calendars:
            self.calendars[account.email] = {
                "owner": account.id,
                "primary": True,
                "calendar": {
                    "kind": "calendar#calendar",
                    "etag": self._etag(account.email),
                    "id": account.email,
                    "summary": account.email,
                    "timeZone": "America/Chicago",
                },
            }
            self.events.setdefault(account.email, {})

    def _calendar(self, account: Account, calendar_id: str) -> str | None:
        """The calendar's id if this account owns it (`primary` is its own), else None (Google says 404)."""
        self._ensure_primary(account)
        cid = account.email if calendar_id == "primary" else calendar_id
        entry = self.calendars.get(cid)
        return cid if entry is not None and entry["owner"] == account.id else None

    def _etag(self, seed: str) -> str:
        return '"' + str(int(hashlib.sha256(f"{seed}:{self.counters['seq']}".encode()).hexdigest()[:15], 16)) + '"'

    def _next_seq(self) -> int:
        self.counters["seq"] += 1
        return self.counters["seq"]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def _entry(self, cid: str) -> dict[str, Any]:
        stored = self.calendars[cid]
        cal = stored["calendar"]
        entry = {
            "kind": "calendar#calendarListEntry",
            "etag": cal["etag"],
            "id": cid,
            "summary": cal["summary"],
            "timeZone": cal["timeZone"],
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 30}] if stored.get("primary") else [],
        }
        if stored.get("primary"):
            entry["primary"] = True
        return entry

    def _owner_email(self, cid: str) -> str:
        owner = self.oauth.account(self.calendars[cid]["owner"])
        return owner.email if owner else cid

    # --- calendars ------------------------------------------------------------------------------------
    async def calendar_list(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        self._ensure_primary(account)
        items = [self._entry(cid) for cid, c in self.calendars.items() if c["owner"] == account.id]
        items.sort(key=lambda e: (not e.get("primary", False), e["summary"]))
        limit = _int(request.query_params.get("maxResults"), 100)
        return JSONResponse(
            {"kind": "calendar#calendarList", "etag": self._etag(account.id), "items": items[: max(limit, 1)]}
        )

    async def calendar_list_get(self, request: Request, calendar_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        return JSONResponse(self._entry(cid)) if cid else google_error(404, NOT_FOUND)

    async def calendars_insert(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        body = await _json(request)
        if body is None:
            return google_error(400, "Parse Error", reason="parseError")
        wrong = discovery.problems("Calendar", body)
        if wrong:
            return google_error(400, f"Invalid value: {wrong[0]}", reason="invalid")
        if not str(body.get("summary", "")).strip():
            return google_error(400, "Missing title.", reason="required")
        self._ensure_primary(account)
        cid = f"c_{uuid.UUID(int=self.random.getrandbits(128)).hex}@group.calendar.google.com"
        calendar = {
            "kind": "calendar#calendar",
            "etag": self._etag(cid),
            "id": cid,
            "summary": str(body["summary"]),
            "timeZone": str(body.get("timeZone") or self.calendars[account.email]["calendar"]["timeZone"]),
        }
        if body.get("description"):
            calendar["description"] = str(body["description"])
        self.calendars[cid] = {"owner": account.id, "calendar": calendar}
        self.events[cid] = {}
        return JSONResponse(calendar)

    async def calendars_get(self, request: Request, calendar_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        return JSONResponse(self.calendars[cid]["calendar"]) if cid else google_error(404, NOT_FOUND)

    # --- events ---------------------------------------------------------------------------------------
    def _problem(self, body: dict[str, Any], *, full: bool) -> JSONResponse | None:
        wrong = discovery.problems("Event", body)
        if wrong:
            return google_error(400, f"Invalid value: {wrong[0]}", reason="invalid")
        if full and ("start" not in body or "end" not in body):
            return google_error(400, "Missing time.", reason="required")
        for side in ("start", "end"):
            if side in body and _parse_when(body[side]) is None:
                return google_error(
                    400, "Invalid start time." if side == "start" else "Invalid end time.", reason="invalid"
                )
        return None

    def _store(
        self, cid: str, event_id: str, body: dict[str, Any], *, existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        now = _rfc3339(self._now())
        seq = self._next_seq()
        owner = self._owner_email(cid)
        if existing is None:
            event: dict[str, Any] = {
                "kind": "calendar#event",
                "id": event_id,
                "status": "confirmed",
                "htmlLink": f"https://www.google.com/calendar/event?eid={_b64(event_id + ' ' + cid)}",
                "created": now,
                "creator": {"email": owner, "self": True},
                "organizer": {"email": cid, "self": True} if cid == owner else {"email": cid, "self": True},
                "iCalUID": f"{event_id}@google.com",
                "sequence": 0,
                "reminders": {"useDefault": True},
                "eventType": "default",
            }
        else:
            event = dict(existing)
            if "start" in body or "end" in body:
                event["sequence"] = int(event.get("sequence", 0)) + 1
        for name in EVENT_WRITABLE:
            if name in body:
                event[name] = body[name]
        event["updated"] = now
        event["etag"] = self._etag(f"{cid}/{event_id}")
        self.events.setdefault(cid, {})[event_id] = {"seq": seq, "event": event}
        self._changed(cid)
        return event

    def new_event_id(self) -> str:
        return "".join(self.random.choice("abcdefghijklmnopqrstuv0123456789") for _ in range(26))

    async def events_insert(self, request: Request, calendar_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        if cid is None:
            return google_error(404, NOT_FOUND)
        body = await _json(request)
        if body is None:
            return google_error(400, "Parse Error", reason="parseError")
        if (bad := self._problem(body, full=True)) is not None:
            return bad
        event_id = str(body.get("id") or self.new_event_id())
        if not EVENT_ID.match(event_id):
            return google_error(400, "Invalid resource id value.", reason="invalid")
        if event_id in self.events.get(cid, {}):
            return google_error(409, DUPLICATE, reason="duplicate")
        return JSONResponse(self._store(cid, event_id, body, existing=None))

    async def events_get(self, request: Request, calendar_id: str, event_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        stored = self.events.get(cid or "", {}).get(event_id)
        if stored is None:
            return google_error(404, NOT_FOUND)
        return JSONResponse(stored["event"])

    async def events_update(self, request: Request, calendar_id: str, event_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        stored = self.events.get(cid or "", {}).get(event_id)
        if cid is None or stored is None:
            return google_error(404, NOT_FOUND)
        body = await _json(request)
        if body is None:
            return google_error(400, "Parse Error", reason="parseError")
        full = request.method == "PUT"
        if (bad := self._problem(body, full=full)) is not None:
            return bad
        base = stored["event"]
        if full:  # update replaces: what the body leaves out is cleared
            base = {k: v for k, v in base.items() if k not in EVENT_WRITABLE or k == "status"}
            body = {"status": "confirmed", **body} if stored["event"]["status"] == "cancelled" else body
        return JSONResponse(self._store(cid, event_id, body, existing=base))

    async def events_delete(self, request: Request, calendar_id: str, event_id: str) -> Response:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        stored = self.events.get(cid or "", {}).get(event_id)
        if cid is None or stored is None:
            return google_error(404, NOT_FOUND)
        if stored["event"]["status"] == "cancelled":
            return google_error(410, "Resource has been deleted", reason="deleted")
        self._store(cid, event_id, {"status": "cancelled"}, existing=stored["event"])
        return Response(status_code=204)

    async def events_move(self, request: Request, calendar_id: str, event_id: str) -> JSONResponse:
        """events.move: the event changes organizer calendar, keeping its id; the source lists it as cancelled."""
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        stored = self.events.get(cid or "", {}).get(event_id)
        if cid is None or stored is None or stored["event"]["status"] == "cancelled":
            return google_error(404, NOT_FOUND)
        destination = self._calendar(account, request.query_params.get("destination", ""))
        if destination is None:
            return google_error(404, NOT_FOUND)
        if destination == cid:
            return JSONResponse(stored["event"])
        if event_id in self.events.get(destination, {}):
            return google_error(409, DUPLICATE, reason="duplicate")
        moved = dict(stored["event"])
        self._store(cid, event_id, {"status": "cancelled"}, existing=stored["event"])
        moved["organizer"] = {"email": destination, "self": True}
        return JSONResponse(self._store(destination, event_id, {}, existing=moved))

    async def events_list(self, request: Request, calendar_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        if cid is None:
            return google_error(404, NOT_FOUND)
        q = request.query_params
        limit = min(max(_int(q.get("maxResults"), 250), 1), 2500)
        sync_token = q.get("syncToken")
        page_token = q.get("pageToken")
        since, high, offset = 0, self.counters["seq"], 0
        if page_token:
            parts = (_unb64(page_token) or "").split(":")
            if len(parts) != 4 or parts[0] not in ("i", "f") or not all(p.isdigit() for p in parts[1:]):
                return google_error(400, "Invalid page token value.", reason="invalid")
            incremental = parts[0] == "i"
            since, high, offset = int(parts[1]), int(parts[2]), int(parts[3])
        else:
            incremental = bool(sync_token)
            if sync_token:
                used = [name for name in INCOMPATIBLE if q.get(name)]
                if used:
                    return google_error(
                        400, f"The {used[0]} parameter is incompatible with syncToken.", reason="invalid"
                    )
                decoded = (_unb64(sync_token) or "").split(":")
                if len(decoded) != 3 or decoded[0] != cid or not decoded[1].isdigit() or not decoded[2].isdigit():
                    return google_error(400, "Invalid sync token value.", reason="invalid")
                if int(decoded[1]) != self.counters["epoch"]:
                    return google_error(410, FULL_SYNC, reason="fullSyncRequired")
                since = int(decoded[2])
        show_deleted = q.get("showDeleted") == "true" or incremental
        t_min, t_max = _parse_instant(q.get("timeMin")), _parse_instant(q.get("timeMax"))
        rows = sorted(self.events.get(cid, {}).items(), key=lambda kv: kv[1]["seq"])
        picked = []
        for _, stored in rows:
            event = stored["event"]
            if stored["seq"] > high:
                continue
            if incremental and stored["seq"] <= since:
                continue
            if event["status"] == "cancelled" and not show_deleted:
                continue
            if not incremental:
                start, end = _parse_when(event.get("start")), _parse_when(event.get("end"))
                if t_min and end and end <= t_min:
                    continue
                if t_max and start and start >= t_max:
                    continue
            picked.append(event)
        page = picked[offset : offset + limit]
        reply: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": self._etag(f"{cid}/list"),
            "summary": self.calendars[cid]["calendar"]["summary"],
            "updated": _rfc3339(self._now()),
            "timeZone": self.calendars[cid]["calendar"]["timeZone"],
            "accessRole": "owner",
            "defaultReminders": [],
            "items": page,
        }
        if offset + limit < len(picked):
            reply["nextPageToken"] = _b64(f"{'i' if incremental else 'f'}:{since}:{high}:{offset + limit}")
        else:
            reply["nextSyncToken"] = _b64(f"{cid}:{self.counters['epoch']}:{high}")
        return JSONResponse(reply)

    # --- free/busy ------------------------------------------------------------------------------------
    async def free_busy(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        body = await _json(request)
        if body is None:
            return google_error(400, "Parse Error", reason="parseError")
        wrong = discovery.problems("FreeBusyRequest", body)
        if wrong:
            return google_error(400, f"Invalid value: {wrong[0]}", reason="invalid")
        t_min, t_max = _parse_instant(body.get("timeMin")), _parse_instant(body.get("timeMax"))
        if t_min is None:
            return google_error(400, "Missing timeMin.", reason="required")
        if t_max is None:
            return google_error(400, "Missing timeMax.", reason="required")
        if t_max <= t_min:
            return google_error(400, "The specified time range is empty.", reason="timeRangeEmpty")
        calendars: dict[str, Any] = {}
        for item in body.get("items") or []:
            asked = str(item.get("id", ""))
            cid = self._calendar(account, asked)
            if cid is None:
                calendars[asked] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            busy = []
            for stored in self.events.get(cid, {}).values():
                event = stored["event"]
                if event["status"] == "cancelled" or event.get("transparency") == "transparent":
                    continue
                start, end = _parse_when(event.get("start")), _parse_when(event.get("end"))
                if start is None or end is None or end <= t_min or start >= t_max:
                    continue
                busy.append((max(start, t_min), min(end, t_max)))
            busy.sort()
            calendars[asked] = {"busy": [{"start": _rfc3339(s), "end": _rfc3339(e)} for s, e in busy]}
        return JSONResponse(
            {
                "kind": "calendar#freeBusy",
                "timeMin": _rfc3339(t_min),
                "timeMax": _rfc3339(t_max),
                "calendars": calendars,
            }
        )

    # --- push -----------------------------------------------------------------------------------------
    async def events_watch(self, request: Request, calendar_id: str) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        cid = self._calendar(account, calendar_id)
        if cid is None:
            return google_error(404, NOT_FOUND)
        body = await _json(request)
        if body is None:
            return google_error(400, "Parse Error", reason="parseError")
        wrong = discovery.problems("Channel", body)
        if wrong:
            return google_error(400, f"Invalid value: {wrong[0]}", reason="invalid")
        channel_id, address = str(body.get("id", "")), str(body.get("address", ""))
        if not channel_id or len(channel_id) > 64:
            return google_error(400, "Invalid channel id.", reason="invalid")
        if body.get("type") not in ("web_hook", "webhook"):
            return google_error(400, "Invalid value for: type", reason="invalid")
        if not address.startswith(("https://", "http://")):
            return google_error(400, "WebHook callback must be HTTPS: " + address, reason="push.webhookUrlNotHttps")
        if channel_id in self.channels:
            return google_error(400, f"Channel id {channel_id} not unique", reason="channelIdNotUnique")
        longest = int((self._now() + WATCH_LIFETIME).timestamp() * 1000)
        expiration = min(int(body.get("expiration") or longest), longest)
        resource_id = _b64(f"{cid}/events")[:27]
        self.channels[channel_id] = {
            "calendar": cid,
            "address": address,
            "token": str(body.get("token", "")),
            "resourceId": resource_id,
            "expiration": expiration,
            "number": 0,
        }
        self._spawn(self._notify(channel_id, "sync"))
        reply = {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": resource_id,
            "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{cid}/events?alt=json",
            "expiration": str(expiration),
        }
        if body.get("token"):
            reply["token"] = str(body["token"])
        return JSONResponse(reply)

    async def channels_stop(self, request: Request) -> Response:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.unauthenticated()
        body = await _json(request) or {}
        channel = self.channels.get(str(body.get("id", "")))
        if channel is None or channel["resourceId"] != body.get("resourceId"):
            return google_error(404, f"Channel '{body.get('id', '')}' not found for project '0'")
        del self.channels[str(body["id"])]
        return Response(status_code=204)

    def _changed(self, cid: str) -> None:
        for channel_id, channel in list(self.channels.items()):
            if channel["calendar"] == cid:
                self._spawn(self._notify(channel_id, "exists"))

    def _spawn(self, coro: Any) -> None:
        if not self.config.deliver_webhooks:
            coro.close()
            return
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, channel_id: str, state: str) -> None:
        """Google's push: a POST with an empty body, the channel in headers; retried with back-off on failure."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        if channel["expiration"] < self._now().timestamp() * 1000:
            self.channels.pop(channel_id, None)  # an expired channel sends nothing more
            return
        number = 1 if state == "sync" else channel["number"] + 1
        channel["number"] = number
        headers = {
            "X-Goog-Channel-ID": channel_id,
            "X-Goog-Channel-Expiration": datetime.fromtimestamp(channel["expiration"] / 1000, UTC).strftime(
                "%a, %d %b %Y %H:%M:%S GMT"
            ),
            "X-Goog-Resource-ID": channel["resourceId"],
            "X-Goog-Resource-URI": f"https://www.googleapis.com/calendar/v3/calendars/{channel['calendar']}/events?alt=json",
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
            "Content-Length": "0",
        }
        if channel["token"]:
            headers["X-Goog-Channel-Token"] = channel["token"]
        record = {"channel": channel_id, "state": state, "number": number, "status": 0, "attempts": 0}
        self.deliveries.append(record)
        del self.deliveries[:-500]
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10.0) as client:
            for attempt in range(DELIVERY_ATTEMPTS):
                record["attempts"] = attempt + 1
                try:
                    reply = await client.post(channel["address"], headers=headers, content=b"")
                    record["status"] = reply.status_code
                    if reply.status_code < 300:
                        return
                except httpx.HTTPError as exc:
                    record["status"] = -1
                    log.info("emulator.google_calendar.push_failed", error=type(exc).__name__)
                await asyncio.sleep(0.2 * 2**attempt)

    # --- control surface (the user in Google's own app) -----------------------------------------------
    async def control_expire_tokens(self) -> dict[str, int]:
        self.counters["epoch"] += 1
        return {"epoch": self.counters["epoch"]}

    async def control_events(self, calendar: str = "") -> list[dict[str, Any]]:
        return [
            {"calendar": cid, **stored["event"]}
            for cid, events in self.events.items()
            if calendar in ("", cid)
            for stored in events.values()
        ]

    async def control_add(self, request: Request, calendar_id: str) -> JSONResponse:
        """The user adds an event in Google Calendar's own app (a personal appointment)."""
        if calendar_id not in self.calendars:
            for account in self.oauth.accounts:
                if account.email == calendar_id:
                    self._ensure_primary(account)
        if calendar_id not in self.calendars:
            return google_error(404, NOT_FOUND)
        body = await _json(request) or {}
        if (bad := self._problem(body, full=True)) is not None:
            return bad
        return JSONResponse(self._store(calendar_id, self.new_event_id(), body, existing=None))

    async def control_edit(self, request: Request, calendar_id: str, event_id: str) -> Response:
        """The user moves (PATCH) or deletes an event in Google Calendar's own app."""
        stored = self.events.get(calendar_id, {}).get(event_id)
        if stored is None:
            return google_error(404, NOT_FOUND)
        if request.method == "DELETE":
            self._store(calendar_id, event_id, {"status": "cancelled"}, existing=stored["event"])
            return Response(status_code=204)
        body = await _json(request) or {}
        if (bad := self._problem(body, full=False)) is not None:
            return bad
        return JSONResponse(self._store(calendar_id, event_id, body, existing=stored["event"]))

    async def control_deliveries(self) -> list[dict[str, Any]]:
        return list(self.deliveries)

    # --- framework hooks ------------------------------------------------------------------------------
    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """Replies of the Calendar API (/calendar/v3) against the discovery document; errors against Google's
        error body; OAuth and userinfo are not the Calendar API's."""
        if not path.startswith(API + "/"):
            return super().spec_problems(method, path, status, body)
        if discovery.load_document() is None:
            raise SpecMissing(str(discovery.SPEC_RELATIVE))
        if status >= 400:
            return super().spec_problems(method, path, status, body)
        found = discovery.method_for(method, path)
        if found is None:
            return [f"no method of the discovery document answers {method} {path}"]
        ref = found.get("response", {}).get("$ref")
        if ref is None:
            return [f"{found['id']} has no response body, but one was sent"]
        import json

        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return discovery.problems(ref, data)

    def state(self) -> dict[str, Any]:
        return {
            "calendars": {cid: c["calendar"]["summary"] for cid, c in self.calendars.items()},
            "events": {cid: len(e) for cid, e in self.events.items()},
            "channels": len(self.channels),
            "deliveries": len(self.deliveries),
        }

    def reset(self) -> None:
        super().reset()
        self.calendars.clear()
        self.events.clear()
        self.channels.clear()
        self.counters.update(seq=0, epoch=1)
        self.deliveries.clear()


def _user_bucket(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if not request.url.path.startswith(API) or not auth:
        return None
    return hashlib.sha256(auth.encode()).hexdigest()[:16]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


async def _json(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        import json

        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def create_emulator(config: EmulatorConfig) -> GoogleCalendarEmulator:
    return GoogleCalendarEmulator(config)
