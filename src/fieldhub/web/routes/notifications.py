"""Alerts: the notifications list, each user's email choices, and the demo mailbox."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from fieldhub.core.validation import Id
from fieldhub.hub import notify
from fieldhub.hub.notify import email
from fieldhub.hub.notify.banner import banner_alerts
from fieldhub.hub.notify.models import OutboundEmail
from fieldhub.web.deps import AdminCtx, WebCtx
from fieldhub.web.templating import MAILBOX, render


def _lifespan(app: FastAPI):  # noqa: ANN202 - an async context manager
    return email.running(app)


router = APIRouter(lifespan=_lifespan)


@router.get("/notifications")
async def notifications(request: Request, ctx: AdminCtx) -> Response:
    rows = await notify.recent(ctx.db, ctx.tenant_id)
    alerts = await banner_alerts(ctx.db, ctx.tenant_id)
    return render(request, "notifications/index.html", {"rows": rows, "alerts": alerts})


@router.post("/notifications/read-all")
async def read_all(ctx: AdminCtx) -> Response:
    await notify.mark_read(ctx.db, ctx.tenant_id)
    return RedirectResponse("/notifications", status_code=303)


@router.post("/notifications/{notification_id}/read")
async def read_one(request: Request, ctx: AdminCtx, notification_id: Id) -> Response:
    if not await notify.mark_read(ctx.db, ctx.tenant_id, notification_id):
        raise HTTPException(404, "That notification was not found or is already read.")
    return RedirectResponse("/notifications", status_code=303)


@router.get("/settings/notifications")
async def preferences(request: Request, ctx: WebCtx, saved: str = "") -> Response:
    chosen = await notify.email_kinds_for(ctx.db, ctx.user)
    return render(request, "notifications/preferences.html", {"kinds": notify.KINDS, "chosen": chosen, "saved": saved})


@router.post("/settings/notifications")
async def save_preferences(request: Request, ctx: WebCtx) -> Response:
    form = await request.form()
    await notify.save_email_kinds(ctx.db, ctx.user, [str(v) for v in form.getlist("email_kinds")])
    return RedirectResponse("/settings/notifications?saved=1", status_code=303)


@router.get(MAILBOX)
async def mailbox(request: Request, ctx: AdminCtx) -> Response:
    """Demo and test only: the alert emails that would have gone out, delivered here instead of by SMTP."""
    if not email.uses_mailbox(request.app.state.settings):
        raise HTTPException(404, "Not found.")
    rows = list(
        await ctx.db.scalars(
            select(OutboundEmail)
            .where(OutboundEmail.tenant_id == ctx.tenant_id)
            .order_by(OutboundEmail.id.desc())
            .limit(200)
        )
    )
    return render(request, "notifications/mailbox.html", {"rows": rows})
