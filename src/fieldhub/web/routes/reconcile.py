"""Monthly reconciliation of a connected accounting company: the page and its CSV download.

Generic over providers: a provider that can reconcile ships `providers/<key>/reconcile.py` with
`parse_month`, `last_month`, `reconcile(env, session, connection, month)`, `to_csv` and `csv_filename`.
Owner and admin only; another business's connection is a 404 (kit.connection_on_card).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import NeedsReauth, ProviderError, RetryLater
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import ProviderSpec
from fieldhub.web.deps import AdminCtx
from fieldhub.web.kit import card_url, connection_on_card
from fieldhub.web.templating import render

router = APIRouter(prefix="/settings/integrations/{card_key}/{connection_id}")


def _module(spec: ProviderSpec, conn: Connection) -> ModuleType:
    module = registry.import_module(conn.provider, "reconcile")
    if module is None:
        raise HTTPException(404, f"{spec.name} has no monthly reconciliation.")
    return module


def _page_data(spec: ProviderSpec, conn: Connection, month_key: str) -> dict[str, Any]:
    base = f"{card_url(spec)}/{conn.id}"
    return {"spec": spec, "conn": conn, "base": base, "back": card_url(spec), "month_key": month_key}


async def _report(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: int, month: str
) -> tuple[ProviderSpec, Connection, ModuleType, Any]:
    """The connection, its provider's module and the report, or a Response to send instead of the report
    (a month that isn't one, the provider unreachable)."""
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    module = _module(spec, conn)
    try:
        chosen = module.parse_month(month) if month else module.last_month()
    except ValueError as e:
        data = _page_data(spec, conn, month) | {"report": None, "error": str(e)}
        return spec, conn, module, render(request, "sync/reconcile.html", data, 400)
    try:
        return spec, conn, module, await module.reconcile(env_for(request.app), ctx.db, conn, chosen)
    except ProviderError as e:
        if isinstance(e, NeedsReauth):
            message = f"{spec.name} no longer accepts fieldhub's access, so the month can't be compared."
            fix, status = "Reconnect it on the integration page, then run the reconciliation again.", 409
        elif isinstance(e, RetryLater):
            message = f"{spec.name} can't be reached right now ({e.reason or 'no answer'})."
            fix, status = "Nothing was changed. Try again in a few minutes.", 503
        else:
            message = f"{spec.name} refused to answer: {e.reason or e}"
            fix, status = getattr(e, "fix", "") or "Nothing was changed. Try again later.", 502
        data = _page_data(spec, conn, chosen.key) | {"message": message, "fix": fix, "month": chosen}
        return spec, conn, module, render(request, "sync/reconcile_error.html", data, status)


@router.get("/reconcile")
async def reconcile_page(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, month: str = ""
) -> Response:
    spec, conn, _, report = await _report(request, ctx, card_key, connection_id, month)
    if isinstance(report, Response):
        return report
    return render(request, "sync/reconcile.html", _page_data(spec, conn, report.month.key) | {"report": report})


@router.get("/reconcile.csv")
async def reconcile_csv(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, month: str = "") -> Response:
    _, _, module, report = await _report(request, ctx, card_key, connection_id, month)
    if isinstance(report, Response):
        return report
    return Response(
        module.to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{module.csv_filename(report)}"'},
    )
