"""Subcontractors, the sub-tickets on a job page, and the subcontractor's private sub-ticket page (no login)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.accounts.models import Role, Tenant
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.jobs.models import Job
from fieldhub.core.subcontractors import service
from fieldhub.core.subcontractors.models import Subcontractor, SubTicketStatus
from fieldhub.core.subcontractors.schemas import SUBCONTRACTOR_FIELDS
from fieldhub.core.validation import Id
from fieldhub.web.deps import DB, Ctx, WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
# Who gives work out: those who run the schedule. A technician sees sub-tickets on a job and nothing more.
DISPATCH_ROLES = (Role.OWNER, Role.ADMIN, Role.DISPATCHER)


def _dispatcher(ctx: Ctx) -> Ctx:
    if Role(ctx.user.role) not in DISPATCH_ROLES:
        raise HTTPException(403, "Subcontractors and sub-tickets are managed by the Owner, an Admin or a Dispatcher.")
    return ctx


def _back_to_job(job_id: int, msg: str) -> Response:
    return RedirectResponse(f"/schedule/jobs/{job_id}?msg={msg}#sub-tickets", status_code=303)


# ---------------------------------------------------------------- subcontractors


@router.get("/subcontractors")
async def subcontractor_list(request: Request, ctx: WebCtx) -> Response:
    rows = await service.list_subcontractors(ctx.db, ctx.tenant_id)
    context = {
        "rows": rows,
        "may_edit": Role(ctx.user.role) in DISPATCH_ROLES,
        "msg": request.query_params.get("msg", ""),
    }
    return render(request, "subcontractors/list.html", context)


async def _form(
    request: Request, values: dict[str, Any], errors: dict[str, str], row: Subcontractor | None, status_code: int = 200
) -> Response:
    context = {"values": echo(values), "errors": errors, "row": row}
    return render(request, "subcontractors/form.html", context, status_code=status_code)


@router.get("/subcontractors/new")
async def subcontractor_new(request: Request, ctx: WebCtx) -> Response:
    _dispatcher(ctx)
    return await _form(request, {"active": True}, {}, None)


@router.post("/subcontractors/new")
async def subcontractor_create(request: Request, ctx: WebCtx) -> Response:
    _dispatcher(ctx)
    values: dict[str, Any] = await form_data(request)
    values["active"] = values.get("active") in ("true", "on")
    try:
        await service.create_subcontractor(ctx.db, ctx.tenant_id, values)
    except ValidationFailed as exc:
        return await _form(request, values, exc.errors, None, status_code=400)
    return RedirectResponse("/subcontractors?msg=created", status_code=303)


@router.get("/subcontractors/{subcontractor_id:int}/edit")
async def subcontractor_edit(request: Request, ctx: WebCtx, subcontractor_id: Id) -> Response:
    _dispatcher(ctx)
    row = await service.get_subcontractor(ctx.db, ctx.tenant_id, subcontractor_id)
    return await _form(request, {name: getattr(row, name) for name in SUBCONTRACTOR_FIELDS}, {}, row)


@router.post("/subcontractors/{subcontractor_id:int}/edit")
async def subcontractor_update(request: Request, ctx: WebCtx, subcontractor_id: Id) -> Response:
    _dispatcher(ctx)
    row = await service.get_subcontractor(ctx.db, ctx.tenant_id, subcontractor_id)
    values: dict[str, Any] = await form_data(request)
    values["active"] = values.get("active") in ("true", "on")
    try:
        await service.update_subcontractor(ctx.db, ctx.tenant_id, row.id, values)
    except ValidationFailed as exc:
        return await _form(request, values, exc.errors, row, status_code=400)
    return RedirectResponse("/subcontractors?msg=saved", status_code=303)


# ---------------------------------------------------------------- sub-tickets on a job


async def sub_ticket_context(ctx: Ctx, job: Job) -> dict[str, Any]:
    """What the job page shows of its sub-tickets (schedule/_sub_tickets.html)."""
    subs = await service.list_subcontractors(ctx.db, ctx.tenant_id, active=True)
    return {
        "sub_tickets": await service.list_sub_tickets(ctx.db, ctx.tenant_id, job.id),
        "sub_day": job.scheduled_start.astimezone(ZoneInfo(ctx.tenant.timezone)).date().isoformat(),
        "subcontractors": [(s.id, f"{s.company}" + (f" · {s.trade}" if s.trade else "")) for s in subs],
        "may_dispatch": Role(ctx.user.role) in DISPATCH_ROLES,
    }


@router.post("/schedule/jobs/{job_id:int}/sub-tickets")
async def sub_ticket_create(request: Request, ctx: WebCtx, job_id: Id) -> Response:
    _dispatcher(ctx)
    values = await form_data(request)
    try:
        ticket = await service.create_sub_ticket(ctx.db, ctx.tenant_id, job_id, values)
    except ValidationFailed as exc:
        from fieldhub.web.routes.schedule import job_page  # the job page, shown again with what went wrong

        return await job_page(request, ctx, job_id, error=" ".join(exc.errors.values()), status_code=400)
    return _back_to_job(job_id, "sub_assigned" if ticket.subcontractor_id else "sub_created")


@router.post("/sub-tickets/{sub_ticket_id:int}/assign")
async def sub_ticket_assign(request: Request, ctx: WebCtx, sub_ticket_id: Id) -> Response:
    _dispatcher(ctx)
    ticket = await service.get_sub_ticket(ctx.db, ctx.tenant_id, sub_ticket_id)
    values = await form_data(request)
    chosen = str(values.get("subcontractor_id") or "")
    try:
        if not chosen.isdigit():
            raise ValidationFailed.one("subcontractor_id", "Choose a subcontractor.")
        was = ticket.subcontractor_id
        await service.assign(ctx.db, ctx.tenant_id, ticket.id, int(chosen))
    except ValidationFailed as exc:
        from fieldhub.web.routes.schedule import job_page

        return await job_page(request, ctx, ticket.job_id, error=" ".join(exc.errors.values()), status_code=400)
    return _back_to_job(ticket.job_id, "sub_reassigned" if was else "sub_assigned")


@router.post("/sub-tickets/{sub_ticket_id:int}/cancel")
async def sub_ticket_cancel(request: Request, ctx: WebCtx, sub_ticket_id: Id) -> Response:
    _dispatcher(ctx)
    ticket = await service.get_sub_ticket(ctx.db, ctx.tenant_id, sub_ticket_id)
    try:
        await service.cancel(ctx.db, ctx.tenant_id, ticket.id)
    except ValidationFailed as exc:
        from fieldhub.web.routes.schedule import job_page

        return await job_page(request, ctx, ticket.job_id, error=" ".join(exc.errors.values()), status_code=400)
    return _back_to_job(ticket.job_id, "sub_cancelled")


# ---------------------------------------------------------------- the subcontractor's page (no login)


async def _public(db: DB, token: str):  # noqa: ANN202 - (SubTicket, Tenant)
    ticket = await service.by_token(db, token)
    if ticket is None:
        raise HTTPException(404, "This link is not valid any more. Ask the business that sent it for a new one.")
    tenant = await db.get(Tenant, ticket.tenant_id)
    return ticket, tenant


@router.get("/sub/{token}")
async def public_view(request: Request, db: DB, token: str) -> Response:
    ticket, tenant = await _public(db, token)
    context = {"t": ticket, "biz": tenant, "token": token, "done": request.query_params.get("done") == "1"}
    return render(request, "subcontractors/public.html", context)


@router.post("/sub/{token}/done")
async def public_done(request: Request, db: DB, token: str) -> Response:
    ticket, tenant = await _public(db, token)
    if ticket.status == SubTicketStatus.ASSIGNED:
        await service.mark_done(db, ticket)
    return RedirectResponse(f"/sub/{token}?done=1", status_code=303)
