"""Jobs out to Google Calendar through the sync engine and its ledger (issue 17 items 1-3)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.jobs.service import reschedule_job, set_job_status, update_job
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.providers.google_calendar.calendar import MARK


async def _pick(gcal, calendar_id: str = "new") -> str:
    conn = await gcal.connection()
    page = await gcal.owner.get("/settings/integrations/calendar")
    assert page.status_code == 200
    r = await gcal.owner.submit(f"/settings/integrations/calendar/{conn.id}/calendar", {"calendar_id": calendar_id})
    assert r.status_code == 303, r.text
    return CalendarSettings.of(await gcal.connection()).calendar_id


async def test_issue17_item1_calendar_page_picks_a_new_fieldhub_jobs_calendar(gcal) -> None:
    email = gcal.emulator.users[0].email
    page = await gcal.owner.get("/settings/integrations/calendar")
    # The account's email once (not again as an "Email" detail); Google names the primary calendar by it too.
    assert f"<strong>{email}</strong>" in page.text and 'data-detail="Email"' not in page.text
    assert "Sync Direction" in page.text and "Reminder Minutes" in page.text and "Block Time Slots" in page.text
    chosen = await _pick(gcal)
    assert chosen.endswith("@group.calendar.google.com")
    page = await gcal.owner.get("/settings/integrations/calendar")
    assert 'class="calendar-name">fieldhub jobs<' in page.text and "Last Synced" in page.text


async def test_issue17_item2_settings_are_the_guides_and_are_checked(gcal) -> None:
    conn = await gcal.connection()
    form = {
        "direction": "export",
        "interval_minutes": "30",
        "reminder_minutes": "1440",
        "auto_sync": "on",
        "export_jobs": "on",
        "show_job_details": "on",
    }
    r = await gcal.owner.submit(f"/settings/integrations/calendar/{conn.id}/settings", form)
    assert r.status_code == 303 and "saved=" in r.headers["location"]
    s = CalendarSettings.of(await gcal.connection())
    assert (s.direction, s.interval_minutes, s.reminder_minutes) == ("export", 30, 1440)
    assert s.show_job_details and s.export_jobs and not s.import_events and not s.block_time_slots
    bad = await gcal.owner.submit(
        f"/settings/integrations/calendar/{conn.id}/settings", {**form, "interval_minutes": "7"}
    )
    assert "settings_error=" in bad.headers["location"]
    assert CalendarSettings.of(await gcal.connection()).interval_minutes == 30


async def test_issue17_item3_jobs_become_events_and_follow_reschedule_reassign_cancel(gcal, session) -> None:
    job = await gcal.job()
    calendar = await _pick(gcal)  # the upcoming job is backfilled onto the chosen calendar
    run = await gcal.sync()
    assert run is not None and run.created == 1
    [event] = gcal.live_events(calendar)
    assert event["summary"] == "Furnace tune-up" and event["location"] == "12 Elm St, Springfield"
    assert event["start"]["timeZone"] == "America/Chicago" and event["extendedProperties"]["private"][MARK] == str(
        job.id
    )
    assert "Dana" not in event["description"]  # Show Job Details is off
    assert event["reminders"]["overrides"] == [{"method": "popup", "minutes": 30}]

    await reschedule_job(
        session,
        gcal.tenant_id,
        job.id,
        job.scheduled_start + timedelta(days=1),
        job.scheduled_end + timedelta(days=1),
    )
    await session.commit()
    await gcal.sync()
    [event] = gcal.live_events(calendar)
    assert event["start"]["dateTime"].startswith((job.scheduled_start).astimezone().date().isoformat()[:4])
    assert event["sequence"] == 1

    # Reassigned to a technician with a calendar of their own: the event moves there, keeping its id.
    conn = await gcal.connection()
    s = CalendarSettings.of(conn)
    own = (await gcal.owner.get("/settings/integrations/calendar")).status_code
    assert own == 200
    primary = gcal.emulator.users[0].email
    r = await gcal.owner.submit(
        f"/settings/integrations/calendar/{conn.id}/technicians", {f"tech_{gcal.tech_id}": primary}
    )
    assert r.status_code == 303
    await update_job(session, gcal.tenant_id, job.id, {"title": "Furnace tune-up (moved)"})
    await session.commit()
    await gcal.sync()
    assert not gcal.live_events(calendar) and [e["id"] for e in gcal.live_events(primary)] == [event["id"]]
    assert s.calendar_id == calendar

    await set_job_status(session, gcal.tenant_id, job.id, "cancelled")
    await session.commit()
    run = await gcal.sync()
    assert run is not None and run.deleted == 1 and not gcal.live_events()


async def test_issue17_item3_export_idempotent_under_lost_replies(gcal, session) -> None:
    """Google commits the insert and the reply is lost: the retry sends the same event id, 409 says it is
    there, and the calendar holds one event per job."""
    await _pick(gcal)
    gcal.emulator.faults.append(FaultRule("drop_after_commit", path=r"/events$", method="POST", count=3))
    for n in range(5):
        await gcal.job(24 + n * 3)
    for _ in range(6):
        await gcal.sync()
        pending = await session.scalar(
            select(LedgerRow.id).where(
                LedgerRow.connection_id == gcal.connection_id, LedgerRow.state != LedgerState.SYNCED
            )
        )
        if pending is None:
            break
        for row in await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == gcal.connection_id)):
            row.next_attempt_at = row.next_attempt_at - timedelta(hours=2)
        await session.commit()
    events = gcal.live_events()
    assert len(events) == 5 and len({e["extendedProperties"]["private"][MARK] for e in events}) == 5
