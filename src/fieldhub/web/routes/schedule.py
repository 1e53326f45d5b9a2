"""The schedule: a week view in the business's time zone, job pages, and technicians' time blocks."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.customers.service import list_customers
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.jobs import service
from fieldhub.core.jobs.models import Job, JobStatus
from fieldhub.core.jobs.schemas import JOB_FIELDS
from fieldhub.core.validation import Id, id_or_none
from fieldhub.web.deps import Ctx, ManagerCtx, WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data
from fieldhub.web.routes.subcontractors import sub_ticket_context
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows
STATUS_ACTIONS = {
    JobStatus.SCHEDULED: [
        (JobStatus.IN_PROGRESS, "Start"),
        (JobStatus.COMPLETED, "Complete"),
        (JobStatus.CANCELLED, "Cancel"),
    ],
    JobStatus.IN_PROGRESS: [
        (JobStatus.COMPLETED, "Complete"),
        (JobStatus.SCHEDULED, "Back to scheduled"),
        (JobStatus.CANCELLED, "Cancel"),
    ],
    JobStatus.COMPLETED: [],
    JobStatus.CANCELLED: [(JobStatus.SCHEDULED, "Reschedule")],
}


def _today(ctx: Ctx) -> date:
    return datetime.now(ZoneInfo(ctx.tenant.timezone)).date()


def _parse_local(values: dict[str, Any], keys: tuple[str, ...], tz: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the form's wall-clock times into aware datetimes; a time that isn't one becomes a field error."""
    out, errors = dict(values), {}
    for key in keys:
        text = str(values.get(key) or "").strip()
        if not text:
            errors[key] = "Required."
            continue
        try:
            out[key] = service.local_to_utc(datetime.fromisoformat(text), tz)
        except ValueError:
            errors[key] = "Enter a date and time."
    return out, errors


def _local(value: datetime, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime(LOCAL_FORMAT)


# ---------------------------------------------------------------- the week


@router.get("/schedule")
async def week_view(request: Request, ctx: WebCtx, week: str = "", tech: str = "") -> Response:
    try:
        day = date.fromisoformat(week) if week else _today(ctx)
    except ValueError:
        day = _today(ctx)
    technician_id = id_or_none(tech)
    layout = await service.load_week(ctx.db, ctx.tenant_id, ctx.tenant.timezone, day, technician_id=technician_id)
    return render(
        request,
        "schedule/week.html",
        {
            "week": layout,
            "today": _today(ctx),
            "tech": technician_id,
            "hours": list(range(layout.hour_from, layout.hour_to)),
            "msg": request.query_params.get("msg", ""),
        },
    )


# ---------------------------------------------------------------- jobs


async def _job_form(
    request: Request,
    ctx: Ctx,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    job: Job | None = None,
    status_code: int = 200,
    clash: list[Any] | None = None,
) -> Response:
    customers = await list_customers(ctx.db, ctx.tenant_id, active=True, per_page=200)
    options = [(c.id, c.display_name + (f" ({c.company})" if c.company else "")) for c in customers.items]
    if job and not job.customer.active:
        options.insert(0, (job.customer.id, job.customer.display_name + " (inactive)"))
    chosen = {str(i) for i in values.get("technician_ids", [])}
    return render(
        request,
        "schedule/job_form.html",
        {
            "job": job,
            "values": echo({k: v for k, v in values.items() if k != "technician_ids"}),
            "chosen": chosen,
            "errors": errors or {},
            "customers": options,
            "technicians": await service.list_technicians(ctx.db, ctx.tenant_id),
            "clash": clash or [],
        },
        status_code=status_code,
    )


async def _posted_job(request: Request, ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(what the page echoes, what the service gets, errors found before the service)."""
    values: dict[str, Any] = await form_data(request)
    values["technician_ids"] = [v for v in (await request.form()).getlist("technician_ids") if isinstance(v, str)]
    data, errors = _parse_local(values, ("scheduled_start", "scheduled_end"), ctx.tenant.timezone)
    return values, data, errors


async def _save_job(request: Request, ctx: Ctx, job: Job | None) -> Response:
    values, data, errors = await _posted_job(request, ctx)
    try:
        if errors:
            raise ValidationFailed(errors)
        clash = await _clash(ctx, data, job) if not values.get("override_clash") else []
        if clash:
            # A warning, not a refusal: the technician is busy then (time off, or busy in their calendar).
            return await _job_form(request, ctx, values, {}, job, status_code=409, clash=clash)
        if job is None:
            job = await service.create_job(ctx.db, ctx.tenant_id, data)
            msg = "created"
        else:
            await service.update_job(ctx.db, ctx.tenant_id, job.id, data)
            msg = "saved"
    except ValidationFailed as exc:
        return await _job_form(request, ctx, values, {**errors, **exc.errors}, job, status_code=400)
    return RedirectResponse(f"/schedule/jobs/{job.id}?msg={msg}", status_code=303)


async def _clash(ctx: Ctx, data: dict[str, Any], job: Job | None) -> list[Any]:
    """The chosen technicians' time blocks the job's new time overlaps (none when the time did not change)."""
    start, end = data.get("scheduled_start"), data.get("scheduled_end")
    if not isinstance(start, datetime) or not isinstance(end, datetime) or end <= start:
        return []
    techs = [int(t) for t in data.get("technician_ids", []) if str(t).isdigit()]
    if job is not None and (job.scheduled_start, job.scheduled_end) == (start, end):
        return []
    return await service.clashes(ctx.db, ctx.tenant_id, techs, start, end)


@router.get("/schedule/jobs/new")
async def job_new(request: Request, ctx: WebCtx, day: str = "", customer_id: str = "") -> Response:
    try:
        start_day = date.fromisoformat(day) if day else _today(ctx)
    except ValueError:
        start_day = _today(ctx)
    start = datetime.combine(start_day, datetime.min.time()).replace(hour=9)
    values = {
        "customer_id": customer_id,
        "scheduled_start": start.strftime(LOCAL_FORMAT),
        "scheduled_end": (start + timedelta(hours=2)).strftime(LOCAL_FORMAT),
        "technician_ids": [],
    }
    return await _job_form(request, ctx, values)


@router.post("/schedule/jobs/new")
async def job_create(request: Request, ctx: WebCtx) -> Response:
    return await _save_job(request, ctx, None)


@router.get("/schedule/jobs/{job_id:int}")
async def job_view(request: Request, ctx: WebCtx, job_id: Id) -> Response:
    return await job_page(request, ctx, job_id)


async def job_page(request: Request, ctx: Ctx, job_id: int, error: str = "", status_code: int = 200) -> Response:
    """The job's page (also shown again, with `error`, by a refused action on it)."""
    job = await service.get_job(ctx.db, ctx.tenant_id, job_id)
    zone = ZoneInfo(ctx.tenant.timezone)
    start, end = job.scheduled_start.astimezone(zone), job.scheduled_end.astimezone(zone)
    end_format = "%-I:%M %p" if end.date() == start.date() else "%a %b %-d, %-I:%M %p"
    subs = await sub_ticket_context(ctx, job)
    return render(
        request,
        "schedule/job_view.html",
        {
            "job": job,
            "actions": STATUS_ACTIONS[JobStatus(job.status)],
            "week": service.week_start(start.date()).isoformat(),
            "when": f"{start.strftime('%a %b %-d, %-I:%M %p')} – {end.strftime(end_format)}",
            "msg": request.query_params.get("msg", ""),
            "error": error,
            **subs,
        },
        status_code=status_code,
    )


@router.get("/schedule/jobs/{job_id:int}/edit")
async def job_edit(request: Request, ctx: WebCtx, job_id: Id) -> Response:
    job = await service.get_job(ctx.db, ctx.tenant_id, job_id)
    values: dict[str, Any] = {f: getattr(job, f) for f in JOB_FIELDS}
    values["scheduled_start"] = _local(job.scheduled_start, ctx.tenant.timezone)
    values["scheduled_end"] = _local(job.scheduled_end, ctx.tenant.timezone)
    values["technician_ids"] = [u.id for u in job.technicians]
    return await _job_form(request, ctx, values, job=job)


@router.post("/schedule/jobs/{job_id:int}/edit")
async def job_update(request: Request, ctx: WebCtx, job_id: Id) -> Response:
    job = await service.get_job(ctx.db, ctx.tenant_id, job_id)
    return await _save_job(request, ctx, job)


@router.post("/schedule/jobs/{job_id:int}/status")
async def job_status(request: Request, ctx: WebCtx, job_id: Id) -> Response:
    values = await form_data(request)
    try:
        await service.set_job_status(ctx.db, ctx.tenant_id, job_id, values.get("status", ""))
    except ValidationFailed as exc:
        return await job_page(request, ctx, job_id, " ".join(exc.errors.values()), status_code=400)
    return RedirectResponse(f"/schedule/jobs/{job_id}?msg=status", status_code=303)


# ---------------------------------------------------------------- time blocks


async def _block_form(
    request: Request, ctx: Ctx, values: dict[str, Any], errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    technicians = await service.list_technicians(ctx.db, ctx.tenant_id)
    return render(
        request,
        "schedule/block_form.html",
        {"values": echo(values), "errors": errors or {}, "technicians": [(u.id, u.name) for u in technicians]},
        status_code=status_code,
    )


@router.get("/schedule/time-blocks/new")
async def block_new(request: Request, ctx: WebCtx, day: str = "", user_id: str = "") -> Response:
    try:
        start_day = date.fromisoformat(day) if day else _today(ctx)
    except ValueError:
        start_day = _today(ctx)
    start = datetime.combine(start_day, datetime.min.time()).replace(hour=12)
    values = {
        "user_id": user_id,
        "starts_at": start.strftime(LOCAL_FORMAT),
        "ends_at": (start + timedelta(hours=1)).strftime(LOCAL_FORMAT),
    }
    return await _block_form(request, ctx, values)


@router.post("/schedule/time-blocks/new")
async def block_create(request: Request, ctx: WebCtx) -> Response:
    values = await form_data(request)
    data, errors = _parse_local(values, ("starts_at", "ends_at"), ctx.tenant.timezone)
    try:
        if errors:
            raise ValidationFailed(errors)
        block = await service.create_time_block(ctx.db, ctx.tenant_id, data)
    except ValidationFailed as exc:
        return await _block_form(request, ctx, values, {**errors, **exc.errors}, status_code=400)
    local_day = block.starts_at.astimezone(ZoneInfo(ctx.tenant.timezone)).date()
    return RedirectResponse(f"/schedule?week={local_day.isoformat()}&msg=blocked", status_code=303)


@router.post("/schedule/time-blocks/{block_id:int}/delete")
async def block_delete(request: Request, ctx: ManagerCtx, block_id: Id) -> Response:
    block = await service.get_time_block(ctx.db, ctx.tenant_id, block_id)
    local_day = block.starts_at.astimezone(ZoneInfo(ctx.tenant.timezone)).date()
    await service.delete_time_block(ctx.db, ctx.tenant_id, block_id)
    return RedirectResponse(f"/schedule?week={local_day.isoformat()}&msg=unblocked", status_code=303)
