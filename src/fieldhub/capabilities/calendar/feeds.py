"""ICS feeds: each technician's jobs as an iCalendar file at a secret, revocable link (issue 17 item 9).

Read-only; for calendar apps fieldhub does not connect to (Apple Calendar, Thunderbird, a phone's own). The link
carries a random token; only its SHA-256 is stored, so the link is shown once when made. Making a new link or
revoking ends the old one at once (404). The feed holds the technician's jobs from 30 days back to a year ahead,
cancelled ones left out, times in UTC, each job one VEVENT whose UID stays the same across edits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from icalendar import Calendar, Event
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.calendar.models import CalendarFeed
from fieldhub.core.accounts.models import Role, User
from fieldhub.core.jobs.models import Job, JobStatus, job_assignments
from fieldhub.db import utcnow

PATH = "/calendar/feeds/{token}.ics"
BACK = timedelta(days=30)
AHEAD = timedelta(days=366)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def active(session: AsyncSession, tenant_id: int) -> dict[int, CalendarFeed]:
    rows = await session.scalars(
        select(CalendarFeed).where(CalendarFeed.tenant_id == tenant_id, CalendarFeed.revoked_at.is_(None))
    )
    return {row.user_id: row for row in rows}


async def revoke(session: AsyncSession, tenant_id: int, user_id: int) -> int:
    result = await session.execute(
        update(CalendarFeed)
        .where(CalendarFeed.tenant_id == tenant_id, CalendarFeed.user_id == user_id, CalendarFeed.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def new_link(session: AsyncSession, tenant_id: int, user_id: int) -> str:
    """A new secret token for the technician's feed (the old link stops working); returns the token."""
    tech = await session.scalar(
        select(User).where(User.id == user_id, User.tenant_id == tenant_id, User.role == Role.TECHNICIAN)
    )
    if tech is None:
        raise LookupError("no such technician")
    await revoke(session, tenant_id, user_id)
    token = secrets.token_urlsafe(32)
    session.add(CalendarFeed(tenant_id=tenant_id, user_id=user_id, token_hash=_hash(token)))
    await session.flush()
    return token


async def render(session: AsyncSession, token: str) -> bytes | None:
    """The feed a token opens, or None (unknown or revoked)."""
    feed = await session.scalar(
        select(CalendarFeed).where(CalendarFeed.token_hash == _hash(token), CalendarFeed.revoked_at.is_(None))
    )
    if feed is None:
        return None
    tech = await session.get(User, feed.user_id)
    now = utcnow()
    jobs = await session.scalars(
        select(Job)
        .where(
            Job.tenant_id == feed.tenant_id,
            Job.id.in_(select(job_assignments.c.job_id).where(job_assignments.c.user_id == feed.user_id)),
            Job.status != JobStatus.CANCELLED,
            Job.scheduled_end > now - BACK,
            Job.scheduled_start < now + AHEAD,
        )
        .order_by(Job.scheduled_start)
    )
    cal = Calendar()
    cal.add("prodid", "-//fieldhub//jobs//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"fieldhub jobs — {tech.name if tech else ''}".strip(" —"))
    for job in jobs:
        event = Event()
        event.add("uid", f"job-{job.id}-t{feed.tenant_id}@fieldhub")
        event.add("summary", job.title)
        event.add("dtstart", job.scheduled_start)
        event.add("dtend", job.scheduled_end)
        event.add("dtstamp", job.updated_at or now)
        event.add("sequence", job.version)
        if job.address:
            event.add("location", job.address)
        event.add("description", f"Customer: {job.customer.display_name}")
        event.add("status", "CONFIRMED")
        cal.add_component(event)
    feed.last_read_at = now
    return cal.to_ical()
