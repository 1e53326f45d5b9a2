"""Microsoft Graph's calendar, as the Outlook emulator answers it: /me/calendars (list, create), events (create
with `transactionId`: a retried create answers the event the first one made, never a second), get, update,
delete, and /calendars/{id}/calendarView/delta with @odata.nextLink pages and an @odata.deltaLink whose
$deltatoken reads the changes since (deleted events as `@removed`); a forgotten delta token answers 410 Gone
with error code syncStateNotFound and a Location to start over (forced from the control surface)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator.core import CONTROL_PREFIX

GRAPH = "https://graph.microsoft.com/v1.0"
PAGE = 50


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _when(value: dict[str, Any] | None) -> datetime | None:
    if not value or not value.get("dateTime"):
        return None
    try:
        when = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00")[:26])
    except ValueError:
        return None
    if when.tzinfo is None:
        from zoneinfo import ZoneInfo

        zone = value.get("timeZone") or "UTC"
        try:
            when = when.replace(tzinfo=ZoneInfo(zone))
        except Exception:  # noqa: BLE001 - a Windows zone name: read as UTC here
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


WRITABLE = (
    "subject",
    "body",
    "start",
    "end",
    "location",
    "showAs",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "sensitivity",
    "categories",
    "attendees",
    "isAllDay",
)


def install(emu: Any) -> None:
    emu.mail_calendars = {}  # calendar id -> {"owner": account id, "calendar": {...}}
    emu.mail_events = {}  # event id -> {"calendar", "seq", "event", "deleted"}
    emu.graph_counters = {"seq": 0, "epoch": 1}
    emu.persisted = (*emu.persisted, "mail_calendars", "mail_events", "graph_counters")

    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    def now() -> str:
        return datetime.fromtimestamp(emu.clock.now(), UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    def ensure_default(account: Any) -> None:
        if not any(c["owner"] == account.id for c in emu.mail_calendars.values()):
            cid = "AAMk" + _b64(f"{account.id}/Calendar")
            emu.mail_calendars[cid] = {"owner": account.id, "calendar": calendar_body(cid, "Calendar", account, True)}

    def calendar_body(cid: str, name: str, account: Any, default: bool) -> dict[str, Any]:
        return {
            "id": cid,
            "name": name,
            "color": "auto",
            "changeKey": _b64(cid)[:16],
            "canShare": True,
            "canViewPrivateItems": True,
            "canEdit": True,
            "isDefaultCalendar": default,
            "owner": {"name": account.name, "address": account.email},
        }

    def who(request: Request) -> Any:
        return emu.oauth.authenticate(request)

    def mine(account: Any, cid: str) -> str | None:
        ensure_default(account)
        if cid == "default":
            return next(
                k
                for k, c in emu.mail_calendars.items()
                if c["owner"] == account.id and c["calendar"]["isDefaultCalendar"]
            )
        found = emu.mail_calendars.get(cid)
        return cid if found and found["owner"] == account.id else None

    def store(cid: str, event_id: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        emu.graph_counters["seq"] += 1
        stamp = now()
        if existing is None:
            event = {
                "@odata.etag": "",
                "id": event_id,
                "createdDateTime": stamp,
                "iCalUId": "040000008200E00074C5B7101A82E008" + uuid.uuid5(uuid.NAMESPACE_URL, event_id).hex.upper(),
                "isCancelled": False,
                "type": "singleInstance",
                "showAs": "busy",
                "sensitivity": "normal",
                "isReminderOn": True,
                "reminderMinutesBeforeStart": 15,
                "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item",
            }
        else:
            event = dict(existing)
        for name in WRITABLE:
            if name in body:
                event[name] = body[name]
        if body.get("transactionId") and existing is None:
            event["transactionId"] = body["transactionId"]
        event["lastModifiedDateTime"] = stamp
        event["changeKey"] = _b64(f"{event_id}:{emu.graph_counters['seq']}")[:24]
        event["@odata.etag"] = f'W/"{event["changeKey"]}"'
        emu.mail_events[event_id] = {
            "calendar": cid,
            "seq": emu.graph_counters["seq"],
            "event": event,
            "deleted": False,
        }
        return event

    async def body_of(request: Request) -> dict[str, Any] | None:
        try:
            data = await request.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def list_calendars(request: Request) -> JSONResponse:
        account = who(request)
        if account is None:
            return emu.error_response(401, "Access token is empty or invalid.")
        ensure_default(account)
        items = [c["calendar"] for c in emu.mail_calendars.values() if c["owner"] == account.id]
        return JSONResponse({"@odata.context": f"{GRAPH}/$metadata#users('{account.id}')/calendars", "value": items})

    async def create_calendar(request: Request) -> JSONResponse:
        account = who(request)
        if account is None:
            return emu.error_response(401, "Access token is empty or invalid.")
        data = await body_of(request)
        if not data or not str(data.get("name", "")).strip():
            return error(400, "ErrorInvalidRequest", "The calendar name is required.")
        ensure_default(account)
        if any(c["owner"] == account.id and c["calendar"]["name"] == data["name"] for c in emu.mail_calendars.values()):
            return error(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        cid = "AAMk" + _b64(f"{account.id}/{uuid.UUID(int=emu.random.getrandbits(128)).hex}")
        emu.mail_calendars[cid] = {
            "owner": account.id,
            "calendar": calendar_body(cid, str(data["name"]), account, False),
        }
        return JSONResponse(emu.mail_calendars[cid]["calendar"], status_code=201)

    async def create_event(request: Request, calendar_id: str) -> JSONResponse:
        account = who(request)
        if account is None:
            return emu.error_response(401, "Access token is empty or invalid.")
        cid = mine(account, calendar_id)
        if cid is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        data = await body_of(request)
        if data is None:
            return error(400, "BadRequest", "Unable to read JSON request payload.")
        if _when(data.get("start")) is None or _when(data.get("end")) is None:
            return error(
                400, "ErrorInvalidRequest", "Your request can't be completed. An event needs a start and an end."
            )
        tx = data.get("transactionId")
        if tx:
            for stored in emu.mail_events.values():
                if (
                    stored["event"].get("transactionId") == tx
                    and emu.mail_calendars[stored["calendar"]]["owner"] == account.id
                ):
                    return JSONResponse(stored["event"], status_code=201)  # a retried create: the first one's event
        event_id = "AAMkAG" + _b64(uuid.UUID(int=emu.random.getrandbits(128)).hex)
        return JSONResponse(store(cid, event_id, data, None), status_code=201)

    def find(account: Any, event_id: str) -> dict[str, Any] | None:
        stored = emu.mail_events.get(event_id)
        if stored is None or stored["deleted"] or emu.mail_calendars[stored["calendar"]]["owner"] != account.id:
            return None
        return stored

    async def event_item(request: Request, event_id: str) -> Response:
        account = who(request)
        if account is None:
            return emu.error_response(401, "Access token is empty or invalid.")
        stored = find(account, event_id)
        if stored is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if request.method == "GET":
            return JSONResponse(stored["event"])
        if request.method == "DELETE":
            emu.graph_counters["seq"] += 1
            stored["deleted"], stored["seq"] = True, emu.graph_counters["seq"]
            return Response(status_code=204)
        data = await body_of(request)
        if data is None:
            return error(400, "BadRequest", "Unable to read JSON request payload.")
        return JSONResponse(store(stored["calendar"], event_id, data, stored["event"]))

    async def delta(request: Request, calendar_id: str) -> JSONResponse:
        account = who(request)
        if account is None:
            return emu.error_response(401, "Access token is empty or invalid.")
        cid = mine(account, calendar_id)
        if cid is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        q = request.query_params
        base = f"{GRAPH}/me/calendars/{calendar_id}/calendarView/delta"
        since, high, offset = 0, emu.graph_counters["seq"], 0
        window = (q.get("startDateTime", ""), q.get("endDateTime", ""))
        if q.get("$deltatoken"):
            parts = _unb64(q["$deltatoken"]).split("|")
            if len(parts) != 4 or parts[0] != str(emu.graph_counters["epoch"]):
                location = f"{base}?$deltatoken="
                return error(
                    410, "syncStateNotFound", "The sync state generation is not found.", {"Location": location}
                )
            since, window = int(parts[1]), (parts[2], parts[3])
        elif q.get("$skiptoken"):
            parts = _unb64(q["$skiptoken"]).split("|")
            if len(parts) != 5:
                return error(400, "ErrorInvalidUrlQuery", "The skip token is not valid.")
            since, high, offset, window = int(parts[0]), int(parts[1]), int(parts[2]), (parts[3], parts[4])
        elif not (window[0] and window[1]):
            return error(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        t_min, t_max = _when({"dateTime": window[0]}), _when({"dateTime": window[1]})
        rows = sorted(
            (s for s in emu.mail_events.values() if s["calendar"] == cid and since < s["seq"] <= high),
            key=lambda s: s["seq"],
        )
        picked: list[dict[str, Any]] = []
        for stored in rows:
            event = stored["event"]
            start, end = _when(event.get("start")), _when(event.get("end"))
            inside = (
                start is not None
                and end is not None
                and (t_max is None or start < t_max)
                and (t_min is None or end > t_min)
            )
            if stored["deleted"] or not inside:
                if since:  # a first read has no removals to tell
                    picked.append(
                        {"@odata.type": "#microsoft.graph.event", "id": event["id"], "@removed": {"reason": "deleted"}}
                    )
                continue
            picked.append(event)
        page = picked[offset : offset + PAGE]
        reply: dict[str, Any] = {"@odata.context": f"{GRAPH}/$metadata#Collection(event)", "value": page}
        if offset + PAGE < len(picked):
            token = _b64(f"{since}|{high}|{offset + PAGE}|{window[0]}|{window[1]}")
            reply["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        else:
            token = _b64(f"{emu.graph_counters['epoch']}|{high}|{window[0]}|{window[1]}")
            reply["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return JSONResponse(reply)

    async def control_reset(request: Request) -> dict[str, int]:
        emu.graph_counters["epoch"] += 1
        return {"epoch": emu.graph_counters["epoch"]}

    async def control_events(request: Request) -> list[dict[str, Any]]:
        return [{"calendar": s["calendar"], "deleted": s["deleted"], **s["event"]} for s in emu.mail_events.values()]

    async def control_add(request: Request, calendar_id: str) -> JSONResponse:
        data = await body_of(request) or {}
        if calendar_id not in emu.mail_calendars:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        event_id = "AAMkAG" + _b64(uuid.UUID(int=emu.random.getrandbits(128)).hex)
        return JSONResponse(store(calendar_id, event_id, data, None), status_code=201)

    async def control_edit(request: Request, event_id: str) -> Response:
        stored = emu.mail_events.get(event_id)
        if stored is None or stored["deleted"]:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if request.method == "DELETE":
            emu.graph_counters["seq"] += 1
            stored["deleted"], stored["seq"] = True, emu.graph_counters["seq"]
            return Response(status_code=204)
        return JSONResponse(store(stored["calendar"], event_id, await body_of(request) or {}, stored["event"]))

    app = emu.app
    app.add_api_route("/v1.0/me/calendars", list_calendars, methods=["GET"])
    app.add_api_route("/v1.0/me/calendars", create_calendar, methods=["POST"])
    app.add_api_route("/v1.0/me/calendars/{calendar_id}/events", create_event, methods=["POST"])
    app.add_api_route("/v1.0/me/calendars/{calendar_id}/calendarView/delta", delta, methods=["GET"])
    app.add_api_route("/v1.0/me/events/{event_id}", event_item, methods=["GET", "PATCH", "DELETE"])
    app.add_api_route(f"{CONTROL_PREFIX}/calendar/reset_delta", control_reset, methods=["POST"])
    app.add_api_route(f"{CONTROL_PREFIX}/calendar/events", control_events, methods=["GET"])
    app.add_api_route(f"{CONTROL_PREFIX}/calendar/calendars/{{calendar_id}}/events", control_add, methods=["POST"])
    app.add_api_route(f"{CONTROL_PREFIX}/calendar/events/{{event_id}}", control_edit, methods=["PATCH", "DELETE"])
