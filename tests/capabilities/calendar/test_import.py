"""Google Calendar in: busy time blocks technicians, 410 starts over without doubles, two-way moves (issue 17
items 4 and 5), and the job form's clash warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from fieldhub.capabilities.calendar.inbound import sync_in
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.events import DomainEventRow
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from tests.capabilities.calendar.test_export import _pick


def _at(hours: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(hours=hours)


async def _user_edit(gcal, method: str, path: str, body: dict | None = None) -> httpx.Response:
    """What the user does in Google Calendar's own app, through the emulator's control surface."""
    transport = httpx.ASGITransport(app=gcal.emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://gcal") as client:
        return await client.request(method, f"/_emulator/calendar/calendars/{path}", json=body)


def _when(hours: float, length: float = 1) -> dict:
    return {"start": {"dateTime": _at(hours).isoformat()}, "end": {"dateTime": _at(hours + length).isoformat()}}


async def _blocks(session) -> list[TimeBlock]:
    session.expire_all()
    return list(await session.scalars(select(TimeBlock).order_by(TimeBlock.starts_at)))


async def test_issue17_item4_busy_events_block_the_technician_and_never_become_jobs(gcal, session) -> None:
    calendar = await _pick(gcal)
    personal = (await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "Dentist", **_when(30)})).json()
    await _user_edit(
        gcal, "POST", f"{calendar}/events", {"summary": "Free lunch", "transparency": "transparent", **_when(33)}
    )
    await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "Therapy", "visibility": "private", **_when(40)})
    done = await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert done is not None and done.run is not None and done.run.status == "success"
    blocks = await _blocks(session)
    assert [(b.reason, b.user_id, b.source) for b in blocks] == [
        ("Dentist", gcal.tech_id, "google_calendar"),
        ("Busy", gcal.tech_id, "google_calendar"),  # a private event shows as Busy only
    ]
    assert blocks[0].starts_at == _at(30)
    assert await session.scalar(select(func.count()).select_from(Job)) == 0  # events never become jobs

    # The week schedule shows the block.
    week = await gcal.owner.get(f"/schedule?week={_at(30).date().isoformat()}")
    assert "Dentist" in week.text

    # Moved, then deleted, in Google: the block follows, then frees the time.
    await _user_edit(gcal, "PATCH", f"{calendar}/events/{personal['id']}", _when(50))
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert [b.starts_at for b in await _blocks(session) if b.reason == "Dentist"] == [_at(50)]
    await _user_edit(gcal, "DELETE", f"{calendar}/events/{personal['id']}")
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert [b.reason for b in await _blocks(session)] == ["Busy"]


async def test_issue17_item4_expired_sync_token_resyncs_in_full_without_duplicates(gcal, session) -> None:
    calendar = await _pick(gcal)
    job = await gcal.job(20)
    job_id, job_start = job.id, job.scheduled_start
    await gcal.sync()
    for n in range(3):
        await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": f"Busy {n}", **_when(30 + n * 2)})
    first = await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert first is not None and first.full_reads == 0
    gone = (await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "Busy 3", **_when(40)})).json()
    await _user_edit(gcal, "DELETE", f"{calendar}/events/{gone['id']}")
    await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "Busy 4", **_when(42)})
    gcal.emulator.counters["epoch"] += 1  # Google forgets every sync token: 410 fullSyncRequired
    second = await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert second is not None and second.full_reads == 1 and second.run.status == "success"
    reasons = [b.reason for b in await _blocks(session)]
    assert reasons == ["Busy 0", "Busy 1", "Busy 2", "Busy 4"]
    assert await session.scalar(select(func.count()).select_from(Job)) == 1
    assert len(gcal.live_events(calendar)) == 5  # the job's event and four personal ones, none doubled
    session.expire_all()
    assert (await session.get(Job, job_id)).scheduled_start == job_start
    # The next change is read incrementally again, from the fresh token.
    third = await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert third is not None and third.full_reads == 0


async def test_issue17_item5_event_moved_or_deleted_in_google_moves_or_unschedules_the_job(gcal, session) -> None:
    calendar = await _pick(gcal)
    job = await gcal.job(26)
    job_id = job.id
    await gcal.sync()
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")  # our own event coming back changes nothing
    [event] = gcal.live_events(calendar)
    await _user_edit(gcal, "PATCH", f"{calendar}/events/{event['id']}", _when(28, 3))
    done = await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    assert done is not None and done.run.updated == 1
    session.expire_all()
    moved = await session.get(Job, job_id)
    assert (moved.scheduled_start, moved.scheduled_end) == (_at(28), _at(31))
    history = list(await session.scalars(select(DomainEventRow.kind).where(DomainEventRow.record_id == job_id)))
    assert "calendar_moved" in history
    row = await session.scalar(select(LedgerRow).where(LedgerRow.local_id == job_id))
    assert row.state == LedgerState.SYNCED  # not sent back as an echo
    assert await gcal.sync() is None

    await _user_edit(gcal, "DELETE", f"{calendar}/events/{event['id']}")
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    session.expire_all()
    assert (await session.get(Job, job_id)).status == JobStatus.CANCELLED


async def test_issue17_item5_job_changed_here_since_wins_over_an_older_calendar_edit(gcal, session) -> None:
    calendar = await _pick(gcal)
    job = await gcal.job(26)
    job_id = job.id
    await gcal.sync()
    [event] = gcal.live_events(calendar)
    await _user_edit(gcal, "PATCH", f"{calendar}/events/{event['id']}", _when(28))
    from fieldhub.core.jobs.service import reschedule_job

    await reschedule_job(session, gcal.tenant_id, job_id, _at(60), _at(62))  # newer, here
    await session.commit()
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    session.expire_all()
    assert (await session.get(Job, job_id)).scheduled_start == _at(60)
    await gcal.sync()
    [event] = gcal.live_events(calendar)
    assert datetime.fromisoformat(event["start"]["dateTime"]) == _at(60)


async def test_issue17_item4_job_form_warns_on_a_clash_with_busy_time(gcal, session) -> None:
    calendar = await _pick(gcal)
    await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "Dentist", **_when(30)})
    await sync_in(gcal.env, gcal.connection_id, trigger="manual")
    local = _at(30).astimezone(__import__("zoneinfo").ZoneInfo("America/Chicago"))
    form = {
        "customer_id": str(gcal.customer_id),
        "title": "Leak",
        "scheduled_start": local.strftime("%Y-%m-%dT%H:%M"),
        "scheduled_end": (local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "technician_ids": str(gcal.tech_id),
    }
    warned = await gcal.owner.submit("/schedule/jobs/new", form)
    assert warned.status_code == 409 and "data-clash" in warned.text and "Dentist" in warned.text
    saved = await gcal.owner.submit("/schedule/jobs/new", {**form, "override_clash": "1"})
    assert saved.status_code == 303
    assert CalendarSettings.of(await gcal.connection()).block_time_slots
