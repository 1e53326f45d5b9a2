"""Jobs, their technicians and technicians' time blocks: the only writer of those tables, per tenant.

Also lays out a week of the schedule in the business's time zone, so a page only has to draw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Role, User
from fieldhub.core.customers.models import Customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import record_event
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock, job_assignments
from fieldhub.core.jobs.schemas import JOB_FIELDS, JobIn, TimeBlockIn
from fieldhub.core.paging import Page, paginate
from fieldhub.core.validation import parse

# Where each status may go next. A completed job stays completed; a cancelled one can be put back.
NEXT_STATUS: dict[JobStatus, set[JobStatus]] = {
    JobStatus.SCHEDULED: {JobStatus.IN_PROGRESS, JobStatus.COMPLETED, JobStatus.CANCELLED},
    JobStatus.IN_PROGRESS: {JobStatus.SCHEDULED, JobStatus.COMPLETED, JobStatus.CANCELLED},
    JobStatus.COMPLETED: set(),
    JobStatus.CANCELLED: {JobStatus.SCHEDULED},
}
MAX_JOB_LENGTH = timedelta(days=14)
UNASSIGNED_COLOR = "#6b7280"


def local_to_utc(value: datetime, tz: str) -> datetime:
    """A wall-clock time typed in the business's time zone, as UTC (naive values are taken as local)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


# ---------------------------------------------------------------- jobs


def _job_data(job: Job) -> dict[str, Any]:
    return {
        "title": job.title,
        "status": str(job.status),
        "scheduled_start": job.scheduled_start.isoformat(),
        "scheduled_end": job.scheduled_end.isoformat(),
        "technician_ids": sorted(u.id for u in job.technicians),
    }


async def _technicians(session: AsyncSession, tenant_id: int, ids: Sequence[int], key: str) -> list[User]:
    """The tenant's active technicians with these ids, in the order given; anything else is refused."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {
        u.id: u
        for u in await session.scalars(
            select(User).where(
                User.tenant_id == tenant_id, User.id.in_(wanted), User.role == Role.TECHNICIAN, User.active
            )
        )
    }
    if len(found) != len(wanted):
        raise ValidationFailed.one(key, "Choose technicians from the list.")
    return [found[i] for i in wanted]


def _check_times(start: datetime, end: datetime, start_key: str, end_key: str) -> None:
    if end <= start:
        raise ValidationFailed.one(end_key, "Must be after the start.")
    if end - start > MAX_JOB_LENGTH:
        raise ValidationFailed.one(end_key, "Can't be more than 14 days after the start.")


async def _check_job(session: AsyncSession, tenant_id: int, values: JobIn) -> tuple[Customer, list[User]]:
    errors: dict[str, str] = {}
    customer = await session.scalar(
        select(Customer).where(Customer.id == values.customer_id, Customer.tenant_id == tenant_id)
    )
    if customer is None:
        errors["customer_id"] = "Choose a customer from the list."
    try:
        _check_times(values.scheduled_start, values.scheduled_end, "scheduled_start", "scheduled_end")
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        techs = await _technicians(session, tenant_id, values.technician_ids, "technician_ids")
    except ValidationFailed as exc:
        errors.update(exc.errors)
        techs = []
    if errors:
        raise ValidationFailed(errors)
    assert customer is not None
    return customer, techs


def _service_address(customer: Customer) -> str:
    parts = [
        customer.service_line1 or customer.billing_line1,
        customer.service_line2 if customer.service_line1 else customer.billing_line2,
        customer.service_city or customer.billing_city,
        " ".join(
            p
            for p in (
                customer.service_region or customer.billing_region,
                customer.service_postal_code or customer.billing_postal_code,
            )
            if p
        ),
    ]
    return ", ".join(p for p in parts if p)


async def create_job(session: AsyncSession, tenant_id: int, data: JobIn | Mapping[str, Any]) -> Job:
    values = parse(JobIn, data)
    customer, techs = await _check_job(session, tenant_id, values)
    job = Job(
        tenant_id=tenant_id,
        version=1,
        status=JobStatus.SCHEDULED,
        **{f: getattr(values, f) for f in JOB_FIELDS},
    )
    job.scheduled_start = values.scheduled_start.astimezone(UTC)
    job.scheduled_end = values.scheduled_end.astimezone(UTC)
    job.address = values.address or _service_address(customer)
    job.technicians = techs
    session.add(job)
    await session.flush()
    await record_event(session, "job", job, "created", _job_data(job))
    return job


async def get_job(session: AsyncSession, tenant_id: int, job_id: int) -> Job:
    job = await session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound("job", job_id)
    return job


def job_values(job: Job) -> dict[str, Any]:
    """The job as a JobIn-shaped dict: what an edit form starts from and an update merges over."""
    return {**{f: getattr(job, f) for f in JOB_FIELDS}, "technician_ids": [u.id for u in job.technicians]}


async def update_job(session: AsyncSession, tenant_id: int, job_id: int, data: JobIn | Mapping[str, Any]) -> Job:
    """Fields left out keep their value. Status changes go through set_job_status."""
    job = await get_job(session, tenant_id, job_id)
    given = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)
    values = parse(JobIn, {**job_values(job), **given})
    customer, techs = await _check_job(session, tenant_id, values)
    proposed = {f: getattr(values, f) for f in JOB_FIELDS}
    proposed["address"] = values.address or _service_address(customer)
    changed = [f for f in JOB_FIELDS if proposed[f] != getattr(job, f)]
    if [u.id for u in techs] != [u.id for u in job.technicians]:
        changed.append("technician_ids")
    if not changed:
        return job
    for f in JOB_FIELDS:
        setattr(job, f, proposed[f])
    job.scheduled_start = values.scheduled_start.astimezone(UTC)
    job.scheduled_end = values.scheduled_end.astimezone(UTC)
    job.technicians = techs
    job.version += 1
    await session.flush()
    await record_event(session, "job", job, "updated", {**_job_data(job), "changed": changed})
    return job


async def reschedule_job(
    session: AsyncSession, tenant_id: int, job_id: int, scheduled_start: datetime, scheduled_end: datetime
) -> Job:
    return await update_job(
        session, tenant_id, job_id, {"scheduled_start": scheduled_start, "scheduled_end": scheduled_end}
    )


async def assign_technicians(session: AsyncSession, tenant_id: int, job_id: int, user_ids: Sequence[int]) -> Job:
    return await update_job(session, tenant_id, job_id, {"technician_ids": list(user_ids)})


async def set_job_status(session: AsyncSession, tenant_id: int, job_id: int, status: JobStatus | str) -> Job:
    job = await get_job(session, tenant_id, job_id)
    try:
        target = JobStatus(status)
    except ValueError:
        raise ValidationFailed.one("status", f"Choose one of: {', '.join(JobStatus)}.") from None
    if target == job.status:
        return job
    if target not in NEXT_STATUS[JobStatus(job.status)]:
        raise ValidationFailed.one(
            "status", f"A {str(job.status).replace('_', ' ')} job can't become {target.replace('_', ' ')}."
        )
    job.status = target
    job.version += 1
    await session.flush()
    await record_event(session, "job", job, str(target), _job_data(job))
    return job


async def list_jobs(
    session: AsyncSession,
    tenant_id: int,
    *,
    starts_before: datetime | None = None,
    ends_after: datetime | None = None,
    technician_id: int | None = None,
    customer_id: int | None = None,
    status: JobStatus | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[Job]:
    """Jobs overlapping [ends_after, starts_before) when given, soonest first."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if starts_before is not None:
        query = query.where(Job.scheduled_start < starts_before)
    if ends_after is not None:
        query = query.where(Job.scheduled_end > ends_after)
    if technician_id is not None:
        query = query.where(
            Job.id.in_(select(job_assignments.c.job_id).where(job_assignments.c.user_id == technician_id))
        )
    if customer_id is not None:
        query = query.where(Job.customer_id == customer_id)
    if status is not None:
        query = query.where(Job.status == status)
    return await paginate(session, query.order_by(Job.scheduled_start, Job.id), page, per_page)


async def list_technicians(session: AsyncSession, tenant_id: int) -> list[User]:
    rows = await session.scalars(
        select(User).where(User.tenant_id == tenant_id, User.role == Role.TECHNICIAN, User.active).order_by(User.name)
    )
    return list(rows)


# ---------------------------------------------------------------- time blocks


def _block_data(block: TimeBlock) -> dict[str, Any]:
    return {
        "user_id": block.user_id,
        "starts_at": block.starts_at.isoformat(),
        "ends_at": block.ends_at.isoformat(),
        "source": block.source,
    }


async def create_time_block(
    session: AsyncSession, tenant_id: int, data: TimeBlockIn | Mapping[str, Any], *, source: str = "manual"
) -> TimeBlock:
    values = parse(TimeBlockIn, data)
    errors: dict[str, str] = {}
    try:
        await _technicians(session, tenant_id, [values.user_id], "user_id")
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        _check_times(values.starts_at, values.ends_at, "starts_at", "ends_at")
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    block = TimeBlock(
        tenant_id=tenant_id,
        version=1,
        user_id=values.user_id,
        starts_at=values.starts_at.astimezone(UTC),
        ends_at=values.ends_at.astimezone(UTC),
        reason=values.reason,
        source=source,
    )
    session.add(block)
    await session.flush()
    await record_event(session, "time_block", block, "created", _block_data(block))
    return block


async def get_time_block(session: AsyncSession, tenant_id: int, block_id: int) -> TimeBlock:
    block = await session.scalar(select(TimeBlock).where(TimeBlock.id == block_id, TimeBlock.tenant_id == tenant_id))
    if block is None:
        raise NotFound("time_block", block_id)
    return block


async def delete_time_block(session: AsyncSession, tenant_id: int, block_id: int) -> None:
    block = await get_time_block(session, tenant_id, block_id)
    # The deletion is a write too: its event carries the next version, so a listener can tell it from the last edit.
    block.version += 1
    await record_event(session, "time_block", block, "deleted", _block_data(block))
    await session.delete(block)
    await session.flush()


async def set_external_blocks(
    session: AsyncSession,
    tenant_id: int,
    external_key: str,
    user_ids: Sequence[int],
    starts_at: datetime | None,
    ends_at: datetime | None,
    reason: str,
    source: str,
) -> str:
    """Busy time from outside (a calendar event): the blocks `external_key` stands for become these, one per
    technician, or none (times None). Returns "created", "updated", "deleted" or "" when nothing changed."""
    current = list(
        await session.scalars(
            select(TimeBlock).where(TimeBlock.tenant_id == tenant_id, TimeBlock.external_key == external_key)
        )
    )
    if starts_at is None or ends_at is None or not user_ids:
        for block in current:
            await delete_time_block(session, tenant_id, block.id)
        return "deleted" if current else ""
    wanted = {u: (starts_at.astimezone(UTC), ends_at.astimezone(UTC), reason[:200]) for u in user_ids}
    have = {b.user_id: b for b in current}
    if set(have) == set(wanted) and all((b.starts_at, b.ends_at, b.reason) == wanted[u] for u, b in have.items()):
        return ""
    for block in current:
        await delete_time_block(session, tenant_id, block.id)
    for user_id in wanted:
        block = await create_time_block(
            session,
            tenant_id,
            {"user_id": user_id, "starts_at": starts_at, "ends_at": ends_at, "reason": reason[:200]},
            source=source,
        )
        block.external_key = external_key
    await session.flush()
    return "updated" if current else "created"


async def clashes(
    session: AsyncSession, tenant_id: int, user_ids: Sequence[int], start: datetime, end: datetime
) -> list[TimeBlock]:
    """Time blocks of these technicians that overlap [start, end): what a job form warns about."""
    if not user_ids:
        return []
    rows = await session.scalars(
        select(TimeBlock)
        .where(
            TimeBlock.tenant_id == tenant_id,
            TimeBlock.user_id.in_(list(user_ids)),
            TimeBlock.starts_at < end.astimezone(UTC),
            TimeBlock.ends_at > start.astimezone(UTC),
        )
        .order_by(TimeBlock.starts_at)
    )
    return list(rows)


async def list_time_blocks(
    session: AsyncSession,
    tenant_id: int,
    *,
    starts_before: datetime | None = None,
    ends_after: datetime | None = None,
    user_id: int | None = None,
    page: int = 1,
    per_page: int = 100,
) -> Page[TimeBlock]:
    query = select(TimeBlock).where(TimeBlock.tenant_id == tenant_id)
    if starts_before is not None:
        query = query.where(TimeBlock.starts_at < starts_before)
    if ends_after is not None:
        query = query.where(TimeBlock.ends_at > ends_after)
    if user_id is not None:
        query = query.where(TimeBlock.user_id == user_id)
    return await paginate(session, query.order_by(TimeBlock.starts_at, TimeBlock.id), page, per_page)


# ---------------------------------------------------------------- the week view


@dataclass
class WeekEntry:
    kind: str  # job | block
    id: int
    title: str
    detail: str
    color: str
    status: str
    starts_at: datetime  # local
    ends_at: datetime  # local
    top: int  # minutes after local midnight of its day (clipped to the day)
    bottom: int
    colors: list[str] = field(default_factory=list)  # every assigned technician's colour
    lane: int = 0
    lanes: int = 1


@dataclass
class WeekDay:
    day: date
    entries: list[WeekEntry]


@dataclass
class Week:
    start: date
    days: list[WeekDay]
    hour_from: int
    hour_to: int
    technicians: list[User]

    @property
    def prev(self) -> date:
        return self.start - timedelta(days=7)

    @property
    def next(self) -> date:
        return self.start + timedelta(days=7)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)


def week_start(day: date) -> date:
    """The Monday on or before `day`."""
    return day - timedelta(days=day.weekday())


def _place(day: date, start: datetime, end: datetime) -> tuple[int, int] | None:
    """Minutes after local midnight (wall clock) that [start, end) covers on `day`, or None."""
    if start.date() > day or end.date() < day or (end.date() == day and end.time() == time(0)):
        return None
    top = 0 if start.date() < day else start.hour * 60 + start.minute
    bottom = 24 * 60 if end.date() > day else end.hour * 60 + end.minute
    return top, max(bottom, top + 15)  # a tiny entry still gets a visible box


def _lanes(entries: list[WeekEntry]) -> None:
    """Side by side where entries overlap: each gets a lane, each overlapping cluster a lane count."""
    entries.sort(key=lambda e: (e.top, -e.bottom, e.kind != "job", e.id))
    cluster: list[WeekEntry] = []
    lane_ends: list[int] = []
    cluster_end = -1
    for entry in entries:
        if cluster and entry.top >= cluster_end:
            for member in cluster:
                member.lanes = len(lane_ends)
            cluster, lane_ends, cluster_end = [], [], -1
        lane = next((i for i, end in enumerate(lane_ends) if end <= entry.top), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(entry.bottom)
        else:
            lane_ends[lane] = entry.bottom
        entry.lane = lane
        cluster.append(entry)
        cluster_end = max(cluster_end, entry.bottom)
    for member in cluster:
        member.lanes = len(lane_ends)


async def load_week(
    session: AsyncSession, tenant_id: int, tz: str, day: date, *, technician_id: int | None = None
) -> Week:
    """The week (Monday to Sunday, in `tz`) holding `day`: jobs and time blocks placed by local time."""
    zone = ZoneInfo(tz)
    monday = week_start(day)
    start_utc = datetime.combine(monday, time(0), zone).astimezone(UTC)
    end_utc = datetime.combine(monday + timedelta(days=7), time(0), zone).astimezone(UTC)
    jobs = (
        await list_jobs(
            session, tenant_id, starts_before=end_utc, ends_after=start_utc, technician_id=technician_id, per_page=200
        )
    ).items
    blocks = (
        await list_time_blocks(
            session, tenant_id, starts_before=end_utc, ends_after=start_utc, user_id=technician_id, per_page=200
        )
    ).items
    technicians = await list_technicians(session, tenant_id)
    names = {u.id: u.name for u in technicians}
    colors = {u.id: u.color for u in technicians}

    days = [WeekDay(monday + timedelta(days=n), []) for n in range(7)]
    hour_from, hour_to = 7, 19
    for job in jobs:
        s, e = job.scheduled_start.astimezone(zone), job.scheduled_end.astimezone(zone)
        who = [u.name for u in job.technicians] or ["Unassigned"]
        tech_colors = [u.color for u in job.technicians] or [UNASSIGNED_COLOR]
        for d in days:
            spot = _place(d.day, s, e)
            if spot is None:
                continue
            d.entries.append(
                WeekEntry(
                    kind="job",
                    id=job.id,
                    title=job.title,
                    detail=f"{job.customer.display_name} · {', '.join(who)}",
                    color=tech_colors[0],
                    colors=tech_colors,
                    status=str(job.status),
                    starts_at=s,
                    ends_at=e,
                    top=spot[0],
                    bottom=spot[1],
                )
            )
    for block in blocks:
        s, e = block.starts_at.astimezone(zone), block.ends_at.astimezone(zone)
        for d in days:
            spot = _place(d.day, s, e)
            if spot is None:
                continue
            d.entries.append(
                WeekEntry(
                    kind="block",
                    id=block.id,
                    title=block.reason or "Unavailable",
                    detail=names.get(block.user_id, ""),
                    color=colors.get(block.user_id, UNASSIGNED_COLOR),
                    status=block.source,
                    starts_at=s,
                    ends_at=e,
                    top=spot[0],
                    bottom=spot[1],
                )
            )
    for d in days:
        _lanes(d.entries)
        for entry in d.entries:
            hour_from = min(hour_from, entry.top // 60)
            hour_to = max(hour_to, -(-entry.bottom // 60))
    return Week(start=monday, days=days, hour_from=hour_from, hour_to=min(hour_to, 24), technicians=technicians)
