"""Google's watch channel wakes an incremental read within seconds (issue 17 item 6)."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import select

from fieldhub.capabilities.calendar import push
from fieldhub.core.jobs.models import TimeBlock
from tests.capabilities.calendar.test_export import _pick
from tests.capabilities.calendar.test_import import _user_edit, _when


async def _until(check, within: float = 5.0) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "not within the time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_issue17_item6_a_watch_notice_reads_the_change_within_seconds(gcal, session) -> None:
    gcal.emulator.webhook_transport = httpx.ASGITransport(app=gcal.app)  # Google's POSTs reach this hub
    calendar = await _pick(gcal)  # picking the calendar opens a channel on it
    [channel] = gcal.emulator.channels.values()
    assert channel["calendar"] == calendar and channel["address"].endswith("/calendar/push/google_calendar")
    await _until(lambda: _delivered(gcal, "sync"))

    await _user_edit(gcal, "POST", f"{calendar}/events", {"summary": "School run", **_when(30)})

    async def blocked() -> bool:
        await push.idle()
        session.expire_all()
        return bool(list(await session.scalars(select(TimeBlock.reason))))

    took = await _until(blocked)
    assert took < 2.0
    assert [d["status"] for d in gcal.emulator.deliveries] == [200, 200]

    # A notice with a wrong token is refused and reads nothing.
    forged = await gcal.owner.post(
        "/calendar/push/google_calendar",
        headers={
            "X-Goog-Channel-ID": channel and next(iter(gcal.emulator.channels)),
            "X-Goog-Channel-Token": "guess",
            "X-Goog-Resource-State": "exists",
        },
    )
    assert forged.status_code == 401


async def _delivered(gcal, state: str) -> bool:
    return any(d["state"] == state and d["status"] == 200 for d in gcal.emulator.deliveries)


async def test_issue17_item6_channels_are_renewed_before_they_expire(gcal) -> None:
    calendar = await _pick(gcal)
    conn = await gcal.connection()
    first = conn.settings["calendar_push"][calendar]["id"]
    assert await push.ensure_watching(gcal.env, gcal.connection_id) == 0  # a week left: nothing to do
    gcal.emulator.channels[first]["expiration"] = 0
    conn.settings = {
        **conn.settings,
        "calendar_push": {calendar: {**conn.settings["calendar_push"][calendar], "expiration": "1"}},
    }
    await gcal.session.commit()
    assert await push.watch_all(gcal.env) == 1
    conn = await gcal.connection()
    assert conn.settings["calendar_push"][calendar]["id"] != first
    assert first not in gcal.emulator.channels  # the old one was stopped
