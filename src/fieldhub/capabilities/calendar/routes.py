"""The Calendar page's forms: pick or make the calendar, save the settings, give technicians their calendars."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.capabilities.calendar import service
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.jobs.service import list_technicians
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import AdminCtx, PageRoute, card_url, connection_on_card, form_data, redirect

router = APIRouter(prefix="/settings/integrations/calendar/{connection_id}", route_class=PageRoute)


@router.post("/calendar")
async def pick_calendar(request: Request, ctx: AdminCtx, connection_id: int) -> Response:
    spec, conn = await connection_on_card(ctx, "calendar", connection_id)
    form = await form_data(request)
    try:
        await service.choose_calendar(
            ctx.db, env_for(request.app), conn, str(form.get("calendar_id", "")), new=form.get("calendar_id") == "new"
        )
    except ValueError:
        return redirect(f"{card_url(spec)}?calendar_error={conn.id}#{spec.key}")
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")


@router.post("/settings")
async def save_settings(request: Request, ctx: AdminCtx, connection_id: int) -> Response:
    spec, conn = await connection_on_card(ctx, "calendar", connection_id)
    form = {k: str(v) for k, v in (await form_data(request)).items()}
    errors = await service.save_settings(ctx.db, conn, form)
    if errors:
        return redirect(f"{card_url(spec)}?settings_error={conn.id}#{spec.key}")
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")


@router.post("/technicians")
async def technician_calendars(request: Request, ctx: AdminCtx, connection_id: int) -> Response:
    spec, conn = await connection_on_card(ctx, "calendar", connection_id)
    form = await form_data(request)
    settings = CalendarSettings.of(conn)
    settings.technician_calendars = {
        str(u.id): str(form.get(f"tech_{u.id}", ""))
        for u in await list_technicians(ctx.db, ctx.tenant_id)
        if form.get(f"tech_{u.id}")
    }
    settings.save(conn)
    await service.backfill(ctx.db, conn)  # jobs follow their technician's calendar
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")
