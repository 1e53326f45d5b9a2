"""Outlook through Microsoft Graph on the same calendar capability (issue 17 items 3-5 for Graph): jobs out with
transactionId (a lost reply's retry is the same event), calendarView/delta in, a delta reset (410) read in full
with no doubles, busy time blocking, and an event moved in Outlook moving its job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from fieldhub.capabilities.calendar.inbound import sync_in
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.customers.service import create_customer
from fieldhub.core.jobs.models import Job, TimeBlock
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.models import LedgerRow
from tests.capabilities.calendar.conftest import CalendarSetup
from tests.hub.oauth.conftest import consent


def _at(hours: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(hours=hours)


def _utc(value: datetime) -> dict:
    return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


async def _control(emu, method: str, path: str, body: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu), base_url="http://graph") as client:
        return await client.request(method, f"/_emulator/calendar/{path}", json=body)


async def test_issue17_item3_outlook_jobs_out_delta_in_reset_and_moves(app, owner, session, biz) -> None:
    response, _ = await consent(owner, "outlook")
    assert response.status_code in (200, 302, 303), response.text
    conn = await session.scalar(select(Connection).where(Connection.provider == "outlook"))
    conn_id = conn.id
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Dana Whitfield"})
    await session.commit()
    emu = app.state.endpoints.emulators["outlook"]
    setup = CalendarSetup(app, env_for(app), session, biz, owner, conn.id, emu, customer.id, biz.tenant.id, biz.tech.id)
    r = await owner.submit(f"/settings/integrations/calendar/{conn_id}/calendar", {"calendar_id": "new"})
    assert r.status_code == 303
    calendar = CalendarSettings.of(await setup.connection()).calendar_id
    assert emu.mail_calendars[calendar]["calendar"]["name"] == "fieldhub jobs"

    # Out: Graph commits the first create and the reply is lost; the retry's transactionId returns that event.
    emu.faults.append(FaultRule("drop_after_commit", path=r"/events$", method="POST", count=2))
    ids = [(await setup.job(24 + 3 * n)).id for n in range(3)]
    for _ in range(5):
        await setup.sync()
        for row in await session.scalars(select(LedgerRow)):
            row.next_attempt_at = row.next_attempt_at - timedelta(hours=2)
        await session.commit()
    live = [s for s in emu.mail_events.values() if not s["deleted"]]
    assert len(live) == 3 and len({s["event"]["transactionId"] for s in live}) == 3

    # In: a personal appointment blocks the technician; the job's own events change nothing.
    await _control(
        emu,
        "POST",
        f"calendars/{calendar}/events",
        {"subject": "Dentist", "start": _utc(_at(40)), "end": _utc(_at(41))},
    )
    done = await sync_in(setup.env, conn_id, trigger="manual")
    assert done is not None and done.run.status == "success", done.run.errors if done and done.run else None
    session.expire_all()
    assert [b.reason for b in await session.scalars(select(TimeBlock))] == ["Dentist"]
    assert await session.scalar(select(func.count()).select_from(Job)) == 3

    # Moved in Outlook: the job moves.
    job_event = next(s["event"] for s in live)
    await _control(emu, "PATCH", f"events/{job_event['id']}", {"start": _utc(_at(60)), "end": _utc(_at(62))})
    moved = await sync_in(setup.env, conn_id, trigger="manual")
    assert moved is not None and moved.run.updated == 1

    # A delta reset: 410, read in full, nothing doubled.
    await _control(emu, "POST", "reset_delta")
    await _control(
        emu,
        "POST",
        f"calendars/{calendar}/events",
        {"subject": "School run", "start": _utc(_at(44)), "end": _utc(_at(45))},
    )
    again = await sync_in(setup.env, conn_id, trigger="manual")
    assert again is not None and again.full_reads == 1
    session.expire_all()
    assert sorted(b.reason for b in await session.scalars(select(TimeBlock))) == ["Dentist", "School run"]
    assert await session.scalar(select(func.count()).select_from(Job)) == 3
    starts = sorted(j.scheduled_start for j in await session.scalars(select(Job).where(Job.id.in_(ids))))
    assert _at(60) in starts
