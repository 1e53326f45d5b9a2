"""Jobs and time blocks: times, technicians of this business only, status moves, events, the week layout."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role
from fieldhub.core.customers.service import create_customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import DomainEventRow
from fieldhub.core.jobs import service as jobs
from fieldhub.core.jobs.models import JobStatus, TimeBlock

CHICAGO = ZoneInfo("America/Chicago")


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """Wall-clock time in Chicago, 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=CHICAGO)


@pytest.fixture
async def setup(session, biz, other_biz):
    customer = await create_customer(
        session,
        biz.tenant.id,
        {"display_name": "Ada", "service_line1": "12 Elm St", "service_city": "Austin", "service_region": "TX"},
    )
    theirs = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    tech2 = await accounts.create_user(
        session, tenant=biz.tenant, email="t2@a.test", name="Tara", role=Role.TECHNICIAN, password="x" * 12
    )
    await session.commit()
    return {"customer": customer, "theirs": theirs, "tech2": tech2}


def _job(setup, biz, **over):
    data = {
        "customer_id": setup["customer"].id,
        "title": "Fix the boiler",
        "scheduled_start": at(10, 9),
        "scheduled_end": at(10, 11),
        "technician_ids": [biz.tech.id],
    }
    return {**data, **over}


async def _events(session, entity):
    rows = await session.scalars(
        select(DomainEventRow).where(DomainEventRow.entity == entity).order_by(DomainEventRow.id)
    )
    return [(e.record_id, e.version, e.kind) for e in rows]


async def test_create_stores_utc_fills_address_and_emits(session, biz, setup):
    job = await jobs.create_job(session, biz.tenant.id, _job(setup, biz))
    await session.commit()
    assert job.scheduled_start == datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # CDT (UTC-5) since 8 March
    assert job.address == "12 Elm St, Austin, TX"
    assert [u.id for u in job.technicians] == [biz.tech.id]
    assert job.status == JobStatus.SCHEDULED and job.version == 1
    assert await _events(session, "job") == [(job.id, 1, "created")]


async def test_end_after_start_and_technicians_of_this_business(session, biz, other_biz, setup):
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_job(session, biz.tenant.id, _job(setup, biz, scheduled_end=at(10, 9)))
    assert "scheduled_end" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_job(
            session,
            biz.tenant.id,
            _job(setup, biz, customer_id=setup["theirs"].id, technician_ids=[other_biz.tech.id]),
        )
    assert set(exc.value.errors) == {"customer_id", "technician_ids"}
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_job(session, biz.tenant.id, _job(setup, biz, title=" "))
    assert exc.value.errors == {"title": "Required."}
    # A dispatcher of this business is not a technician.
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_job(session, biz.tenant.id, _job(setup, biz, technician_ids=[biz.dispatcher.id]))
    assert "technician_ids" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_job(session, biz.tenant.id, _job(setup, biz, scheduled_start=datetime(2026, 3, 10, 9)))
    assert "scheduled_start" in exc.value.errors  # naive: which time zone? refused
    assert (await jobs.list_jobs(session, biz.tenant.id)).total == 0


async def test_reschedule_assign_and_status(session, biz, setup):
    job = await jobs.create_job(session, biz.tenant.id, _job(setup, biz))
    job = await jobs.reschedule_job(session, biz.tenant.id, job.id, at(11, 13), at(11, 15, 30))
    assert job.version == 2 and job.scheduled_end - job.scheduled_start == timedelta(hours=2, minutes=30)
    with pytest.raises(ValidationFailed):
        await jobs.reschedule_job(session, biz.tenant.id, job.id, at(11, 13), at(11, 12))
    job = await jobs.assign_technicians(session, biz.tenant.id, job.id, [setup["tech2"].id, biz.tech.id])
    assert {u.id for u in job.technicians} == {setup["tech2"].id, biz.tech.id} and job.version == 3
    same = await jobs.assign_technicians(session, biz.tenant.id, job.id, [setup["tech2"].id, biz.tech.id])
    assert same.version == 3
    job = await jobs.set_job_status(session, biz.tenant.id, job.id, "in_progress")
    job = await jobs.set_job_status(session, biz.tenant.id, job.id, JobStatus.COMPLETED)
    assert job.status == JobStatus.COMPLETED and job.version == 5
    with pytest.raises(ValidationFailed) as exc:
        await jobs.set_job_status(session, biz.tenant.id, job.id, "cancelled")
    assert "status" in exc.value.errors
    with pytest.raises(ValidationFailed):
        await jobs.set_job_status(session, biz.tenant.id, job.id, "on_holiday")
    await session.commit()
    assert [k for _, _, k in await _events(session, "job")] == [
        "created",
        "updated",
        "updated",
        "in_progress",
        "completed",
    ]
    assert [v for _, v, _ in await _events(session, "job")] == [1, 2, 3, 4, 5]


async def test_another_business_gets_not_found(session, biz, other_biz, setup):
    job = await jobs.create_job(session, biz.tenant.id, _job(setup, biz))
    block = await jobs.create_time_block(
        session, biz.tenant.id, {"user_id": biz.tech.id, "starts_at": at(10, 12), "ends_at": at(10, 13)}
    )
    await session.commit()
    with pytest.raises(NotFound):
        await jobs.get_job(session, other_biz.tenant.id, job.id)
    with pytest.raises(NotFound):
        await jobs.set_job_status(session, other_biz.tenant.id, job.id, "cancelled")
    with pytest.raises(NotFound):
        await jobs.delete_time_block(session, other_biz.tenant.id, block.id)
    assert (await jobs.list_jobs(session, other_biz.tenant.id)).total == 0


async def test_time_blocks(session, biz, other_biz, setup):
    block = await jobs.create_time_block(
        session,
        biz.tenant.id,
        {"user_id": biz.tech.id, "starts_at": at(10, 12), "ends_at": at(10, 13), "reason": "Dentist"},
    )
    assert block.source == "manual" and block.version == 1
    with pytest.raises(ValidationFailed) as exc:
        await jobs.create_time_block(
            session, biz.tenant.id, {"user_id": other_biz.tech.id, "starts_at": at(10, 12), "ends_at": at(10, 11)}
        )
    assert set(exc.value.errors) == {"user_id", "ends_at"}
    await jobs.delete_time_block(session, biz.tenant.id, block.id)
    await session.commit()
    assert await session.scalar(select(TimeBlock)) is None
    assert await _events(session, "time_block") == [(block.id, 1, "created"), (block.id, 2, "deleted")]


def test_week_starts_on_monday():
    assert jobs.week_start(date(2026, 3, 11)) == date(2026, 3, 9)
    assert jobs.week_start(date(2026, 3, 9)) == date(2026, 3, 9)
    assert jobs.week_start(date(2026, 3, 15)) == date(2026, 3, 9)


async def test_week_places_entries_in_local_time(session, biz, setup):
    # Monday 9 March 2026, 23:00–01:00 local crosses midnight: it shows on Monday and Tuesday.
    late = await jobs.create_job(
        session, biz.tenant.id, _job(setup, biz, title="Night call", scheduled_start=at(9, 23), scheduled_end=at(10, 1))
    )
    a = await jobs.create_job(
        session, biz.tenant.id, _job(setup, biz, title="A", scheduled_start=at(11, 9), scheduled_end=at(11, 11))
    )
    b = await jobs.create_job(
        session,
        biz.tenant.id,
        _job(setup, biz, title="B", scheduled_start=at(11, 10), scheduled_end=at(11, 12), technician_ids=[]),
    )
    # Next week: not in this one.
    await jobs.create_job(session, biz.tenant.id, _job(setup, biz, scheduled_start=at(16, 9), scheduled_end=at(16, 10)))
    await jobs.create_time_block(
        session, biz.tenant.id, {"user_id": biz.tech.id, "starts_at": at(13, 6), "ends_at": at(13, 8)}
    )
    await session.commit()
    week = await jobs.load_week(session, biz.tenant.id, "America/Chicago", date(2026, 3, 12))
    assert week.start == date(2026, 3, 9) and week.prev == date(2026, 3, 2) and week.next == date(2026, 3, 16)
    by_day = {d.day.day: [(e.kind, e.title, e.top, e.bottom) for e in d.entries] for d in week.days}
    assert by_day[9] == [("job", "Night call", 23 * 60, 24 * 60)]
    assert by_day[10] == [("job", "Night call", 0, 60)]
    assert by_day[11] == [("job", "A", 9 * 60, 11 * 60), ("job", "B", 10 * 60, 12 * 60)]
    assert by_day[13] == [("block", "Unavailable", 6 * 60, 8 * 60)]
    assert set(by_day) == {9, 10, 11, 12, 13, 14, 15} and by_day[15] == []
    wed = {e.title: e for e in week.days[2].entries}
    assert (wed["A"].lane, wed["B"].lane, wed["A"].lanes, wed["B"].lanes) == (0, 1, 2, 2)
    assert wed["B"].color == jobs.UNASSIGNED_COLOR and wed["A"].color == biz.tech.color
    assert week.hour_from == 0 and week.hour_to == 24
    assert late.id in {e.id for e in week.days[0].entries} and a.id != b.id

    only_tara = await jobs.load_week(
        session, biz.tenant.id, "America/Chicago", date(2026, 3, 12), technician_id=setup["tech2"].id
    )
    assert all(not d.entries for d in only_tara.days)
