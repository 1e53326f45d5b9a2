"""A Google Calendar connection made through the in-process emulator's consent page, and jobs to put on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.jobs.service import create_job
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.engine import sync_connection
from tests.hub.oauth.conftest import consent


@dataclass
class CalendarSetup:
    app: Any
    env: Any
    session: Any
    biz: Any
    owner: Any
    connection_id: int
    emulator: Any
    customer_id: int = 0
    tenant_id: int = 0
    tech_id: int = 0
    sleeps: list[float] = field(default_factory=list)

    async def connection(self) -> Connection:
        conn = await self.session.get(Connection, self.connection_id, populate_existing=True)
        assert conn is not None
        return conn

    async def sync(self, **kw: Any):
        options = {"sleep": self._sleep, "timeout": 2.0} | kw.pop("client_options", {})
        return await sync_connection(
            self.env, self.connection_id, trigger=kw.pop("trigger", "manual"), client_options=options, **kw
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def job(self, hours_from_now: float = 24, *, techs: list[int] | None = None, title: str = "Furnace tune-up"):
        start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(hours=hours_from_now)
        job = await create_job(
            self.session,
            self.tenant_id,
            {
                "customer_id": self.customer_id,
                "title": title,
                "scheduled_start": start,
                "scheduled_end": start + timedelta(hours=2),
                "technician_ids": [self.tech_id] if techs is None else techs,
                "address": "12 Elm St, Springfield",
                "description": "Annual service",
            },
        )
        await self.session.commit()
        return job

    def events(self, calendar: str = "") -> list[dict]:
        return [
            stored["event"]
            for cid, events in self.emulator.events.items()
            if calendar in ("", cid)
            for stored in events.values()
        ]

    def live_events(self, calendar: str = "") -> list[dict]:
        return [e for e in self.events(calendar) if e["status"] != "cancelled"]


async def connect_google(app, owner, session, biz) -> CalendarSetup:
    response, _ = await consent(owner, "google_calendar")
    assert response.status_code in (200, 302, 303), response.text
    connection = await session.scalar(select(Connection).where(Connection.provider == "google_calendar"))
    assert connection is not None
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Dana Whitfield", "phone": "555-0100"})
    await session.commit()
    emulator = app.state.endpoints.emulators["google_calendar"]
    return CalendarSetup(
        app, env_for(app), session, biz, owner, connection.id, emulator, customer.id, biz.tenant.id, biz.tech.id
    )


@pytest.fixture
async def gcal(app, owner, session, biz) -> CalendarSetup:
    return await connect_google(app, owner, session, biz)
