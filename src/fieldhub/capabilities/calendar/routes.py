"""The Calendar page's forms: pick or make the calendar, save the settings, give technicians their calendars."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.capabilities.calendar import service
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.core.jobs.service import list_technicians
from fieldhub.core.validation import Id
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import AdminCtx, PageRoute, card_url, connection_on_card, form_data, redirect

router = APIRouter()  # the pages' forms below, and the providers' push notices (no sign-in: a token instead)
pages = APIRouter(prefix="/settings/integrations/calendar/{connection_id}", route_class=PageRoute)


async def _watch(request: Request, connection_id: int) -> None:
    """Push channels on the calendars now read (the periodic task retries what fails here)."""
    from fieldhub.capabilities.calendar import push
    from fieldhub.log import get_logger

    try:
        await push.ensure_watching(env_for(request.app), connection_id)
    except Exception:  # noqa: BLE001
        get_logger(__name__).warning("calendar.push.watch_failed", connection_id=connection_id, exc_info=True)


@pages.post("/calendar")
async def pick_calendar(request: Request, ctx: AdminCtx, connection_id: Id) -> Response:
    spec, conn = await connection_on_card(ctx, "calendar", connection_id)
    form = await form_data(request)
    try:
        await service.choose_calendar(
            ctx.db, env_for(request.app), conn, str(form.get("calendar_id", "")), new=form.get("calendar_id") == "new"
        )
    except ValueError:
        return redirect(f"{card_url(spec)}?calendar_error={conn.id}#{spec.key}")
    await ctx.db.commit()
    await _watch(request, conn.id)
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")


@pages.post("/settings")
async def save_settings(request: Request, ctx: AdminCtx, connection_id: Id) -> Response:
    spec, conn = await connection_on_card(ctx, "calendar", connection_id)
    form = {k: str(v) for k, v in (await form_data(request)).items()}
    errors = await service.save_settings(ctx.db, conn, form)
    if errors:
        return redirect(f"{card_url(spec)}?settings_error={conn.id}#{spec.key}")
    await ctx.db.commit()
    await _watch(request, conn.id)
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")


@pages.post("/technicians")
async def technician_calendars(request: Request, ctx: AdminCtx, connection_id: Id) -> Response:
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
    await ctx.db.commit()
    await _watch(request, conn.id)
    return redirect(f"{card_url(spec)}?saved={conn.id}#{spec.key}")


# ------------------------------------------------------------------------------------------- push


# A provider's machine endpoint, not part of the API programs call (like /metrics): left out of the OpenAPI document.
@router.post("/calendar/push/{provider}", include_in_schema=False)
async def push_notice(request: Request, provider: str) -> Response:
    """A provider's change notice (Google: an empty POST, the channel in X-Goog-* headers). Verified by the
    channel's token, then answered at once; the read it wakes runs after (push.wake)."""
    from fastapi.responses import PlainTextResponse

    from fieldhub.capabilities.calendar import push
    from fieldhub.hub import registry

    if provider not in {p.key for p in registry.providers_of("calendar")}:
        return PlainTextResponse("No such calendar provider.", status_code=404)
    module = registry.import_module(provider, "calendar")
    reader = getattr(module, "push_notice", None)
    if reader is None:
        return PlainTextResponse("No such calendar provider.", status_code=404)
    headers = {k.lower(): v for k, v in request.headers.items()}
    notice = reader(headers)
    if notice is None:
        return PlainTextResponse("Not a change notice.", status_code=400)
    channel_id, token, state = notice
    connection_id = push.connection_of(channel_id)
    env = env_for(request.app)
    if connection_id is None or not hmac.compare_digest(
        token, push.channel_token(env, provider, connection_id, channel_id)
    ):
        return PlainTextResponse("Unknown channel or wrong token.", status_code=401)
    if state != "sync":  # "sync" only says the channel is open
        push.wake(env, connection_id)
    return Response(status_code=200)


# Read by calendar apps with the secret in the URL, not by programs of the API: left out of the OpenAPI document.
@router.get("/calendar/feeds/{token}.ics", include_in_schema=False)
async def ics_feed(request: Request, token: str) -> Response:
    """A technician's jobs as iCalendar, for the secret link's holder (no sign-in; a revoked link is a 404)."""
    from fastapi.responses import PlainTextResponse

    from fieldhub.capabilities.calendar import feeds

    async with request.app.state.sessionmaker() as session:
        body = await feeds.render(session, token)
        await session.commit()
    if body is None:
        return PlainTextResponse("This calendar link is not valid (it may have been revoked).", status_code=404)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="jobs.ics"'},
    )


feed_pages = APIRouter(prefix="/settings/integrations/calendar/feeds", route_class=PageRoute)


@feed_pages.post("/{user_id}")
async def feed_link(request: Request, ctx: AdminCtx, user_id: Id) -> Response:
    """A new secret link for the technician's feed (the old one stops working), shown once; or Revoke."""
    from fieldhub.capabilities.calendar import feeds
    from fieldhub.web.kit import render

    form = await form_data(request)
    if form.get("action") == "revoke":
        await feeds.revoke(ctx.db, ctx.tenant_id, user_id)
        return redirect("/settings/integrations/calendar?feed_revoked=1#feeds")
    try:
        token = await feeds.new_link(ctx.db, ctx.tenant_id, user_id)
    except LookupError:
        return redirect("/settings/integrations/calendar#feeds")
    url = env_for(request.app).settings.base_url + feeds.PATH.format(token=token)
    return render(request, "calendar/feed_link.html", {"url": url, "technician": user_id})


router.include_router(pages)
router.include_router(feed_pages)
