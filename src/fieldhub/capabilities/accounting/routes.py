"""The accounting pages of a connected ledger: the $1 test sync, fixing a customer name conflict, the backfill
wizard with its dry run, and the monthly reconciliation with its CSV download.

Any provider that implements the ledger protocol (providers/<key>/ledger.py) gets them. Owner and admin
only; another business's connection is a 404 (kit.connection_on_card).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from fieldhub.capabilities.accounting import backfill, conflicts, ledgers, testsync
from fieldhub.capabilities.accounting import reconcile as module
from fieldhub.core.validation import Id
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import NeedsReauth, ProviderError, RetryLater
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import ProviderSpec
from fieldhub.web.kit import AdminCtx, card_url, connection_on_card, redirect, render

router = APIRouter(prefix="/settings/integrations/{card_key}/{connection_id}")


def _check(spec: ProviderSpec, conn: Connection) -> None:
    if not ledgers.is_ledger(conn.provider):
        raise HTTPException(404, f"{spec.name} has no monthly reconciliation.")


async def _ledger(ctx: AdminCtx, card_key: str, connection_id: int) -> tuple[ProviderSpec, Connection]:
    """The connection on the card, if its provider is a ledger (else a 404)."""
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    if not ledgers.is_ledger(conn.provider):
        raise HTTPException(404, "That connection was not found.")
    return spec, conn


def _page_data(spec: ProviderSpec, conn: Connection, month_key: str) -> dict[str, Any]:
    base = f"{card_url(spec)}/{conn.id}"
    return {"spec": spec, "conn": conn, "base": base, "back": card_url(spec), "month_key": month_key}


async def _report(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: int, month: str
) -> tuple[ProviderSpec, Connection, Any]:
    """The connection and the report, or a Response to send instead of the report (a month that isn't one,
    the ledger unreachable)."""
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    _check(spec, conn)
    try:
        chosen = module.parse_month(month) if month else module.last_month()
    except ValueError as e:
        data = _page_data(spec, conn, month) | {"report": None, "error": str(e)}
        return spec, conn, render(request, "accounting/reconcile.html", data, 400)
    try:
        return spec, conn, await module.reconcile(env_for(request.app), ctx.db, conn, chosen)
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
        return spec, conn, render(request, "accounting/reconcile_error.html", data, status)


@router.get("/reconcile")
async def reconcile_page(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, month: str = ""
) -> Response:
    spec, conn, report = await _report(request, ctx, card_key, connection_id, month)
    if isinstance(report, Response):
        return report
    return render(request, "accounting/reconcile.html", _page_data(spec, conn, report.month.key) | {"report": report})


@router.get("/reconcile.csv")
async def reconcile_csv(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, month: str = "") -> Response:
    _, _, report = await _report(request, ctx, card_key, connection_id, month)
    if isinstance(report, Response):
        return report
    return Response(
        module.to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{module.csv_filename(report)}"'},
    )


# ----------------------------------------------------------------------------- backfill after first connect


def _backfill_page(
    request: Request,
    spec: ProviderSpec,
    conn: Connection,
    *,
    plan: backfill.Plan | None = None,
    result: backfill.Result | None = None,
    transactions: bool = False,
    error: str = "",
    link: str = "",
    link_text: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "accounting/backfill.html",
        {
            "spec": spec,
            "conn": conn,
            "plan": plan,
            "counts": plan.counts() if plan else None,
            "result": result,
            "transactions": transactions,
            "error": error,
            "link": link,
            "link_text": link_text,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
        status,
    )


@router.get("/backfill")
async def backfill_page(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, transactions: str = ""
) -> Response:
    """The dry run: what would match, be created here, be created in the ledger, or collide. Changes nothing."""
    spec, conn = await _ledger(ctx, card_key, connection_id)
    include = transactions in ("on", "1", "yes", "true")
    try:
        plan = await backfill.plan(env_for(request.app), ctx.db, conn, include_transactions=include)
    except backfill.BackfillRefused as e:
        return _backfill_page(request, spec, conn, error=e.message, link=e.link, link_text=e.link_text, status=409)
    except ProviderError as e:
        return _backfill_page(
            request, spec, conn, error=f"{ledgers.name_of(conn.provider)} did not answer: {e}", status=502
        )
    return _backfill_page(request, spec, conn, plan=plan, transactions=include)


@router.post("/backfill")
async def start_backfill(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, transactions: str = Form("")
) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    include = transactions in ("on", "1", "yes", "true")
    try:
        result = await backfill.start(env_for(request.app), ctx.db, conn, include_transactions=include)
    except backfill.BackfillRefused as e:
        return _backfill_page(request, spec, conn, error=e.message, link=e.link, link_text=e.link_text, status=409)
    except ProviderError as e:
        return _backfill_page(
            request, spec, conn, error=f"{ledgers.name_of(conn.provider)} did not answer: {e}", status=502
        )
    spec, conn = await _ledger(ctx, card_key, connection_id)
    plan = await backfill.plan(env_for(request.app), ctx.db, conn, include_transactions=include)
    return _backfill_page(request, spec, conn, plan=plan, result=result, transactions=include)


# ----------------------------------------------------------------------------- the $1 test sync


def _test_page(
    request: Request,
    spec: ProviderSpec,
    conn: Connection,
    *,
    checks: list[dict[str, Any]] | None = None,
    error: str = "",
    link: str = "",
    link_text: str = "",
    done: list[str] | None = None,
    amount: str = "1.00",
    status: int = 200,
) -> Response:
    state = testsync.test_state(conn)
    shown = checks if checks is not None else list(state.get("checks") or [])
    return render(
        request,
        "accounting/test_sync.html",
        {
            "spec": spec,
            "conn": conn,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
            "books": ledgers.name_of(conn.provider),
            "checks": shown,
            "all_ok": bool(shown) and all(c["ok"] for c in shown),
            "has_records": bool(state.get("customer_id")),
            "error": error,
            "link": link,
            "link_text": link_text,
            "done": done or [],
            "amount": amount,
            "test_name": testsync.TEST_NAME,
        },
        status,
    )


@router.get("/test-sync")
async def test_sync_page(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    return _test_page(request, spec, conn)


@router.post("/test-sync")
async def run_test_sync(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, amount: str = Form("1.00")
) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    try:
        checks = await testsync.run_test_sync(env_for(request.app), ctx.db, ctx.tenant_id, conn, amount)
    except testsync.TestSyncRefused as e:
        return _test_page(
            request, spec, conn, error=e.message, link=e.link, link_text=e.link_text, amount=amount, status=400
        )
    except ProviderError as e:
        return _test_page(
            request, spec, conn, error=f"{ledgers.name_of(conn.provider)} did not answer the check: {e}", status=502
        )
    await ctx.db.refresh(conn)
    return _test_page(request, spec, conn, checks=[c.__dict__ for c in checks])


@router.post("/test-sync/delete")
async def delete_test_records(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    try:
        done = await testsync.delete_test_records(env_for(request.app), ctx.db, ctx.tenant_id, conn)
    except testsync.TestSyncRefused as e:
        return _test_page(request, spec, conn, error=e.message, status=409)
    except ProviderError as e:
        return _test_page(
            request, spec, conn, error=f"{ledgers.name_of(conn.provider)} did not answer: {e}", status=502
        )
    return _test_page(request, spec, conn, checks=[], done=done)


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
                "message": f"{ledgers.name_of(conn.provider)} did not answer: {e}",
                "tone": "error",
                "back": card_url(spec),
                "spec": spec,
            },
            502,
        )
    return render(
        request,
        "accounting/resolve.html",
        {
            "spec": spec,
            "conn": conn,
            "c": conflict,
            "error": error,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
        status,
    )


@router.get("/records/{ledger_id}/resolve")
async def resolve_page(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, ledger_id: Id) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    return await _resolve_page(request, ctx, spec, conn, ledger_id)


@router.post("/records/{ledger_id}/rename")
async def rename(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, ledger_id: Id, display_name: str = Form("")
) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    try:
        await conflicts.use_name(env_for(request.app), ctx.db, conn, ledger_id, display_name)
    except conflicts.ConflictError as e:
        return await _resolve_page(request, ctx, spec, conn, ledger_id, str(e), 400)
    return redirect(f"{card_url(spec)}/{conn.id}/records?state=failed")


@router.post("/records/{ledger_id}/link")
async def link(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, ledger_id: Id, remote_id: str = Form("")
) -> Response:
    spec, conn = await _ledger(ctx, card_key, connection_id)
    try:
        await conflicts.link(env_for(request.app), ctx.db, conn, ledger_id, remote_id)
    except conflicts.ConflictError as e:
        return await _resolve_page(request, ctx, spec, conn, ledger_id, str(e), 400)
    return redirect(f"{card_url(spec)}/{conn.id}/records?state=failed")
