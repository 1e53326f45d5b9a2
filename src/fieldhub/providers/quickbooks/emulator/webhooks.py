"""Webhook notifications as Intuit sends them: classic or CloudEvents bodies, `intuit-signature`, retries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from fieldhub.hub.emulator import Clock
from fieldhub.providers.quickbooks.emulator.errors import PACIFIC
from fieldhub.providers.quickbooks.emulator.store import Change, Company

# Intuit retries unacknowledged notifications at 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h
# (anchors §3.11).
BACKOFF = [10, 20, 30, 300, 1200, 7200, 14400, 21600]
CLOUD_VERBS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided", "Merge": "merged"}
Format = Literal["classic", "cloudevents"]


def sign(body: bytes, verifier_token: str) -> str:
    """base64(HMAC-SHA256(key = verifier token, message = the raw body))."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Event:
    realm_id: str
    entity: str
    id: str
    operation: str
    at: float


@dataclass
class Delivery:
    id: int
    format: str
    events: list[Event]
    body: str
    status: str = "pending"  # pending | delivered | failed (will retry) | queued (delivery switched off)
    attempts: int = 0
    next_attempt: float = 0.0
    responses: list[str] = field(default_factory=list)


class Webhooks:
    """Queues every change, bundles queued events into one notification, delivers with retries."""

    def __init__(
        self,
        *,
        url: str,
        verifier_token: str,
        clock: Clock,
        deliver: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.verifier_token = verifier_token
        self.clock = clock
        self.deliver = deliver
        self.transport = transport
        self.format: Format = "classic"
        self.window = 1.0  # emulated seconds events gather before a notification (sandbox: near real time)
        self.pending: list[Event] = []
        self.deliveries: list[Delivery] = []
        self._task: asyncio.Task[None] | None = None

    # --- intake ---------------------------------------------------------------------------------
    def watch(self, company: Company) -> None:
        company.listeners.append(self.on_change)

    def on_change(self, company: Company, change: Change) -> None:
        self.pending.append(Event(company.realm_id, change.entity, change.id, change.operation, change.at))
        if self.deliver:
            self._wake()

    # --- bodies ---------------------------------------------------------------------------------
    def body(self, events: list[Event], fmt: Format) -> str:
        if fmt == "cloudevents":
            return json.dumps([self._cloud_event(e) for e in events], separators=(",", ":"))
        by_realm: dict[str, list[dict[str, str]]] = {}
        for e in events:
            by_realm.setdefault(e.realm_id, []).append(
                {
                    "name": e.entity,
                    "id": e.id,
                    "operation": e.operation,
                    "lastUpdated": datetime.fromtimestamp(e.at, PACIFIC).strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
        notifications = [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}} for realm, entities in by_realm.items()
        ]
        return json.dumps({"eventNotifications": notifications}, separators=(",", ":"))

    def _cloud_event(self, e: Event) -> dict[str, Any]:
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"{uuid.uuid4()}-{e.entity}-{e.id}",
            "source": "intuit." + base64.b64encode(hashlib.sha256(e.realm_id.encode()).digest()).decode(),
            "type": f"qbo.{e.entity.lower()}.{CLOUD_VERBS.get(e.operation, e.operation.lower())}.v1",
            "datacontenttype": "application/json",
            "time": datetime.fromtimestamp(e.at, UTC).isoformat().replace("+00:00", "Z"),
            "intuitentityid": e.id,
            "intuitaccountid": e.realm_id,
            "data": {},
        }
        return event

    # --- delivery -------------------------------------------------------------------------------
    def _bundle(self) -> None:
        """Pending events become one notification (up to 100 events each, as Intuit caps them)."""
        while self.pending:
            events, self.pending = self.pending[:100], self.pending[100:]
            self.deliveries.append(
                Delivery(
                    id=len(self.deliveries) + 1,
                    format=self.format,
                    events=events,
                    body=self.body(events, self.format),
                    status="pending" if self.deliver else "queued",
                    next_attempt=self.clock.now(),
                )
            )

    async def flush(self, *, force: bool = True) -> list[Delivery]:
        """Deliver what is due now (or every undelivered notification when forced); returns those attempted."""
        self._bundle()
        now = self.clock.now()
        due = [
            d
            for d in self.deliveries
            if d.status in ("pending", "failed", "queued") and (force or d.next_attempt <= now)
        ]
        if not due:
            return []
        async with httpx.AsyncClient(transport=self.transport, timeout=10) as client:
            for delivery in due:
                await self._attempt(client, delivery)
        return due

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        body = delivery.body.encode()
        delivery.attempts += 1
        try:
            response = await client.post(
                self.url,
                content=body,
                headers={
                    "content-type": "application/json; charset=utf-8",
                    "intuit-signature": sign(body, self.verifier_token),
                    "intuit-t-id": str(uuid.uuid4()),
                    "user-agent": "intuit-webhooks-emulator",
                },
            )
            outcome = f"{response.status_code}"
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError as exc:
            outcome, ok = f"error: {type(exc).__name__}", False
        delivery.responses.append(outcome)
        if ok:
            delivery.status = "delivered"
            return
        delivery.status = "failed"
        delay = BACKOFF[min(delivery.attempts - 1, len(BACKOFF) - 1)]
        delivery.next_attempt = self.clock.now() + delay

    def _wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        """Background delivery: gather for `window`, send, then keep retrying failures on the backoff."""
        await self.clock.sleep(self.window)
        while True:
            await self.flush(force=False)
            waiting = [d.next_attempt for d in self.deliveries if d.status == "failed"]
            if not waiting and not self.pending:
                return
            await self.clock.sleep(max(0.05, min(waiting or [self.clock.now()]) - self.clock.now()))

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def listing(self) -> list[dict[str, Any]]:
        return [
            {**asdict(d), "events": [asdict(e) for e in d.events], "body": json.loads(d.body)} for d in self.deliveries
        ]
