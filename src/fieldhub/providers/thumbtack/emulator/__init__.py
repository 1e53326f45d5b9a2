"""Thumbtack's stand-in: OAuth (audience urn:partner-api), businesses, webhooks, negotiations (leads) and messages.

Paths are Thumbtack's own: /oauth2/auth and /oauth2/token (auth.thumbtack.com), /api/v4/... (api.thumbtack.com).
Webhooks are delivered as Thumbtack does: to each registered webhookURL, the event envelope
`{"event": {eventType, triggeredAt, webhookID, description}, "data": {...}}` with the HTTP Basic credentials given
at registration, retried with backoff until a 2xx. Controls under /_emulator post a lead (optionally its message
first and every delivery twice), a customer message, list and flush deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer
from fieldhub.hub.emulator.core import CONTROL_PREFIX, INT, STR, error_shape

BUSINESSES = [
    Account("286845156044809661", "Riverbend Plumbing & Heating", "office@riverbend.example"),
    Account("286845156044809662", "Northside Electric Co", "sam@northside.example"),
]
EVENT_TYPES = ("NegotiationCreatedV4", "MessageCreatedV4", "ReviewCreatedV4", "IncentiveUsedV4")
# Emulated seconds after each failed delivery (Thumbtack publishes no retry policy: a day's backoff).
RETRY_SCHEDULE = (10, 60, 300, 1800, 3600, 6 * 3600, 12 * 3600)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ThumbtackEmulator(Emulator):
    key = "thumbtack"
    error_schema = error_shape(
        {"errors": {"type": "array", "minItems": 1, "items": error_shape({"message": STR, "code": INT})}}
    )
    persisted = ("negotiations", "messages", "webhooks", "deliveries")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.webhook_transport = webhook_transport
        self.negotiations: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        rules = OAuthRules.for_config(
            config,
            access_lifetime=3600,
            token_extra=lambda account: {"token_type": "bearer"},
        )
        self.oauth = OAuthServer(
            self,
            rules,
            list(BUSINESSES),
            title="Thumbtack",
            brand_color="#009FD9",
            authorize_path="/oauth2/auth",
            token_path="/oauth2/token",
            revoke_path="/oauth2/revoke",
        )
        api = "/api/v4"
        self.app.add_api_route(f"{api}/businesses", self.businesses, methods=["GET"])
        self.app.add_api_route(f"{api}/businesses/{{business_id}}/webhooks", self.create_webhook, methods=["POST"])
        self.app.add_api_route(f"{api}/businesses/{{business_id}}/webhooks", self.list_webhooks, methods=["GET"])
        self.app.add_api_route(
            f"{api}/businesses/{{business_id}}/webhooks/{{webhook_id}}", self.delete_webhook, methods=["DELETE"]
        )
        self.app.add_api_route(f"{api}/negotiations/{{negotiation_id}}", self.negotiation, methods=["GET"])
        self.app.add_api_route(f"{api}/negotiations/{{negotiation_id}}/messages", self.list_messages, methods=["GET"])
        self.app.add_api_route(f"{api}/negotiations/{{negotiation_id}}/messages", self.send_message, methods=["POST"])
        self.app.add_api_route(f"{CONTROL_PREFIX}/leads", self.control_lead, methods=["POST"])
        self.app.add_api_route(
            f"{CONTROL_PREFIX}/negotiations/{{negotiation_id}}/messages", self.control_message, methods=["POST"]
        )
        self.app.add_api_route(f"{CONTROL_PREFIX}/deliveries", self.control_deliveries, methods=["GET"])
        self.app.add_api_route(f"{CONTROL_PREFIX}/deliveries/flush", self.control_flush, methods=["POST"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"errors": [{"message": message, "code": status}]}, status_code=status)

    def state(self) -> dict[str, Any]:
        return {
            "negotiations": len(self.negotiations),
            "messages": {k: list(v) for k, v in self.messages.items()},
            "webhooks": [{k: v for k, v in w.items() if k != "auth"} for w in self.webhooks.values()],
            "deliveries": self.summary(),
        }

    def reset(self) -> None:
        super().reset()
        self.negotiations.clear()
        self.messages.clear()
        self.webhooks.clear()
        self.deliveries.clear()

    # ------------------------------------------------------------------ the API

    def _business(self, request: Request, business_id: str) -> tuple[Account | None, JSONResponse | None]:
        account = self.oauth.authenticate(request)
        if account is None:
            return None, self.error_response(401, "unauthorized")
        if account.id != business_id:
            return None, self.error_response(403, "the token does not grant access to this business")
        return account, None

    async def businesses(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return self.error_response(401, "unauthorized")
        entry = {"businessID": account.id, "name": account.name, "imageURL": ""}
        return JSONResponse({"data": [entry], "pagination": {"limit": 20}})

    async def create_webhook(self, request: Request, business_id: str) -> JSONResponse:
        _, refused = self._business(request, business_id)
        if refused:
            return refused
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error_response(400, "the body is not JSON")
        url, types, auth = body.get("webhookURL"), body.get("eventTypes"), body.get("auth")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return self.error_response(400, "webhookURL must be an absolute URL")
        if not isinstance(types, list) or not types or any(t not in EVENT_TYPES for t in types):
            return self.error_response(400, f"eventTypes must list some of {', '.join(EVENT_TYPES)}")
        if auth is not None and not (
            isinstance(auth, dict) and isinstance(auth.get("username"), str) and isinstance(auth.get("password"), str)
        ):
            return self.error_response(400, "auth must have a username and a password")
        webhook_id = str(self.random.randrange(10**17, 10**18))
        self.webhooks[webhook_id] = {
            "webhookID": webhook_id,
            "businessID": business_id,
            "webhookURL": url,
            "eventTypes": types,
            "enabled": bool(body.get("enabled", True)),
            "auth": auth,
        }
        return JSONResponse(self._public(self.webhooks[webhook_id]), status_code=201)

    @staticmethod
    def _public(hook: dict[str, Any]) -> dict[str, Any]:
        return {k: hook[k] for k in ("webhookID", "webhookURL", "eventTypes", "enabled")}

    async def list_webhooks(self, request: Request, business_id: str) -> JSONResponse:
        _, refused = self._business(request, business_id)
        if refused:
            return refused
        hooks = [self._public(h) for h in self.webhooks.values() if h["businessID"] == business_id]
        return JSONResponse({"data": hooks, "pagination": {"limit": 20}})

    async def delete_webhook(self, request: Request, business_id: str, webhook_id: str) -> Response:
        _, refused = self._business(request, business_id)
        if refused:
            return refused
        hook = self.webhooks.get(webhook_id)
        if hook is None or hook["businessID"] != business_id:
            return self.error_response(404, "webhook not found")
        del self.webhooks[webhook_id]
        return Response(status_code=204)

    def _negotiation_for(
        self, request: Request, negotiation_id: str
    ) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        account = self.oauth.authenticate(request)
        if account is None:
            return None, self.error_response(401, "unauthorized")
        found = self.negotiations.get(negotiation_id)
        if found is None or found["business"]["businessID"] != account.id:
            return None, self.error_response(404, "negotiation not found")
        return found, None

    async def negotiation(self, request: Request, negotiation_id: str) -> JSONResponse:
        found, refused = self._negotiation_for(request, negotiation_id)
        return refused or JSONResponse(found)

    async def list_messages(self, request: Request, negotiation_id: str) -> JSONResponse:
        _, refused = self._negotiation_for(request, negotiation_id)
        if refused:
            return refused
        return JSONResponse({"data": self.messages.get(negotiation_id, []), "pagination": {"limit": 20}})

    async def send_message(self, request: Request, negotiation_id: str) -> JSONResponse:
        found, refused = self._negotiation_for(request, negotiation_id)
        if refused:
            return refused
        try:
            text = json.loads(await request.body()).get("text")
        except (ValueError, AttributeError):
            text = None
        if not isinstance(text, str) or not text.strip():
            return self.error_response(400, "text is required")
        assert found is not None
        message = self._message(found, "Business", text)
        return JSONResponse(message, status_code=201)

    # ------------------------------------------------------------------ making leads and messages

    def _message(self, negotiation: dict[str, Any], sender: str, text: str) -> dict[str, Any]:
        customer = negotiation["customer"]
        message = {
            "messageID": str(self.random.randrange(10**17, 10**18)),
            "negotiationID": negotiation["negotiationID"],
            "customer": {
                "customerID": customer["customerID"],
                "displayName": f"{customer['firstName']} {customer['lastName'][:1]}.".strip(),
            },
            "from": sender,
            "text": text,
            "attachments": [],
            "sentAt": _iso(self.clock.now()),
        }
        self.messages.setdefault(negotiation["negotiationID"], []).append(message)
        return message

    def _event(self, kind: str, data: dict[str, Any], business_id: str) -> dict[str, Any]:
        return {"eventType": kind, "data": data, "businessID": business_id}

    async def control_lead(self, request: Request) -> JSONResponse:
        """Post a lead as a customer would: the negotiation and the customer's first message, each delivered to
        the business's webhooks. `order: "message_first"` delivers the message before its negotiation, and
        `duplicate: true` delivers each twice (Thumbtack's documented out-of-order and repeated deliveries)."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return self.error_response(400, "the body is not JSON")
        business_id = str(body.get("businessID") or BUSINESSES[0].id)
        business = next((b for b in BUSINESSES if b.id == business_id), None)
        if business is None:
            return self.error_response(404, "business not found")
        person = body.get("customer") or {}
        negotiation_id = str(self.random.randrange(10**17, 10**18))
        negotiation: dict[str, Any] = {
            "negotiationID": negotiation_id,
            "status": "Open",
            "chargeState": "Charged",
            "createdAt": _iso(self.clock.now()),
            "leadPrice": str(body.get("leadPrice", "23.45")),
            "business": {"businessID": business.id, "name": business.name},
            "customer": {
                "customerID": str(self.random.randrange(10**17, 10**18)),
                "firstName": person.get("firstName", "Jordan"),
                "lastName": person.get("lastName", "Alvarez"),
                "phone": person.get("phone", "+1 (512) 555-0147"),
            },
            "request": {
                "requestID": str(self.random.randrange(10**17, 10**18)),
                "category": body.get("category", "Water Heater Installation"),
                "description": body.get("description", "Our 40 gallon gas water heater is leaking from the bottom."),
                "location": body.get("location", {"zipCode": "78704", "city": "Austin", "state": "TX"}),
                "details": body.get(
                    "details",
                    [
                        {"question": "Fuel type", "answer": "Natural gas"},
                        {"question": "Tank size", "answer": "40 gallons"},
                        {"question": "When do you need this done?", "answer": "As soon as possible"},
                    ],
                ),
            },
        }
        if person.get("email"):
            negotiation["customer"]["email"] = person["email"]
        self.negotiations[negotiation_id] = negotiation
        message = self._message(negotiation, "Customer", body.get("message", "Hi, can you come out this week?"))
        events = [
            self._event("NegotiationCreatedV4", negotiation, business.id),
            self._event("MessageCreatedV4", {**message, "business": {"businessID": business.id}}, business.id),
        ]
        if body.get("order") == "message_first":
            events.reverse()
        if body.get("duplicate"):
            events = [e for e in events for _ in range(2)]
        for event in events:
            self.enqueue(**event)
        self.kick()
        return JSONResponse({"negotiationID": negotiation_id, "messageID": message["messageID"]})

    async def control_message(self, request: Request, negotiation_id: str) -> JSONResponse:
        negotiation = self.negotiations.get(negotiation_id)
        if negotiation is None:
            return self.error_response(404, "negotiation not found")
        body = json.loads(await request.body() or b"{}")
        message = self._message(negotiation, "Customer", str(body.get("text", "Are you still available?")))
        business_id = negotiation["business"]["businessID"]
        self.enqueue("MessageCreatedV4", {**message, "business": {"businessID": business_id}}, business_id)
        self.kick()
        return JSONResponse(message)

    # ------------------------------------------------------------------ webhook delivery

    def enqueue(self, eventType: str, data: dict[str, Any], businessID: str) -> int:  # noqa: N803 - Thumbtack's
        made = 0
        for hook in self.webhooks.values():
            if hook["businessID"] != businessID or not hook["enabled"] or eventType not in hook["eventTypes"]:
                continue
            envelope = {
                "event": {
                    "eventType": eventType,
                    "triggeredAt": _iso(self.clock.now()),
                    "webhookID": hook["webhookID"],
                    "description": "",
                },
                "data": data,
            }
            self.deliveries.append(
                {
                    "id": len(self.deliveries) + 1,
                    "webhookID": hook["webhookID"],
                    "eventType": eventType,
                    "body": envelope,
                    "status": "pending",
                    "next_at": self.clock.now(),
                    "attempts": [],
                }
            )
            made += 1
        return made

    def kick(self) -> None:
        if not self.config.deliver_webhooks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def flush(self, *, force: bool = False) -> int:
        """Send every due delivery in order (every pending one with force). Returns how many were tried."""
        async with self._lock:
            now = self.clock.now()
            due = [d for d in self.deliveries if d["status"] == "pending" and (force or d["next_at"] <= now)]
            async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10.0) as client:
                for delivery in due:
                    await self._deliver(client, delivery)
            return len(due)

    async def _deliver(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        hook = self.webhooks.get(delivery["webhookID"])
        if hook is None:
            delivery["status"] = "failed"
            return
        headers = {"Content-Type": "application/json", "User-Agent": "Thumbtack-Webhooks/1.0"}
        if hook.get("auth"):
            pair = f"{hook['auth']['username']}:{hook['auth']['password']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        attempt: dict[str, Any] = {"at": self.clock.now(), "status": 0, "error": ""}
        try:
            reply = await client.post(hook["webhookURL"], content=json.dumps(delivery["body"]), headers=headers)
            attempt["status"] = reply.status_code
        except (httpx.HTTPError, OSError) as exc:
            attempt["error"] = type(exc).__name__
        delivery["attempts"].append(attempt)
        if 200 <= attempt["status"] < 300:
            delivery["status"] = "delivered"
        elif len(delivery["attempts"]) > len(RETRY_SCHEDULE):
            delivery["status"] = "failed"
        else:
            wait = RETRY_SCHEDULE[len(delivery["attempts"]) - 1]
            delivery["next_at"] = self.clock.now() + wait
            asyncio.get_running_loop().call_later(wait / self.clock.scale + 0.01, self.kick)

    def summary(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        for delivery in self.deliveries:
            counts[delivery["status"]] += 1
        return counts

    async def control_deliveries(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in d.items() if k != "body"} | {"event": d["body"]["event"]} for d in self.deliveries]

    async def control_flush(self) -> dict[str, int]:
        await self.flush(force=True)
        return self.summary()


def create_emulator(config: EmulatorConfig) -> ThumbtackEmulator:
    return ThumbtackEmulator(config)
