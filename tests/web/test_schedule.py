"""Schedule pages: the week view in the business's time zone, job forms, status, time blocks, tenancy."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.jobs import service as jobs
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock

CHICAGO = ZoneInfo("America/Chicago")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CHICAGO)


def day_columns(html: str) -> dict[str, str]:
    """{aria-label of the day: its HTML} for the seven columns of the week view."""
    parts = re.split(r'<section class="week-day[^"]*" aria-label="([^"]+)">', html)
    return {parts[i]: parts[i + 1].split("</section>")[0] for i in range(1, len(parts), 2)}


@pytest.fixture
async def customer(session, biz):
    c = await create_customer(session, biz.tenant.id, {"display_name": "Grace Hopper", "service_line1": "1 Navy Way"})
    await session.commit()
    return c


async def test_week_view_places_jobs_by_local_day(owner, session, biz, customer):
    biz.tech.color = "#ec4899"
    # 23:30 on Wednesday in Chicago is already Thursday in UTC: it must show on Wednesday.
    await jobs.create_job(
        session,
        biz.tenant.id,
        {
            "customer_id": customer.id,
            "title": "Late leak",
            "scheduled_start": at(11, 23, 30),
            "scheduled_end": at(11, 23, 59),
            "technician_ids": [biz.tech.id],
        },
    )
    await jobs.create_time_block(
        session,
        biz.tenant.id,
        {"user_id": biz.tech.id, "starts_at": at(13, 12), "ends_at": at(13, 13), "reason": "Dentist"},
    )
    await session.commit()

    r = await owner.get("/schedule?week=2026-03-12")
    assert r.status_code == 200
    days = day_columns(r.text)
    assert list(days) == [
        "Monday 9 March",
        "Tuesday 10 March",
        "Wednesday 11 March",
        "Thursday 12 March",
        "Friday 13 March",
        "Saturday 14 March",
        "Sunday 15 March",
    ]
    assert "Late leak" in days["Wednesday 11 March"] and "Late leak" not in days["Thursday 12 March"]
    assert "11:30–11:59 PM" in days["Wednesday 11 March"]
    assert "#ec4899" in days["Wednesday 11 March"]  # the technician's colour
    assert 'class="week-entry block"' in days["Friday 13 March"] and "Dentist" in days["Friday 13 March"]
    assert 'href="/schedule?week=2026-03-02"' in r.text and 'href="/schedule?week=2026-03-16"' in r.text

    empty = await owner.get("/schedule?week=2026-03-16")
    assert "Late leak" not in empty.text and "Nothing scheduled" in empty.text
    assert (await owner.get("/schedule?week=not-a-date")).status_code == 200


async def test_create_job_from_the_form(owner, session, biz, customer):
    form = await owner.get("/schedule/jobs/new?day=2026-03-10")
    assert form.status_code == 200 and 'value="2026-03-10T09:00"' in form.text
    r = await owner.submit(
        "/schedule/jobs/new",
        {
            "customer_id": str(customer.id),
            "title": "Install water heater",
            "scheduled_start": "2026-03-10T09:00",
            "scheduled_end": "2026-03-10T12:30",
            "technician_ids": [str(biz.tech.id)],
        },
    )
    assert r.status_code == 303, r.text
    job = await session.scalar(select(Job))
    assert job.scheduled_start == at(10, 9) and job.scheduled_end == at(10, 12, 30)
    assert [u.id for u in job.technicians] == [biz.tech.id] and job.address == "1 Navy Way"
    page = await owner.get(r.headers["location"])
    assert "Install water heater" in page.text and "Job scheduled." in page.text


async def test_bad_job_form_shows_errors_and_changes_nothing(owner, session, biz, other_biz, customer):
    r = await owner.submit(
        "/schedule/jobs/new",
        {
            "customer_id": str(customer.id),
            "title": "Backwards",
            "scheduled_start": "2026-03-10T12:00",
            "scheduled_end": "2026-03-10T09:00",
            "technician_ids": [str(other_biz.tech.id)],
        },
    )
    assert r.status_code == 400
    assert 'id="e-scheduled_end">Must be after the start.' in r.text
    assert 'id="e-technician_ids">Choose technicians from the list.' in r.text
    assert 'value="Backwards"' in r.text  # what was typed comes back
    r = await owner.submit(
        "/schedule/jobs/new", {"customer_id": str(customer.id), "title": "x", "scheduled_start": "soon"}
    )
    assert r.status_code == 400 and "Enter a date and time." in r.text
    assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_edit_and_status(owner, session, biz, customer):
    job = await jobs.create_job(
        session,
        biz.tenant.id,
        {"customer_id": customer.id, "title": "Tune-up", "scheduled_start": at(10, 9), "scheduled_end": at(10, 10)},
    )
    await session.commit()
    edit = await owner.get(f"/schedule/jobs/{job.id}/edit")
    assert 'value="2026-03-10T09:00"' in edit.text
    r = await owner.submit(
        f"/schedule/jobs/{job.id}/edit",
        {
            "customer_id": str(customer.id),
            "title": "Tune-up",
            "scheduled_start": "2026-03-12T14:00",
            "scheduled_end": "2026-03-12T15:00",
        },
    )
    assert r.status_code == 303
    r = await owner.submit(f"/schedule/jobs/{job.id}/status", {"status": "completed"})
    assert r.status_code == 303
    r = await owner.submit(f"/schedule/jobs/{job.id}/status", {"status": "cancelled"})
    assert r.status_code == 400 and "can&#39;t become cancelled" in r.text
    await session.refresh(job)
    assert job.status == JobStatus.COMPLETED and job.scheduled_start == at(12, 14) and job.version == 3


async def test_time_blocks_from_the_page(owner, session, biz):
    r = await owner.submit(
        "/schedule/time-blocks/new",
        {"user_id": str(biz.tech.id), "starts_at": "2026-03-10T12:00", "ends_at": "2026-03-10T11:00"},
    )
    assert r.status_code == 400 and 'id="e-ends_at"' in r.text
    r = await owner.submit(
        "/schedule/time-blocks/new",
        {
            "user_id": str(biz.tech.id),
            "starts_at": "2026-03-10T12:00",
            "ends_at": "2026-03-10T13:00",
            "reason": "Lunch",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/schedule?week=2026-03-10")
    block = await session.scalar(select(TimeBlock))
    assert block.source == "manual" and block.starts_at == at(10, 12)
    r = await owner.submit(f"/schedule/time-blocks/{block.id}/delete")
    assert r.status_code == 303
    session.expire_all()
    assert await session.scalar(select(func.count()).select_from(TimeBlock)) == 0


async def test_another_business_gets_404(owner, session, other_biz):
    theirs = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    job = await jobs.create_job(
        session,
        other_biz.tenant.id,
        {"customer_id": theirs.id, "title": "Secret", "scheduled_start": at(10, 9), "scheduled_end": at(10, 10)},
    )
    block = await jobs.create_time_block(
        session, other_biz.tenant.id, {"user_id": other_biz.tech.id, "starts_at": at(10, 9), "ends_at": at(10, 10)}
    )
    await session.commit()
    assert (await owner.get(f"/schedule/jobs/{job.id}")).status_code == 404
    assert (await owner.get(f"/schedule/jobs/{job.id}/edit")).status_code == 404
    assert (await owner.submit(f"/schedule/jobs/{job.id}/status", {"status": "cancelled"})).status_code == 404
    assert (await owner.submit(f"/schedule/time-blocks/{block.id}/delete")).status_code == 404
    week = await owner.get("/schedule?week=2026-03-10")
    assert "Secret" not in week.text
    assert await session.scalar(select(Job.status).where(Job.id == job.id)) == JobStatus.SCHEDULED


def test_week_start_is_monday():
    assert jobs.week_start(date(2026, 3, 15)) == date(2026, 3, 9)
