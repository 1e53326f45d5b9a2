"""The dashboard: the first page after login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.hub.notify.banner import banner_alerts
from fieldhub.web.deps import WebCtx
from fieldhub.web.templating import render

router = APIRouter()


@router.get("/")
async def dashboard(request: Request, ctx: WebCtx) -> Response:
    alerts = await banner_alerts(ctx.db, ctx.tenant_id) if ctx.can_manage_integrations else []
    return render(request, "home/dashboard.html", {"alerts": alerts})
