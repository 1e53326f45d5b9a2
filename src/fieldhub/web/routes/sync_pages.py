"""A syncing connection's pages: the dashboard on its card, Sync Now, Auto-Sync, history, records, mapping.

Generic over providers: what a provider needs (account mapping) comes from its folder through the registry.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.validation import Id
from fieldhub.db import utcnow
from fieldhub.hub import features, registry
from fieldhub.hub.connections import mapping
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.status import ProviderConnections
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import ProviderSpec
from fieldhub.hub.sync import status as sync_status
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus
from fieldhub.web import sync_view
from fieldhub.web.deps import AdminCtx, Ctx
from fieldhub.web.kit import card_url, connection_on_card
from fieldhub.web.templating import render

router = APIRouter(prefix="/settings/integrations/{card_key}/{connection_id}")

# The records a business owner thinks in, in the order the cards show them; a provider syncing none of
# these (a calendar) gets a card per entity it declares.
CARD_ENTITIES = ("customer", "invoice", "payment", "item")
DASHBOARD_RUNS = 10  # rows of the dashboard's history, a fold of idle runs counting as one
DASHBOARD_FETCH = 100  # runs read to fill them
RUN_TONES = {
    RunStatus.SUCCESS: "green",
    RunStatus.PARTIAL: "yellow",
    RunStatus.FAILED: "red",
    RunStatus.RUNNING: "blue",
}


def card_entities(spec: ProviderSpec) -> list[str]:
    """The entities the dashboard gives a card: what the provider really sends (hub/features.py)."""
    sends = features.get(spec.key).sends
    return [e for e in CARD_ENTITIES if e in sends] or list(sends)


@dataclass(frozen=True)
class Bar:
    x: float
    day: str
    segments: tuple[tuple[float, float, str], ...]  # (y, height, tone)
    title: str


def chart_bars(days: list[sync_status.DayRuns], width: int = 280, height: int = 48) -> list[Bar]:
    """Stacked bars of runs per day (success at the bottom), scaled to the busiest day."""
    top = max((d.total for d in days), default=0) or 1
    slot = width / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        y = float(height)
        segments = []
        for count, tone in ((d.success, "green"), (d.partial, "yellow"), (d.failed, "red")):
            if count:
                h = max(height * count / top, 2.0)
                y -= h
                segments.append((round(y, 1), round(h, 1), tone))
        title = f"{d.day:%b %-d}: {d.success} ok, {d.partial} partial, {d.failed} failed"
        bars.append(Bar(round(i * slot + 1, 1), f"{d.day:%b %-d}", tuple(segments), title))
    return bars


def next_step(conn: Connection) -> str:
    """The setup step a connection is at (seed 001: connect, map the accounts, test sync, Auto-Sync on), or ""."""
    if conn.status != ConnectionStatus.CONNECTED:
        return ""
    if mapping.mapping_fields(conn.provider) and not mapping.mapping_complete(conn):
        return "mapping"
    # A ledger (providers/<key>/ledger.py) has the accounting capability's $1 test sync, whose checklist is
    # kept in the connection's settings["test_sync"].
    if conn.auto_sync or registry.import_module(conn.provider, "ledger") is None:
        return ""
    checks = list(((conn.settings or {}).get("test_sync") or {}).get("checks") or [])
    return "auto_sync" if checks and all(c.get("ok") for c in checks) else "test_sync"


async def history_rows(ctx: Ctx, page: sync_status.HistoryPage, limit: int | None = None) -> list[Any]:
    parts = await sync_status.run_entities(ctx.db, [r.id for r in page.runs])
    return sync_view.history_rows(page.runs, parts, limit)


async def dashboard(ctx: Ctx, spec: ProviderSpec, conn: Connection) -> dict[str, Any]:
    entities = card_entities(spec)
    figures = await sync_status.sync_status(ctx.db, conn.id, entities)
    runs = await sync_status.history(ctx.db, ctx.tenant_id, conn.id, limit=DASHBOARD_FETCH)
    return {
        "conn": conn,
        "spec": spec,
        "base": f"/settings/integrations/{spec.card or spec.key}/{conn.id}",
        "status": figures,
        "entities": [sync_view.entity_card(figures.entity(e)) for e in entities],
        "bars": chart_bars(figures.chart),
        "rows": await history_rows(ctx, runs, DASHBOARD_RUNS),
        "tones": RUN_TONES,
        "next_step": next_step(conn),
        "needs_mapping": bool(mapping.mapping_fields(conn.provider)) and not mapping.mapping_complete(conn),
        "has_mapping": bool(mapping.mapping_fields(conn.provider)) or mapping.offers_direction(conn),
        "direction": mapping.customer_direction(conn) if mapping.offers_direction(conn) else "",
        "reconciles": registry.import_module(conn.provider, "ledger") is not None,
        "test_sync": registry.import_module(conn.provider, "ledger") is not None,
        "backfills": registry.import_module(conn.provider, "ledger") is not None,
    }


async def sync_dashboards(ctx: Ctx, found: ProviderConnections) -> list[dict[str, Any]]:
    """One dashboard per connected account of a provider that really sends records (its export adapter exists).

    A provider whose sync is still to come gets none: no Auto-Sync switch, entity cards or run history for
    work that is never done (its card says what works and what is coming instead: settings/_works.html).
    """
    if not found.features.syncs:
        return []
    return [
        await dashboard(ctx, found.spec, v.connection)
        for v in found.views
        if v.connection.status != ConnectionStatus.DISCONNECTED
    ]


def _notice(
    request: Request,
    spec: ProviderSpec,
    message: str,
    *,
    tone: str = "error",
    link: str = "",
    link_text: str = "",
    status: int = 200,
) -> Response:
    """A short answer: a fragment HTMX swaps into the card, or a page when JavaScript is off."""
    data = {
        "message": message,
        "tone": tone,
        "link": link,
        "link_text": link_text,
        "back": card_url(spec),
        "spec": spec,
    }
    if request.headers.get("hx-request"):
        return render(request, "sync/_notice.html", data)
    return render(request, "sync/notice.html", data, status)


def _dispatch() -> Any:
    """The sync engine's trigger functions (imported late: the engine lives in its own module)."""
    from fieldhub.hub.sync import dispatch

    return dispatch


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _refusal(conn: Connection) -> tuple[str, str, str] | None:
    """Why syncing can't start now, with where to fix it; None when it can."""
    if conn.status == ConnectionStatus.NEEDS_REAUTH:
        return ("Syncing is paused: the sign-in stopped working. Reconnect first.", "", "")
    if conn.status != ConnectionStatus.CONNECTED:
        return ("This connection is not active.", "", "")
    if not mapping.mapping_complete(conn):
        return (
            "Choose which accounts to use before syncing: until the field mapping is saved, nothing is sent.",
            mapping.mapping_link(conn),
            "Open the field mapping",
        )
    return None


@router.post("/sync")
async def sync_now(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, entity: str = Form("")
) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    found = features.get(spec.key)
    if not found.syncs:
        raise HTTPException(404, f"{spec.name} does not sync records yet: {found.coming_note or 'nothing to send'}.")
    if entity and not found.exports(entity):
        raise HTTPException(400, "That record type doesn't sync with this integration.")
    if refused := _refusal(conn):
        message, link, text = refused
        return _notice(request, spec, message, link=link, link_text=text, status=409)
    await _maybe_await(_dispatch().request_sync(ctx.db, conn.id, entity=entity or None, trigger="manual"))
    what = sync_view.entity_label(entity) if entity else "Everything"
    return _notice(request, spec, f"{what}: sync started. The history below fills in as it runs.", tone="ok")


@router.post("/auto-sync")
async def auto_sync(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, enabled: str = Form("")
) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    turn_on = enabled in ("on", "true", "1")
    error = ""
    if turn_on and not mapping.mapping_complete(conn):
        error = "Auto-Sync stays off until the field mapping is saved."
    else:
        conn.auto_sync = turn_on
    data = {
        "conn": conn,
        "base": f"{card_url(spec)}/{conn.id}",
        "error": error,
        "mapping_link": mapping.mapping_link(conn),
    }
    if request.headers.get("hx-request"):
        return render(request, "sync/_autosync.html", data)
    if error:
        return _notice(
            request, spec, error, link=mapping.mapping_link(conn), link_text="Open the field mapping", status=409
        )
    return RedirectResponse(card_url(spec), status_code=303)


@router.get("/history")
async def history(
    request: Request,
    ctx: AdminCtx,
    card_key: str,
    connection_id: Id,
    status: str = "",
    entity: str = "",
    after: str = "",
) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    status = status if status in {s.value for s in RunStatus} else ""
    entity = entity if entity in spec.entities else ""
    page = await sync_status.history(ctx.db, ctx.tenant_id, conn.id, status=status, entity=entity, after=after)
    return render(
        request,
        "sync/history.html",
        {
            "spec": spec,
            "conn": conn,
            "page": page,
            "rows": await history_rows(ctx, page),
            "tones": RUN_TONES,
            "status": status,
            "entity": entity,
            "statuses": [s.value for s in RunStatus],
            "entity_names": list(spec.entities),
            "after": after,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
    )


@router.get("/records")
async def records(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, state: str = "failed") -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    if state not in (LedgerState.FAILED, LedgerState.PENDING):
        raise HTTPException(404, "There is no such list.")
    rows = await sync_status.records_in_state(ctx.db, ctx.tenant_id, conn.id, state)
    # A ledger (providers/<key>/ledger.py) names the refusal the accounting capability's name-conflict fix
    # resolves (its NAME_CONFLICT code); each such row offers it.
    code = getattr(registry.import_module(conn.provider, "ledger"), "NAME_CONFLICT", None)
    resolvable = {r.id for r in rows if code is not None and r.entity == "customer" and r.error_code == code}
    labels = await sync_status.record_labels(ctx.db, ctx.tenant_id, rows)
    reasons = await _waiting(ctx, spec, conn, rows, labels) if state == LedgerState.PENDING else {}
    return render(
        request,
        "sync/records.html",
        {
            "spec": spec,
            "conn": conn,
            "rows": rows,
            "labels": labels,
            "resolvable": resolvable,
            "reasons": reasons,
            "state": state,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
    )


async def _waiting(
    ctx: Ctx, spec: ProviderSpec, conn: Connection, rows: list[LedgerRow], labels: dict[int, str]
) -> dict[int, str]:
    """Why each of these pending rows waits, in words (the ledger's state, the connection's, its last run)."""
    now = utcnow()
    waits = await sync_status.why_pending(ctx.db, conn, rows, mapped=mapping.mapping_complete(conn), now=now)
    deps = [dep for w in waits.values() for dep, _, _ in w.on if dep is not None]
    names = {**labels, **await sync_status.record_labels(ctx.db, ctx.tenant_id, deps)}
    tz = ctx.tenant.timezone
    return {r.id: sync_view.waiting_words(waits[r.id], spec.name, names, tz, now) for r in rows}


async def _ledger_row(ctx: Ctx, conn: Connection, ledger_id: int) -> LedgerRow:
    row = await ctx.db.get(LedgerRow, ledger_id)
    if row is None or row.tenant_id != ctx.tenant_id or row.connection_id != conn.id:
        raise HTTPException(404, "That record was not found.")
    return row


@router.post("/records/{ledger_id}/retry")
async def retry(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, ledger_id: Id) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    await _ledger_row(ctx, conn, ledger_id)
    if refused := _refusal(conn):
        message, link, text = refused
        return _notice(request, spec, message, link=link, link_text=text, status=409)
    await _maybe_await(_dispatch().retry_record(ctx.db, ctx.tenant_id, ledger_id))
    return RedirectResponse(f"{card_url(spec)}/{conn.id}/records?state=failed", status_code=303)


@router.get("/records/{ledger_id}")
async def record(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, ledger_id: Id) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    row = await _ledger_row(ctx, conn, ledger_id)
    labels = await sync_status.record_labels(ctx.db, ctx.tenant_id, [row])
    events = await sync_status.record_events(ctx.db, row.id)
    reason = ""
    if row.state == LedgerState.PENDING:
        reason = (await _waiting(ctx, spec, conn, [row], labels))[row.id]
    return render(
        request,
        "sync/record.html",
        {
            "spec": spec,
            "conn": conn,
            "row": row,
            "label": labels[row.id],
            "events": events,
            "reason": reason,
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
    )


async def _mapping_page(
    request: Request,
    ctx: Ctx,
    spec: ProviderSpec,
    conn: Connection,
    *,
    chosen: dict[str, str] | None = None,
    error: str = "",
    confirm: int = 0,
    saved: str = "",
    status: int = 200,
) -> Response:
    fields = mapping.mapping_fields(conn.provider)
    accounts: list[mapping.MappedAccount] = []
    fetch_error = ""
    if fields:
        try:
            accounts = await mapping.live_accounts(env_for(request.app), conn)
        except ProviderError as e:
            fetch_error = f"{spec.name} did not send the chart of accounts: {e}"
    allowed = mapping.choices(fields, accounts)
    return render(
        request,
        "sync/mapping.html",
        {
            "spec": spec,
            "conn": conn,
            "fields": fields,
            "choices": allowed,
            "chosen": chosen
            if chosen is not None
            else mapping.with_suggestions(fields, allowed, mapping.saved_mapping(conn)),
            "error": error,
            "fetch_error": fetch_error,
            "confirm": confirm,
            "saved": saved,
            "offers_direction": mapping.offers_direction(conn),
            "direction": mapping.customer_direction(conn),
            "base": f"{card_url(spec)}/{conn.id}",
            "back": card_url(spec),
        },
        status,
    )


@router.get("/mapping")
async def mapping_page(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, saved: str = "") -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    return await _mapping_page(request, ctx, spec, conn, saved=saved)


@router.post("/mapping")
async def save_mapping(request: Request, ctx: AdminCtx, card_key: str, connection_id: Id) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    fields = mapping.mapping_fields(conn.provider)
    if not fields:
        raise HTTPException(404, f"{spec.name} needs no account mapping.")
    form = await request.form()
    chosen = {f.key: str(form.get(f.key, "")) for f in fields}
    try:
        accounts = await mapping.live_accounts(env_for(request.app), conn)
    except ProviderError as e:
        return await _mapping_page(request, ctx, spec, conn, chosen=chosen, error=str(e), status=502)
    kept = await mapping.remap_impact(ctx.db, conn, chosen)
    if kept and form.get("confirmed") != "yes":
        return await _mapping_page(request, ctx, spec, conn, chosen=chosen, confirm=kept)
    try:
        mapping.save_mapping(conn, fields, accounts, chosen)
    except mapping.MappingInvalid as e:
        return await _mapping_page(request, ctx, spec, conn, chosen=chosen, error=str(e), status=400)
    # What waited for the mapping (a run refused without it holds the rows back a while) goes now.
    await _maybe_await(_dispatch().request_sync(ctx.db, conn.id, trigger="manual"))
    return RedirectResponse(f"{card_url(spec)}/{conn.id}/mapping?saved=mapping", status_code=303)


@router.post("/direction")
async def save_direction(
    request: Request, ctx: AdminCtx, card_key: str, connection_id: Id, direction: str = Form("")
) -> Response:
    spec, conn = await connection_on_card(ctx, card_key, connection_id)
    if not mapping.offers_direction(conn):
        raise HTTPException(404, f"{spec.name} syncs customers one way only.")
    try:
        mapping.save_direction(conn, direction)
    except mapping.MappingInvalid as e:
        return await _mapping_page(request, ctx, spec, conn, error=str(e), status=400)
    return RedirectResponse(f"{card_url(spec)}/{conn.id}/mapping?saved=direction", status_code=303)
