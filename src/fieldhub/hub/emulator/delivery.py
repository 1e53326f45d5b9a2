"""Webhook delivery for an emulator: queued, sent in the background, retried on the emulator's clock until answered.

A provider's emulator builds each request (`Outgoing`: URL, body, headers, signed as that provider signs) and
says what counts as answered (`accepted(status, text)`: a 2xx, or Dropbox Sign's exact reply text). A failed
attempt is tried again after `schedule[n]` emulated seconds; after the last it is given up. `transport` lets
tests deliver into an app in-process; the control surface lists, flushes and pauses deliveries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from fieldhub.hub.emulator.core import CONTROL_PREFIX

if TYPE_CHECKING:
    from fieldhub.hub.emulator.core import Emulator


@dataclass
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str]
    kind: str = ""  # the event's type, for the control surface


@dataclass
class Attempt:
    at: float
    status: int
    error: str = ""


@dataclass
class Delivery:
    id: int
    outgoing: Outgoing
    next_at: float
    status: str = "pending"  # pending | delivered | failed
    attempts: list[Attempt] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.outgoing.url,
            "kind": self.outgoing.kind,
            "status": self.status,
            "attempts": [asdict(a) for a in self.attempts],
            "body": self.outgoing.body.decode("utf-8", "replace"),
        }


def two_xx(status: int, text: str) -> bool:
    return 200 <= status < 300


class Sender:
    def __init__(
        self,
        emu: Emulator,
        *,
        schedule: tuple[float, ...],
        accepted: Callable[[int, str], bool] = two_xx,
        transport: httpx.AsyncBaseTransport | None = None,
        enabled: bool = True,
    ) -> None:
        self.emu = emu
        self.schedule = schedule
        self.accepted = accepted
        self.transport = transport
        self.enabled = enabled
        self.paused = False
        self.deliveries: list[Delivery] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def enqueue(self, outgoing: Outgoing) -> Delivery:
        delivery = Delivery(len(self.deliveries) + 1, outgoing, self.emu.clock.now())
        self.deliveries.append(delivery)
        self.kick()
        return delivery

    def kick(self) -> None:
        if self.paused or not self.enabled or not self._due(force=False):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until the sends started so far are done (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _due(self, *, force: bool) -> list[Delivery]:
        now = self.emu.clock.now()
        return [d for d in self.deliveries if d.status == "pending" and (force or d.next_at <= now)]

    async def flush(self, *, force: bool = False) -> int:
        async with self._lock:
            due = self._due(force=force)
            if not due:
                return 0
            async with httpx.AsyncClient(transport=self.transport, timeout=10.0) as client:
                for delivery in due:
                    await self._send(client, delivery)
            self.emu.save_state()
            return len(due)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        out = delivery.outgoing
        attempt = Attempt(at=self.emu.clock.now(), status=0)
        text = ""
        try:
            reply = await client.post(out.url, content=out.body, headers=out.headers)
            attempt.status, text = reply.status_code, reply.text
        except (httpx.HTTPError, OSError) as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        if attempt.status and not self.accepted(attempt.status, text):
            attempt.error = attempt.error or f"not accepted: {text[:80]!r}"
        delivery.attempts.append(attempt)
        if attempt.status and self.accepted(attempt.status, text):
            delivery.status = "delivered"
            return
        tries = len(delivery.attempts)
        if tries > len(self.schedule):
            delivery.status = "failed"
            return
        delivery.next_at = self.emu.clock.now() + self.schedule[tries - 1]

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        for delivery in self.deliveries:
            counts[delivery.status] += 1
        return counts

    def install(self, prefix: str = f"{CONTROL_PREFIX}/webhooks") -> None:
        async def deliveries(status: str = "") -> list[dict[str, Any]]:
            return [d.summary() for d in self.deliveries if not status or d.status == status]

        async def flush() -> dict[str, int]:
            sent = await self.flush(force=True)
            return {"sent": sent, **self.counts()}

        async def pause() -> dict[str, bool]:
            self.paused = True
            return {"paused": True}

        async def resume() -> dict[str, bool]:
            self.paused = False
            self.kick()
            return {"paused": False}

        app = self.emu.app
        app.add_api_route(f"{prefix}/deliveries", deliveries, methods=["GET"])
        app.add_api_route(f"{prefix}/flush", flush, methods=["POST"])
        app.add_api_route(f"{prefix}/pause", pause, methods=["POST"])
        app.add_api_route(f"{prefix}/resume", resume, methods=["POST"])
