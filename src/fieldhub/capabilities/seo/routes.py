"""The Core Web Vitals page: the site's p75 LCP, INP and CLS per form factor in their category colours, the trend
charts, Fetch now, the website to measure, and the history of what was fetched and when."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.capabilities.seo import charts, service
from fieldhub.hub import registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import AdminCtx, PageRoute, WebCtx, card_url, form_data, redirect, render

router = APIRouter(route_class=PageRoute)
KIND = "seo"


def vitals_providers() -> list[str]:
    found = []
    for spec in registry.providers_of(KIND):
        module = registry.import_module(spec.key, "seo")
        if module is not None and hasattr(module, "fetch_vitals"):
            found.append(spec.key)
    return found


async def _connection(ctx: WebCtx) -> Connection | None:
    for key in vitals_providers():
        for conn in await connections.for_provider(ctx.db, ctx.tenant_id, key):
            if conn.status != "disconnected":
                return conn
    return None


@router.get("/seo/vitals")
async def vitals(request: Request, ctx: WebCtx, msg: str = "", error: str = "") -> Response:
    conn = await _connection(ctx)
    context: dict[str, Any] = {"conn": conn, "msg": msg, "error": error, "labels": service.LABELS}
    if conn is not None:
        latest = await service.latest(ctx.db, conn)
        context["tiles"] = {
            form: [
                {
                    "metric": m,
                    "label": service.LABELS[m],
                    "value": service.shown(m, getattr(row, m)),
                    "category": service.category(m, getattr(row, m)),
                    "words": service.CATEGORY_WORDS.get(service.category(m, getattr(row, m)), "No data"),
                }
                for m in service.THRESHOLDS
            ]
            for form, row in latest.items()
        }
        context["periods"] = {form: row.period_end for form, row in latest.items()}
        context["poor"] = [
            f"{service.LABELS[t['metric']]} on {form.lower()}"
            for form, tiles in context["tiles"].items()
            for t in tiles
            if t["category"] == "poor"
        ]
        charts_by_form = {}
        for form in service.FORM_FACTORS:
            rows = await service.history(ctx.db, conn, form)
            charts_by_form[form] = [
                charts.line_chart(
                    f"{service.LABELS[m]} p75 on {form.lower()}",
                    [(r.period_end, getattr(r, m)) for r in rows],
                    bands=service.THRESHOLDS[m],
                    unit=" ms" if m != "cls" else "",
                    label=f"{m}-{form.lower()}",
                )
                for m in service.THRESHOLDS
            ]
        context["charts"] = charts_by_form
        context["fetches"] = await service.fetches(ctx.db, conn)
        context["site"] = service.origin_of(conn)
        context["provider"] = registry.get(conn.provider)
        context["settings_url"] = card_url(registry.get(conn.provider))
    return render(request, "seo/vitals.html", context)


@router.post("/seo/vitals/site")
async def set_site(request: Request, ctx: AdminCtx) -> Response:
    conn = await _connection(ctx)
    if conn is None:
        return redirect("/seo/vitals")
    values = await form_data(request)
    try:
        await service.set_site(ctx.db, conn, values.get("site", ""))
    except ValueError as e:
        return redirect(f"/seo/vitals?error={str(e)[:200]}")
    await service.fetch_vitals(ctx.db, env_for(request.app), conn)
    return redirect("/seo/vitals?msg=site")


@router.post("/seo/vitals/fetch")
async def fetch_now(request: Request, ctx: AdminCtx) -> Response:
    conn = await _connection(ctx)
    if conn is None:
        return redirect("/seo/vitals")
    entry = await service.fetch_vitals(ctx.db, env_for(request.app), conn)
    return redirect("/seo/vitals?msg=fetched" if entry.ok else "/seo/vitals?msg=failed")
