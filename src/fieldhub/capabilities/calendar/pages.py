"""What a calendar provider's panel on the Calendar page adds under its connection: the calendar, Last Synced
with a status dot, the guide's settings, each technician's calendar and the sync history (read from the runs)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fieldhub.capabilities.calendar import service
from fieldhub.capabilities.calendar.protocol import CalendarInfo
from fieldhub.capabilities.calendar.settings import DIRECTIONS, INTERVALS, REMINDERS, CalendarSettings
from fieldhub.core.jobs.service import list_technicians
from fieldhub.hub import registry
from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import ProviderSpec
from fieldhub.hub.sync.models import SyncRun, SyncRunEntity
from fieldhub.hub.sync.status import run_entities
from fieldhub.log import get_logger

log = get_logger(__name__)
DOT = {"success": "green", "partial": "yellow", "failed": "red"}


async def panel(request: Request, ctx: Any, spec: ProviderSpec, conn_panel: Any) -> dict[str, Any] | None:
    if spec.key == registry.providers_of("calendar")[-1].key:
        # The ICS feeds belong to no provider: shown once, under the last calendar provider's panel.
        return await _with_feeds(request, ctx, await _connected(request, ctx, spec, conn_panel))
    return await _connected(request, ctx, spec, conn_panel)


async def _with_feeds(request: Request, ctx: Any, found: dict[str, Any] | None) -> dict[str, Any]:
    from fieldhub.capabilities.calendar import feeds

    out = dict(found or {"template": "calendar/_panel.html", "connections": []})
    out["technicians"] = out.get("technicians") or await list_technicians(ctx.db, ctx.tenant_id)
    out["feeds"] = await feeds.active(ctx.db, ctx.tenant_id)
    out["show_feeds"] = True
    return out


async def _connected(request: Request, ctx: Any, spec: ProviderSpec, conn_panel: Any) -> dict[str, Any] | None:
    views = [v for v in conn_panel.views if v.connection.status != ConnectionStatus.DISCONNECTED]
    if not views:
        return None
    env = env_for(request.app)
    # The calendar list is read from the provider: the request's own transaction ends first, so the token
    # refresh and rate limiter (their own sessions) never wait on it (SQLite has one writer).
    await ctx.db.commit()
    technicians = await list_technicians(ctx.db, ctx.tenant_id)
    connections = []
    for view in views:
        conn = view.connection
        settings = CalendarSettings.of(conn)
        calendars: list[CalendarInfo] = []
        calendars_error = ""
        if conn.status == ConnectionStatus.CONNECTED:
            try:
                async with service.open_api(env, conn) as api:
                    calendars = await api.calendars()
            except Exception as e:  # noqa: BLE001 - the page still shows what is stored
                log.info("calendar.list_failed", connection_id=conn.id, error=type(e).__name__)
                calendars_error = "The calendar list could not be read just now."
        last = await service.last_run(ctx.db, conn.id)
        runs = await service.recent_runs(ctx.db, conn.id)
        shares = await run_entities(ctx.db, [r.id for r in runs])
        connections.append(
            {
                "connection": conn,
                "settings": settings,
                "calendars": calendars,
                "calendars_error": calendars_error,
                "last": last,
                "dot": DOT.get(str(last.status), "grey") if last else "grey",
                "runs": [history_row(r, shares.get(r.id, [])) for r in runs],
            }
        )
    return {
        "template": "calendar/_panel.html",
        "show_feeds": False,
        "connections": connections,
        "technicians": technicians,
        "directions": DIRECTIONS,
        "intervals": INTERVALS,
        "reminders": REMINDERS,
    }


def history_row(run: SyncRun, shares: list[SyncRunEntity]) -> dict[str, Any]:
    """One run in the guide's columns. An export run's job records are events written there; an import run's
    job records are jobs moved or unscheduled here, and its time blocks the busy events read."""
    by = {s.entity: s for s in shares}
    job, block = by.get("job"), by.get("time_block")

    def three(share: SyncRunEntity | None) -> tuple[int, int, int]:
        return (share.created, share.updated, share.deleted) if share else (0, 0, 0)

    out = run.direction == "export"
    return {
        "run": run,
        "events": three(job) if out else three(block),
        "jobs": (0, 0, 0) if out else three(job),
    }
