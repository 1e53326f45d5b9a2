"""Webhook delivery as Stripe does it: signed `Stripe-Signature: t=…,v1=…`, retried with backoff on non-2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator.core import CONTROL_PREFIX

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

# Emulated seconds after each failed attempt; about three days in all, as Stripe retries live webhooks.
RETRY_SCHEDULE = (60, 300, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 24 * 3600)


def signature_header(payload: str, secret: str, timestamp: int) -> str:
    """The exact header Stripe sends: HMAC-SHA256 of "{t}.{raw body}" keyed by the endpoint secret, in hex."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Attempt:
    at: float
    status: int
    error: str = ""


@dataclass
class Delivery:
    id: int
    event_id: str
    type: str
    account: str | None
    next_at: float
    status: str = "pending"  # pending | delivered | failed
    redelivery: bool = False
    attempts: list[Attempt] = field(default_factory=list)


class WebhookSender:
    """Queues each event for the hub's endpoint and sends it; `transport` lets tests deliver in-process."""

    def __init__(self, emu: StripeEmulator, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.emu = emu
        self.transport = transport
        self.paused = False
        self.deliveries: list[Delivery] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return self.emu.config.hub_url.rstrip("/") + "/webhooks/stripe"

    def enqueue(self, event: dict[str, Any], *, redelivery: bool = False) -> Delivery:
        delivery = Delivery(
            len(self.deliveries) + 1,
            event["id"],
            event["type"],
            event.get("account"),
            self.emu.clock.now(),
            redelivery=redelivery,
        )
        self.deliveries.append(delivery)
        event["pending_webhooks"] += 1
        return delivery

    def kick(self) -> None:
        """Start sending what is due, in the background, unless delivery is paused or switched off."""
        if self.paused or not self.emu.config.deliver_webhooks or not self._due(force=False):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until the background sends started so far are done (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _due(self, *, force: bool) -> list[Delivery]:
        now = self.emu.clock.now()
        return [d for d in self.deliveries if d.status == "pending" and (force or d.next_at <= now)]

    async def flush(self, *, force: bool = False) -> int:
        """Send every due delivery (all pending ones with force, ignoring backoff and pause). Returns how many."""
        async with self._lock:
            due = self._due(force=force)
            if not due:
                return 0
            async with httpx.AsyncClient(transport=self.transport, timeout=10.0) as client:
                for delivery in due:
                    await self._send(client, delivery)
            return len(due)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        event = self.emu.objects[delivery.event_id].obj
        payload = json.dumps(event, indent=2)
        # Signed with the wall clock, not the emulated one: the receiver checks the timestamp against its own.
        header = signature_header(payload, self.emu.config.webhook_secret, int(time.time()))
        attempt = Attempt(at=self.emu.clock.now(), status=0)
        try:
            reply = await client.post(
                self.url,
                content=payload.encode(),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Cache-Control": "no-cache",
                    "Stripe-Signature": header,
                },
            )
            attempt.status = reply.status_code
        except (httpx.HTTPError, OSError) as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        delivery.attempts.append(attempt)
        if 200 <= attempt.status < 300:
            delivery.status = "delivered"
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            return
        tries = len(delivery.attempts)
        if tries > len(RETRY_SCHEDULE):
            delivery.status = "failed"
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            return
        delivery.next_at = self.emu.clock.now() + RETRY_SCHEDULE[tries - 1]

    def redeliver(self, event_id: str) -> Delivery:
        return self.enqueue(self.emu.objects[event_id].obj, redelivery=True)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {"pending": 0, "delivered": 0, "failed": 0}
        for delivery in self.deliveries:
            counts[delivery.status] += 1
        return counts

    def clear(self) -> None:
        self.deliveries.clear()
        self.paused = False


def install(emu: StripeEmulator) -> None:
    sender = emu.webhooks
    prefix = f"{CONTROL_PREFIX}/webhooks"

    async def deliveries(status: str = "", event: str = "") -> list[dict[str, Any]]:
        return [
            asdict(d)
            for d in sender.deliveries
            if (not status or d.status == status) and (not event or d.event_id == event)
        ]

    async def flush() -> dict[str, int]:
        """Send everything pending now, even while paused or backing off."""
        emu.run_due()
        sent = await sender.flush(force=True)
        return {"sent": sent, **sender.summary()}

    async def redeliver(event_id: str) -> JSONResponse:
        stored = emu.objects.get(event_id)
        if stored is None or stored.obj.get("object") != "event":
            return JSONResponse({"error": f"No such event: {event_id}"}, status_code=404)
        delivery = sender.redeliver(event_id)
        sender.kick()
        return JSONResponse(asdict(delivery))

    async def pause() -> dict[str, bool]:
        sender.paused = True
        return {"paused": True}

    async def resume() -> dict[str, bool]:
        sender.paused = False
        sender.kick()
        return {"paused": False}

    emu.app.add_api_route(f"{prefix}/deliveries", deliveries, methods=["GET"])
    emu.app.add_api_route(f"{prefix}/flush", flush, methods=["POST"])
    emu.app.add_api_route(f"{prefix}/redeliver/{{event_id}}", redeliver, methods=["POST"])
    emu.app.add_api_route(f"{prefix}/pause", pause, methods=["POST"])
    emu.app.add_api_route(f"{prefix}/resume", resume, methods=["POST"])
