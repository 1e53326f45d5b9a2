"""The export adapter every calendar shares: the sync engine hands it a job, it puts the job's event in place.

The engine owns what is stateful (the ledger row, the idempotency key committed before a create, retries);
this turns one job into one call of the provider's CalendarApi. The ledger row keeps the event's id as
`remote_id` and the calendar it lives on as `remote_version`, so a reassignment moves the event and a cancel
deletes it from where it is. Through the engine, a create interrupted by a crash is settled by the same key
(Google: the same client-chosen event id; Graph: the same transactionId) and never doubles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from fieldhub.capabilities.calendar.mapping import job_event
from fieldhub.capabilities.calendar.protocol import CalendarApi, CalendarEvent
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.hub.errors import NotEntitled, ProviderError
from fieldhub.hub.sync.adapter import PushItem, PushResult

EXPORTS = ("job",)


def _sent(event: CalendarEvent) -> dict[str, Any]:
    data = asdict(event)
    data.pop("raw", None)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


class CalendarAdapter:
    batch_size = 0

    def __init__(self, connection: Any, api: CalendarApi) -> None:
        self.settings = CalendarSettings.of(connection)
        self.api = api

    async def prepare(self) -> None:
        return None

    def _event(self, item: PushItem) -> CalendarEvent:
        return job_event(
            item.record, self.settings, str(item.related.get("time_zone") or "UTC"), key=item.remote_id or ""
        )

    async def push(self, item: PushItem) -> PushResult:
        if not self.settings.exports:
            raise NotEntitled("Export Jobs is off for this calendar (or it only imports), so jobs are not sent.")
        event = self._event(item)
        if event.cancelled:
            if not item.remote_id:
                raise NotEntitled("A cancelled job is not put on the calendar.")
            await self.api.delete_event(item.remote_version or event.calendar_id, item.remote_id)
            return PushResult(item.remote_id, item.remote_version, "deleted", sent={"delete": item.remote_id})
        if item.remote_id:
            if item.remote_version and item.remote_version != event.calendar_id:
                await self.api.move_event(event, from_calendar=item.remote_version)
            saved = await self.api.update_event(event)
            return PushResult(saved.key, saved.calendar_id, "updated", sent=_sent(event), received=saved.raw)
        assert item.idempotency_key, "the engine commits a create's key before the create"
        saved = await self.api.create_event(event, item.idempotency_key)
        return PushResult(saved.key, saved.calendar_id, "created", sent=_sent(event), received=saved.raw)

    async def push_batch(self, items: Sequence[PushItem]) -> list[PushResult | ProviderError]:
        raise NotImplementedError("calendars are sent one event at a time")

    async def find_existing(self, item: PushItem) -> PushResult | None:
        """A create whose reply was lost: the event made under its key, if the provider has it."""
        event = self._event(item)
        found = await self.api.find_event(event.calendar_id, "", item.idempotency_key or "")
        if found is None:
            return None
        return PushResult(found.key, found.calendar_id, "created", sent=None, received=found.raw)


def replace_key(event: CalendarEvent, key: str) -> CalendarEvent:
    return replace(event, key=key)
