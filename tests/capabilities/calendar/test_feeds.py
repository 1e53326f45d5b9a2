"""A technician's ICS feed: a secret link, shown once, that a new link or Revoke ends (issue 17 item 9)."""

from __future__ import annotations

import re

from icalendar import Calendar

from fieldhub.core.jobs.service import set_job_status


async def test_issue17_item9_ics_feed_per_technician_secret_and_revocable(gcal, session) -> None:
    job = await gcal.job(24, title="Boiler service")
    cancelled = await gcal.job(30, title="Called off")
    await set_job_status(session, gcal.tenant_id, cancelled.id, "cancelled")
    await session.commit()
    page = await gcal.owner.get("/settings/integrations/calendar")
    assert 'id="feeds"' in page.text and "Make link" in page.text

    made = await gcal.owner.submit(f"/settings/integrations/calendar/feeds/{gcal.tech_id}", {"action": "new"})
    assert made.status_code == 200
    url = re.search(r'value="(http[^"]+\.ics)" data-feed-url', made.text).group(1)
    path = url.split("testserver", 1)[-1] if "testserver" in url else "/" + url.split("/", 3)[3]
    feed = await gcal.owner.get(path)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    events = [c for c in Calendar.from_ical(feed.content).walk("VEVENT")]
    assert [str(e["summary"]) for e in events] == ["Boiler service"]  # the cancelled job is left out
    assert events[0].decoded("dtstart") == job.scheduled_start

    again = await gcal.owner.submit(f"/settings/integrations/calendar/feeds/{gcal.tech_id}", {"action": "new"})
    newer = re.search(r'value="(http[^"]+\.ics)" data-feed-url', again.text).group(1)
    assert newer != url and (await gcal.owner.get(path)).status_code == 404  # the old link ended
    revoked = await gcal.owner.submit(f"/settings/integrations/calendar/feeds/{gcal.tech_id}", {"action": "revoke"})
    assert revoked.status_code == 303
    new_path = newer.split("testserver", 1)[-1] if "testserver" in newer else "/" + newer.split("/", 3)[3]
    assert (await gcal.owner.get(new_path)).status_code == 404
