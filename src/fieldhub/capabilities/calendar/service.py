"""The calendar flows every provider shares: open a connection's CalendarApi, pick or make its calendar, save its
settings, and put the upcoming jobs in the ledger so the engine sends them (the ledger only hears of changes
made after a connection exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.calendar.protocol import CalendarApi, CalendarInfo
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.accounts.models import Tenant
from fieldhub.core.events import DomainEvent
from fieldhub.core.jobs.models import Job, JobStatus
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync import ledger
from fieldhub.hub.sync.clients import client_for
from fieldhub.hub.sync.models import RunStatus, SyncRun

JOBS_CALENDAR = "fieldhub jobs"
# Jobs that ended longer ago than this are history: a new connection does not fill the calendar's past.
BACKFILL_FROM = timedelta(days=1)


@asynccontextmanager
async def open_api(env: OAuthEnv, connection: Connection, **options: Any) -> AsyncIterator[CalendarApi]:
    module = registry.import_module(connection.provider, "calendar")
    assert module is not None, f"{connection.provider} has no calendar.py"
    async with client_for(env, connection, **options) as client:
        yield module.open_calendar(connection, client)


async def business_zone(session: AsyncSession, tenant_id: int) -> str:
    return str(await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) or "UTC")


async def choose_calendar(
    session: AsyncSession, env: OAuthEnv, connection: Connection, calendar_id: str, *, new: bool = False
) -> CalendarInfo:
    """Make `calendar_id` (one of the account's) the connection's calendar, or a new "fieldhub jobs" calendar;
    the upcoming jobs follow it there. Raises ValueError for a calendar the account does not have."""
    await session.commit()  # the provider call refreshes tokens in sessions of its own
    async with open_api(env, connection) as api:
        if new:
            chosen = await api.create_calendar(JOBS_CALENDAR, await business_zone(session, connection.tenant_id))
        else:
            chosen = next((c for c in await api.calendars() if c.id == calendar_id), None)  # type: ignore[assignment]
            if chosen is None:
                raise ValueError("That calendar is not one of this account's.")
    await session.refresh(connection)
    settings = CalendarSettings.of(connection)
    settings.calendar_id, settings.calendar_name = chosen.id, chosen.name
    settings.save(connection)
    await backfill(session, connection)
    return chosen


async def save_settings(session: AsyncSession, connection: Connection, form: dict[str, str]) -> dict[str, str]:
    settings = CalendarSettings.of(connection)
    was_exporting = settings.exports
    errors = settings.update(form)
    if errors:
        return errors
    settings.save(connection)
    connection.auto_sync = settings.auto_sync
    if settings.exports and not was_exporting:
        await backfill(session, connection)
    await session.flush()
    return {}


async def backfill(session: AsyncSession, connection: Connection) -> int:
    """Every job still to come (or under way) marked for this connection: the engine sends what is not there
    yet and brings the rest up to date. Idempotent: a job already synced at its version is left alone."""
    if not CalendarSettings.of(connection).exports or not ledger.exports(connection.provider, "job"):
        return 0
    jobs = await session.scalars(
        select(Job).where(
            Job.tenant_id == connection.tenant_id,
            Job.scheduled_end > utcnow() - BACKFILL_FROM,
            Job.status.in_([JobStatus.SCHEDULED, JobStatus.IN_PROGRESS]),
        )
    )
    marked = 0
    for job in jobs:
        event = DomainEvent(connection.tenant_id, "job", job.id, job.version, "backfill", {"status": str(job.status)})
        row = await ledger.mark(session, connection, event)
        marked += row is not None
    return marked


async def last_run(session: AsyncSession, connection_id: int) -> SyncRun | None:
    return await session.scalar(
        select(SyncRun)
        .where(SyncRun.connection_id == connection_id, SyncRun.status != RunStatus.RUNNING)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(1)
    )


async def recent_runs(session: AsyncSession, connection_id: int, limit: int = 20) -> list[SyncRun]:
    rows = await session.scalars(
        select(SyncRun)
        .where(SyncRun.connection_id == connection_id)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(limit)
    )
    return list(rows)
