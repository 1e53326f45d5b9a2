"""The guided part of the QuickBooks setup that is still its own: fixing a customer name conflict.

Pages live under the connection's own path (/settings/integrations/quickbooks/{connection_id}/…), next to
the dashboard, history and mapping pages of web/routes/sync_pages.py; main.route_modules() includes this
router and the templates are this folder's templates/ ("quickbooks/<page>.html").
"""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.validation import Id
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import ProviderSpec
from fieldhub.providers.quickbooks import conflicts
from fieldhub.web.kit import AdminCtx, connection_on_card
from fieldhub.web.templating import render

KEY = "quickbooks"
router = APIRouter(prefix=f"/settings/integrations/{KEY}/{{connection_id}}")


async def _qbo(ctx: AdminCtx, connection_id: int) -> tuple[ProviderSpec, Connection]:
    spec, conn = await connection_on_card(ctx, KEY, connection_id)
    if conn.provider != KEY:
        raise HTTPException(404, "That connection was not found.")
    return spec, conn


def _base(conn: Connection) -> str:
    return f"/settings/integrations/{KEY}/{conn.id}"


# ----------------------------------------------------------------------------- customer name conflicts


async def _resolve_page(
    request: Request,
    ctx: AdminCtx,
    spec: ProviderSpec,
    conn: Connection,
    ledger_id: int,
    error: str = "",
    status: int = 200,
) -> Response:
    try:
        conflict = await conflicts.describe(env_for(request.app), ctx.db, conn, ledger_id)
    except conflicts.ConflictError as e:
        raise HTTPException(404, str(e)) from None
    except ProviderError as e:
        return render(
            request,
            "sync/notice.html",
            {
                "message": f"QuickBooks did not answer: {e}",
                "tone": "error",
                "back": f"/settings/integrations/{KEY}",
                "spec": spec,
            },
            502,
        )
    return render(
        request,
        "quickbooks/resolve.html",
        {
            "spec": spec,
            "conn": conn,
            "c": conflict,
            "error": error,
            "base": _base(conn),
            "back": f"/settings/integrations/{KEY}",
        },
        status,
    )


@router.get("/records/{ledger_id}/resolve")
async def resolve_page(request: Request, ctx: AdminCtx, connection_id: Id, ledger_id: Id) -> Response:
    spec, conn = await _qbo(ctx, connection_id)
    return await _resolve_page(request, ctx, spec, conn, ledger_id)


@router.post("/records/{ledger_id}/rename")
async def rename(
    request: Request, ctx: AdminCtx, connection_id: Id, ledger_id: Id, display_name: str = Form("")
) -> Response:
    spec, conn = await _qbo(ctx, connection_id)
    try:
        await conflicts.use_name(env_for(request.app), ctx.db, conn, ledger_id, display_name)
    except conflicts.ConflictError as e:
        return await _resolve_page(request, ctx, spec, conn, ledger_id, str(e), 400)
    return _redirect(f"{_base(conn)}/records?state=failed")


@router.post("/records/{ledger_id}/link")
async def link(
    request: Request, ctx: AdminCtx, connection_id: Id, ledger_id: Id, remote_id: str = Form("")
) -> Response:
    spec, conn = await _qbo(ctx, connection_id)
    try:
        await conflicts.link(env_for(request.app), ctx.db, conn, ledger_id, remote_id)
    except conflicts.ConflictError as e:
        return await _resolve_page(request, ctx, spec, conn, ledger_id, str(e), 400)
    return _redirect(f"{_base(conn)}/records?state=failed")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
