"""The voice capability's routes: the signed tool endpoint a provider calls mid-call, the call log, the panel forms."""

from __future__ import annotations

import json
from datetime import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from fieldhub.capabilities.voice import service
from fieldhub.capabilities.voice.models import VoiceCall
from fieldhub.core.accounts.models import Role
from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import Capability
from fieldhub.log import get_logger
from fieldhub.web.kit import AdminCtx, Ctx, WebCtx, card_url, redirect, render

router = APIRouter()
log = get_logger(__name__)
VIEWERS = (Role.OWNER, Role.ADMIN, Role.DISPATCHER)


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


# The provider's machine endpoint, called mid-call with its signature; not part of the API programs call.
@router.post("/voice/{provider}/tools/{name}", include_in_schema=False)
async def tool(request: Request, provider: str, name: str) -> JSONResponse:
    """A tool call during a live call. The provider's signature (its key for this agent's connection, fresh, never
    seen before) comes first; then the answer, within the provider's time budget. Refusals write nothing."""
    voice = registry.import_module(provider, "voice") if provider in {s.key for s in registry.all()} else None
    if voice is None or name not in {t.name for t in service.tools("", provider)}:
        return _refuse(404, "No such tool.")
    body = await request.body()
    try:
        payload = json.loads(body)
        agent_id = str(payload["call"]["agent_id"])
    except (ValueError, KeyError, TypeError):
        return _refuse(400, "Malformed tool request.")
    env = env_for(request.app)
    headers = {k.lower(): v for k, v in request.headers.items()}
    async with request.app.state.sessionmaker() as session:
        found = await service.signed_by(env, session, provider, agent_id)
        signature = voice.verify(headers, body, found[1]) if found else None
        if found is None or signature is None:
            log.warning("voice.tool.refused", provider=provider, tool=name)
            return _refuse(401, "The signature is missing, stale or wrong.")
        try:
            call = voice.parse_tool(payload, name)
        except (ValueError, KeyError, TypeError):
            return _refuse(400, "Malformed tool request.")
        try:
            result = await service.answer_tool(session, found[0], call, signature)
            await session.commit()
        except service.Replayed:
            await session.rollback()
            log.warning("voice.tool.replayed", provider=provider, tool=name)
            return _refuse(409, "This signed request was already answered.")
    return JSONResponse(result)


def _viewer(ctx: Ctx) -> None:
    if Role(ctx.user.role) not in VIEWERS:
        raise HTTPException(403, "The call log is for the Owner, Admins and Dispatchers.")


def _chart(weeks: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars for calls and bookings per week, drawn as inline SVG (no script)."""
    top = max([w["calls"] for w in weeks] + [1])
    width, height, gap = 44, 120, 12
    bars = []
    for i, w in enumerate(weeks):
        x = i * (width + gap)
        calls_h = round(height * w["calls"] / top)
        booked_h = round(height * w["booked"] / top)
        bars.append({"x": x, "calls_h": calls_h, "booked_h": booked_h, "label": w["week"].strftime("%b %-d"), **w})
    return {"bars": bars, "width": len(weeks) * (width + gap), "height": height, "bar": width, "top": top}


@router.get("/voice")
async def call_log(request: Request, ctx: WebCtx, outcome: str = "", period: str = "30") -> Response:
    _viewer(ctx)
    days = int(period) if period in ("7", "30", "90", "365") else 30
    calls = await service.list_calls(ctx.db, ctx.tenant_id, outcome=outcome, days=days)
    weeks = await service.weekly(ctx.db, ctx.tenant)
    context = {
        "calls": calls,
        "outcome": outcome if outcome in service.OUTCOMES else "",
        "days": days,
        "outcomes": service.OUTCOMES,
        "chart": _chart(weeks),
        "voice_url": next((card_url(p) for p in registry.providers_of(Capability.VOICE)), ""),
    }
    return render(request, "voice/calls.html", context)


@router.get("/voice/calls/{call_id}")
async def call_view(request: Request, ctx: WebCtx, call_id: Id) -> Response:
    _viewer(ctx)
    call = await ctx.db.scalar(select(VoiceCall).where(VoiceCall.id == call_id, VoiceCall.tenant_id == ctx.tenant_id))
    if call is None:
        raise HTTPException(404, "That call was not found.")
    tools = await service.tool_calls(ctx.db, call)
    return render(request, "voice/call.html", {"call": call, "tools": tools, "outcomes": service.OUTCOMES})


async def _connection(ctx: Ctx, connection_id: int) -> Connection:
    conn = await ctx.db.scalar(
        select(Connection).where(Connection.id == connection_id, Connection.tenant_id == ctx.tenant_id)
    )
    if conn is None or registry.import_module(conn.provider, "voice") is None:
        raise HTTPException(404, "That connection was not found.")
    return conn


def _hours(form: Any) -> dict[str, Any]:
    days = sorted({int(d) for d in form.getlist("days") if str(d).isdigit() and 0 <= int(d) <= 6})

    def minutes(name: str, low: int, high: int, default: int) -> int:
        text = str(form.get(name) or "")
        return min(max(int(text), low), high) if text.isdigit() else default

    def clock(name: str, default: str) -> str:
        try:
            return time.fromisoformat(str(form.get(name) or default)).strftime("%H:%M")
        except ValueError:
            return default

    return {
        "days": days or [0, 1, 2, 3, 4],
        "opens": clock("opens", "08:00"),
        "closes": clock("closes", "17:00"),
        "job_minutes": minutes("job_minutes", 30, 480, 120),
        "buffer_minutes": minutes("buffer_minutes", 0, 240, 30),
        "greeting": str(form.get("greeting") or "").strip()[:300],
    }


@router.post("/voice/{connection_id}/settings")
async def save_settings(request: Request, ctx: AdminCtx, connection_id: Id) -> Response:
    conn = await _connection(ctx, connection_id)
    form = await request.form()
    if "opens" in form:
        hours = _hours(form)
        if hours["closes"] <= hours["opens"]:
            raise HTTPException(400, "Closing time must be after opening time.")
        conn.settings = {**(conn.settings or {}), "assistant": hours}
    await ctx.db.commit()  # the provider is called next, on sessions of its own
    await service.setup(env_for(request.app), ctx.db, conn)
    spec = registry.get(conn.provider)
    return redirect(card_url(spec) + ("?voice=saved" if "opens" in form else "?voice=setup"))


@router.post("/voice/{connection_id}/call-me")
async def call_me(request: Request, ctx: AdminCtx, connection_id: Id) -> Response:
    conn = await _connection(ctx, connection_id)
    number = "".join(ch for ch in str((await request.form()).get("to_number") or "") if ch.isdigit() or ch == "+")
    if not number.startswith("+"):
        number = "+1" + number if len(number) == 10 else "+" + number
    if not 8 <= len(number) <= 16:
        raise HTTPException(400, "Enter the number to call, like +15125550100.")
    await ctx.db.commit()
    voice = registry.import_module(conn.provider, "voice")
    assert voice is not None  # _connection checked it
    await voice.call_me(env_for(request.app), conn, number)
    return redirect(card_url(registry.get(conn.provider)) + "?voice=calling")
