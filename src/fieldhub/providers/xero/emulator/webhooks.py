"""Xero's webhooks: contact, invoice and credit-note events, signed, batched, retried, and the Intent to Receive.

A delivery is `{"events":[...],"firstEventSequence":n,"lastEventSequence":m,"entropy":"..."}` (xero-webhooks.yaml)
POSTed to the hub with `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)). The hub must answer 200
with no body within 5 seconds, and 401 to a wrong signature. Xero retries a failed delivery with decreasing
frequency for up to 24 hours (here: 1, 5, 15, 30 minutes, then hourly) and then gives it up. Xero sends no events
for payments or bank transactions: those are polled (facts §2.6).

The Intent to Receive (Xero sends it when a webhook is created, re-enabled or its URL changes): a series of
empty-event deliveries, some signed correctly and some not; the webhook turns OK only if every correctly signed one
got a 200 and every wrongly signed one a 401.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import string
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fieldhub.hub.emulator import Clock

BACKOFF = [60, 300, 900, 1800, 3600]
GIVE_UP_AFTER = 86400


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


@dataclass
class Delivery:
    id: int
    body: str
    first_at: float
    status: str = "pending"  # pending | delivered | failed (will retry) | abandoned | queued (delivery off)
    attempts: int = 0
    next_attempt: float = 0.0
    responses: list[str] = field(default_factory=list)


class Webhooks:
    def __init__(
        self, *, url: str, key: str, clock: Clock, deliver: bool, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url, self.key, self.clock, self.deliver, self.transport = url, key, clock, deliver, transport
        self.window = 1.0  # emulated seconds events gather before a delivery
        self.sequence = 0
        self.pending: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.intent: dict[str, Any] = {"status": "not sent", "attempts": []}
        self._task: asyncio.Task[None] | None = None

    def event(self, tenant_id: str, category: str, resource_id: str, event_type: str, data: dict[str, Any]) -> None:
        path = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}[category]
        self.sequence += 1
        moment = datetime.fromtimestamp(self.clock.now(), UTC)
        event: dict[str, Any] = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/{path}/{resource_id}",
            "resourceId": resource_id,
            "eventDateUtc": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
            "_sequence": self.sequence,
        }
        if data:
            event["data"] = data
        self.pending.append(event)
        if self.deliver:
            self._wake()

    def _bundle(self) -> None:
        while self.pending:
            events, self.pending = self.pending[:100], self.pending[100:]
            body = {
                "events": [{k: v for k, v in e.items() if k != "_sequence"} for e in events],
                "firstEventSequence": events[0]["_sequence"],
                "lastEventSequence": events[-1]["_sequence"],
                "entropy": entropy(),
            }
            now = self.clock.now()
            self.deliveries.append(
                Delivery(
                    id=len(self.deliveries) + 1,
                    body=json.dumps(body, separators=(",", ":")),
                    first_at=now,
                    status="pending" if self.deliver else "queued",
                    next_attempt=now,
                )
            )

    async def flush(self, *, force: bool = True) -> list[Delivery]:
        """Deliver what is due (every undelivered one when forced); returns those attempted."""
        self._bundle()
        now = self.clock.now()
        due = [
            d
            for d in self.deliveries
            if d.status in ("pending", "failed", "queued") and (force or d.next_attempt <= now)
        ]
        if due:
            async with httpx.AsyncClient(transport=self.transport, timeout=5) as client:
                for delivery in due:
                    await self._attempt(client, delivery)
        return due

    async def _post(self, client: httpx.AsyncClient, body: bytes, signature: str) -> str:
        try:
            response = await client.post(
                self.url,
                content=body,
                headers={"content-type": "application/json; charset=utf-8", "x-xero-signature": signature},
            )
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"
        # Xero wants its 200 empty ("no body, no cookies"); a refusal may say why.
        return str(response.status_code) + (" with a body" if response.content and response.status_code == 200 else "")

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        body = delivery.body.encode()
        delivery.attempts += 1
        outcome = await self._post(client, body, sign(body, self.key))
        delivery.responses.append(outcome)
        if outcome.startswith("200"):
            delivery.status = "delivered"
            return
        if self.clock.now() - delivery.first_at >= GIVE_UP_AFTER:
            delivery.status = "abandoned"
            return
        delivery.status = "failed"
        delivery.next_attempt = self.clock.now() + BACKOFF[min(delivery.attempts - 1, len(BACKOFF) - 1)]

    async def intent_to_receive(self, rounds: int = 4) -> dict[str, Any]:
        """Xero's check of a new webhook URL: correctly and wrongly signed empty deliveries, 200 and 401 expected."""
        attempts = []
        async with httpx.AsyncClient(transport=self.transport, timeout=5) as client:
            for i in range(rounds):
                body = json.dumps(
                    {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": entropy()},
                    separators=(",", ":"),
                ).encode()
                good = i % 2 == 0
                signature = sign(body, self.key) if good else sign(body, self.key + "-not-the-key")
                outcome = await self._post(client, body, signature)
                attempts.append({"signed_correctly": good, "response": outcome, "expected": "200" if good else "401"})
        ok = all(a["response"] == a["expected"] for a in attempts)
        self.intent = {"status": "OK" if ok else "FAILED", "attempts": attempts}
        return self.intent

    def _wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
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
        return [{**asdict(d), "body": json.loads(d.body)} for d in self.deliveries]
