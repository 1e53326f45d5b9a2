"""The calendar capability's seam: the typed `CalendarEvent` and the small `CalendarApi` a provider implements.

Everything true of any calendar (Google Calendar, Outlook) lives in capabilities/calendar/: which job goes to
which calendar and how it reads there (mapping.py), the export adapter the sync engine drives (export.py),
the settings and pages (settings.py, pages.py, routes.py). A provider's folder supplies only `calendar.py`
defining `open_calendar(connection, client) -> CalendarApi` over the connection's ProviderClient, and a
`sync.py` that hands it to the capability's adapter (EXPORTS names what it sends).

The rules every implementation keeps:

1. **Times are aware.** `start`/`end` are aware datetimes; the provider writes them in `time_zone` (the
   business's) and reads them back as aware UTC. `end` is after `start` (CalendarEvent refuses otherwise).
2. **An event from fieldhub says so.** `job_id` rides in the provider's private event properties (Google's
   extendedProperties.private, Graph's single-value extended property) and comes back on read; an event
   without it never becomes a job.
3. **Creates are idempotent.** `create_event(event, idempotency_key)`: Google uses a client-chosen event id
   derived from the key (the same id again is 409 and means "already there"), Graph the key as
   `transactionId`. `find_event` finds what a lost reply created.
4. **Cursors are opaque.** `changes(calendar_id, cursor)` returns every change since the cursor (cancelled
   events included) and the next cursor; an empty cursor is a full read. A cursor the provider no longer
   knows raises `CursorExpired`: the caller starts over with a full read.
5. **Gone is not an error.** Deleting an event already deleted is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class CursorExpired(Exception):
    """The provider forgot the sync cursor (Google 410 fullSyncRequired, Graph's delta reset): read everything."""


@dataclass(frozen=True)
class CalendarInfo:
    id: str
    name: str
    primary: bool = False


@dataclass(frozen=True)
class CalendarEvent:
    calendar_id: str
    start: datetime
    end: datetime
    summary: str = ""
    time_zone: str = "UTC"
    key: str = ""  # the provider's event id; "" before it exists
    location: str = ""
    description: str = ""
    reminder_minutes: int | None = None  # None: no reminder
    busy: bool = True  # opaque/busy; a "free" event blocks nothing
    private: bool = False  # its details are the owner's: fieldhub shows it as "Busy"
    cancelled: bool = False
    job_id: int | None = None  # set on events that came from a fieldhub job
    job_version: int | None = None
    updated: datetime | None = None  # the provider's last-modified time (aware UTC)
    all_day: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("CalendarEvent times must be aware")
        if not self.cancelled and self.end <= self.start:
            raise ValueError("CalendarEvent must end after it starts")


@dataclass
class Changes:
    events: list[CalendarEvent]
    cursor: str
    full: bool  # a full read (no cursor, or the provider forgot it): anything not in it is gone


class CalendarApi(Protocol):
    async def calendars(self) -> list[CalendarInfo]: ...

    async def create_calendar(self, name: str, time_zone: str) -> CalendarInfo: ...

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> CalendarEvent: ...

    async def find_event(self, calendar_id: str, key: str, idempotency_key: str = "") -> CalendarEvent | None: ...

    async def update_event(self, event: CalendarEvent) -> CalendarEvent: ...

    async def move_event(self, event: CalendarEvent, from_calendar: str) -> CalendarEvent: ...

    async def delete_event(self, calendar_id: str, key: str) -> None: ...

    async def changes(self, calendar_id: str, cursor: str) -> Changes: ...
