"""Shared by the calendar benchmark and the calendar crash test: the Google Calendar emulator on a real port,
a business with a technician, Google Calendar connected through the hub's consent page, and jobs."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bench._faultkit import PASSWORD, free_port
from fieldhub.core.customers.service import create_customer
from fieldhub.core.jobs.service import create_job
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.google_calendar.calendar import MARK
from fieldhub.providers.google_calendar.emulator import GoogleCalendarEmulator, create_emulator
from fieldhub.settings import demo_credentials


@contextmanager
def gcal_on_port(*, hub_url: str = "http://testserver", deliver: bool = False) -> Iterator[tuple[Any, str]]:
    """The Google Calendar emulator served by uvicorn in a thread of this process: it outlives every process
    that talks to it, so its state survives their kill -9."""
    creds = demo_credentials("google_calendar")
    emulator = create_emulator(
        EmulatorConfig(
            hub_url=hub_url,
            client_id=creds.client_id,
            client_secret=creds.client_secret.get_secret_value(),
            deliver_webhooks=deliver,
        )
    )
    emulator.rate_rules.clear()  # the figures are the hub's, not Google's quota queue
    server = uvicorn.Server(
        uvicorn.Config(emulator, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the Google Calendar emulator did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield emulator, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def connect_google(app: Any, email: str, base_url: str = "http://testserver") -> int:
    """Log in as `email` and connect Google Calendar through the emulator's consent page."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as hub:
        form = await hub.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, "no CSRF token on the login page"
        login = await hub.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)})
        assert login.status_code == 303, login.text
        start = await hub.get("/integrations/google_calendar/connect", params={"mode": "page"})
        assert start.status_code == 302, start.text
        authorize = start.headers["location"]
        mounted = authorize.startswith(str(hub.base_url))
        async with httpx.AsyncClient(timeout=30) as network:
            browser = hub if mounted else network
            page = await browser.get(authorize)
            assert page.status_code == 200, page.text
            form = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
            choice = {"decision": "approve", "account": GoogleCalendarEmulator.users[0].id}
            answer = await browser.post(authorize.split("?")[0], data=form | choice)
            assert answer.status_code == 302, answer.text
        back = await hub.get(answer.headers["location"])
        assert back.status_code in (200, 302, 303), back.text
    async with app.state.sessionmaker() as session:
        connection = await session.scalar(select(Connection).where(Connection.provider == "google_calendar"))
        assert connection is not None, "Google Calendar did not connect"
        return connection.id


async def make_jobs(session: AsyncSession, tenant_id: int, tech_id: int, count: int) -> list[int]:
    customer = await create_customer(session, tenant_id, {"display_name": "Dana Whitfield"})
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    ids = []
    for n in range(count):
        start = base + timedelta(hours=2 * n)
        job = await create_job(
            session,
            tenant_id,
            {
                "customer_id": customer.id,
                "title": f"Job {n}",
                "scheduled_start": start,
                "scheduled_end": start + timedelta(hours=1),
                "technician_ids": [tech_id],
                "address": "12 Elm St",
            },
        )
        ids.append(job.id)
    await session.commit()
    return ids


def events_by_job(emulator: GoogleCalendarEmulator) -> dict[str, int]:
    """How many live events each job has at the emulator."""
    found: dict[str, int] = {}
    for events in emulator.events.values():
        for stored in events.values():
            event = stored["event"]
            job = ((event.get("extendedProperties") or {}).get("private") or {}).get(MARK)
            if job and event["status"] != "cancelled":
                found[job] = found.get(job, 0) + 1
    return found
