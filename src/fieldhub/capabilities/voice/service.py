"""The voice flows: set the provider's agent up from the business, answer tool calls, keep the call log."""

from __future__ import annotations

import hashlib
import json
import time as clock
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.voice import assistant
from fieldhub.capabilities.voice.models import VoiceCall, VoiceToolCall
from fieldhub.capabilities.voice.protocol import AgentInfo, AgentSpec, CallRecord, ToolRequest, ToolSpec
from fieldhub.core.accounts.models import Tenant
from fieldhub.core.items.models import Item
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.log import get_logger

log = get_logger(__name__)
OUTCOMES = {"booked": "Booked", "message": "Message", "balance": "Balance given", "no_action": "No action"}


class Replayed(Exception):
    """A signed tool request that was already answered once: refused, nothing written."""


def _schema(properties: dict[str, tuple[str, str]], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind, "description": text} for name, (kind, text) in properties.items()},
        "required": required,
    }


def tools(base_url: str, provider: str) -> list[ToolSpec]:
    """The assistant's tools, each on fieldhub's signed endpoint for this provider."""
    url = f"{base_url}/voice/{provider}/tools"
    return [
        ToolSpec(
            "check_availability",
            "Find free appointment times. Call before offering any time; offer only the times it returns.",
            _schema(
                {
                    "service": ("string", "What the caller needs done"),
                    "date_from": ("string", "First day wanted, YYYY-MM-DD"),
                    "date_to": ("string", "Last day wanted, YYYY-MM-DD"),
                    "part_of_day": ("string", "morning, afternoon or any"),
                    "address": ("string", "Where the work is"),
                },
                ["service"],
            ),
            f"{url}/check_availability",
        ),
        ToolSpec(
            "book_job",
            "Book the caller into one of the free times check_availability returned.",
            _schema(
                {
                    "name": ("string", "The caller's name"),
                    "phone": ("string", "A number to reach them"),
                    "email": ("string", "Their email, if they give it"),
                    "address": ("string", "Where the work is"),
                    "service": ("string", "What needs doing"),
                    "slot": ("string", "The chosen time's start, exactly as check_availability gave it"),
                    "notes": ("string", "Anything else the technician should know"),
                },
                ["name", "address", "service", "slot"],
            ),
            f"{url}/book_job",
        ),
        ToolSpec(
            "invoice_balance",
            "What the caller owes. Only works for a call from the number on the account.",
            _schema(
                {
                    "invoice_number": ("string", "The invoice number, if they give one"),
                    "send_pay_link": ("boolean", "True if they want a Pay Now link by email"),
                },
                [],
            ),
            f"{url}/invoice_balance",
        ),
        ToolSpec(
            "take_message",
            "Leave a message for the office when you can't help, or the caller asks for a person.",
            _schema(
                {
                    "name": ("string", "The caller's name"),
                    "phone": ("string", "Call-back number"),
                    "reason": ("string", "What it is about"),
                    "urgency": ("string", "urgent or normal"),
                },
                ["name", "reason"],
            ),
            f"{url}/take_message",
        ),
    ]


def _prompt(tenant: Tenant, hours: assistant.Hours, services: list[str]) -> str:
    days = ", ".join(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d] for d in hours.days)
    return (
        f"You answer the phone for {tenant.name}, a home-services business, while its team is out on jobs. "
        f"Hours: {days} {hours.opens:%H:%M}–{hours.closes:%H:%M} ({tenant.timezone}). "
        f"Services: {', '.join(services) or 'general service calls'}. "
        "Book work only into times check_availability returns; never promise a price or a time it did not give. "
        "Give balances only through invoice_balance. Otherwise take a message. Be brief and friendly."
    )


async def agent_spec(env: OAuthEnv, session: AsyncSession, conn: Connection) -> AgentSpec:
    tenant = await session.get(Tenant, conn.tenant_id)
    assert tenant is not None
    names = await session.scalars(
        select(Item.name).where(Item.tenant_id == tenant.id, Item.active.is_(True)).order_by(Item.name).limit(40)
    )
    own = (conn.settings or {}).get("assistant") or {}
    hours = assistant.Hours.from_settings(own)
    greeting = own.get("greeting") or f"Thanks for calling {tenant.name}! How can I help you today?"
    return AgentSpec(
        name=f"{tenant.name} front desk"[:120],
        greeting=greeting,
        prompt=_prompt(tenant, hours, list(names)),
        tools=tools(env.settings.base_url, conn.provider),
        webhook_url=f"{env.settings.base_url}/webhooks/{conn.provider}",
    )


async def setup(env: OAuthEnv, session: AsyncSession, conn: Connection) -> AgentInfo:
    """Create or update the provider's agent from the business as it is now; the connection then answers for it
    (its account is the agent, so the agent's calls and tool requests find it)."""
    voice = registry.import_module(conn.provider, "voice")
    if voice is None:
        raise LookupError(f"{conn.provider} is not a voice provider")
    spec = await agent_spec(env, session, conn)
    info: AgentInfo = await voice.ensure_agent(env, conn, spec)
    settings = dict(conn.settings or {})
    settings["agent"] = {
        "agent_id": info.agent_id,
        "llm_id": info.llm_id,
        "phone_number": info.phone_number,
        "updated_at": utcnow().isoformat(),
    }
    settings.setdefault("assistant", assistant.Hours().as_settings())
    conn.settings = settings
    conn.account_id = info.agent_id
    await session.commit()
    log.info("voice.agent.ready", connection_id=conn.id, agent_id=info.agent_id)
    return info


async def connection_for_agent(session: AsyncSession, provider: str, agent_id: str) -> Connection | None:
    if not agent_id:
        return None
    return await session.scalar(
        select(Connection).where(Connection.provider == provider, Connection.account_id == agent_id).limit(1)
    )


def request_key(request: ToolRequest) -> str:
    canonical = json.dumps([request.call_id, request.name, request.args], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _call_row(session: AsyncSession, conn: Connection, remote_id: str) -> VoiceCall:
    row = await session.scalar(
        select(VoiceCall).where(VoiceCall.provider == conn.provider, VoiceCall.remote_id == remote_id)
    )
    if row is None:
        row = VoiceCall(tenant_id=conn.tenant_id, connection_id=conn.id, provider=conn.provider, remote_id=remote_id)
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:  # the call's webhook made it at the same moment
            row = await session.scalar(
                select(VoiceCall).where(VoiceCall.provider == conn.provider, VoiceCall.remote_id == remote_id)
            )
            assert row is not None
    return row


async def answer_tool(
    session: AsyncSession, conn: Connection, request: ToolRequest, signature: str, now: datetime | None = None
) -> dict[str, Any]:
    """Answer one tool request and log it. The same signed request again is Replayed (nothing written); the same
    call, tool and arguments under a new signature (the provider retrying a lost answer) gets the first answer."""
    started = clock.perf_counter()
    if await session.scalar(select(VoiceToolCall.id).where(VoiceToolCall.signature == signature)):
        raise Replayed()
    tenant = await session.get(Tenant, conn.tenant_id)
    assert tenant is not None
    key = request_key(request)
    earlier = await session.scalar(
        select(VoiceToolCall.result)
        .where(VoiceToolCall.tenant_id == tenant.id, VoiceToolCall.request_key == key)
        .order_by(VoiceToolCall.id)
        .limit(1)
    )
    hours = assistant.Hours.from_settings((conn.settings or {}).get("assistant"))
    if earlier is not None:
        result = dict(earlier)
    elif request.name == "check_availability":
        result = await assistant.check_availability(session, tenant, hours, request.args, now)
    elif request.name == "book_job":
        result = await assistant.book_job(session, tenant, hours, request.args, request.from_number, now)
    elif request.name == "invoice_balance":
        result = await assistant.invoice_balance(session, tenant, request.args, request.from_number)
    elif request.name == "take_message":
        result = await assistant.take_message(session, tenant, request.args, request.from_number)
    else:
        result = {"error": f"No tool named {request.name}."}
    call = await _call_row(session, conn, request.call_id)
    if not call.from_number:
        call.from_number, call.to_number = request.from_number[:40], request.to_number[:40]
    call.job_id = result.get("job_id") or call.job_id
    call.customer_id = result.get("customer_id") or call.customer_id
    session.add(
        VoiceToolCall(
            tenant_id=tenant.id,
            call_remote_id=request.call_id,
            name=request.name[:60],
            args=request.args,
            result=result,
            signature=signature,
            request_key=key,
            latency_ms=int((clock.perf_counter() - started) * 1000),
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Replayed() from None  # the same signature raced in twice: one answer only
    return result


async def _outcome(session: AsyncSession, call: VoiceCall) -> str:
    rows = await session.execute(
        select(VoiceToolCall.name, VoiceToolCall.result).where(
            VoiceToolCall.tenant_id == call.tenant_id, VoiceToolCall.call_remote_id == call.remote_id
        )
    )
    done = {(name, bool(result.get("booked") or result.get("taken") or result.get("found"))) for name, result in rows}
    for name, outcome in (("book_job", "booked"), ("take_message", "message"), ("invoice_balance", "balance")):
        if (name, True) in done:
            return outcome
    return "no_action"


async def record_call(session: AsyncSession, conn: Connection, record: CallRecord) -> bool:
    """Bring a call event into the log (started, ended, analyzed: any order, any number of times)."""
    call = await _call_row(session, conn, record.remote_id)
    call.direction = record.direction or call.direction
    call.from_number = record.from_number[:40] or call.from_number
    call.to_number = record.to_number[:40] or call.to_number
    if record.started_at:
        call.started_at = record.started_at
    if record.event in ("call_ended", "call_analyzed"):
        call.status = "ended"
        call.ended_at = record.ended_at or call.ended_at
        call.duration_ms = record.duration_ms or call.duration_ms
        call.transcript = record.transcript or call.transcript
        call.recording_url = record.recording_url[:500] or call.recording_url
        call.disconnection_reason = record.disconnection_reason[:80] or call.disconnection_reason
        call.outcome = await _outcome(session, call)
    if record.summary:
        call.summary = record.summary
    await session.flush()
    return True


async def list_calls(
    session: AsyncSession, tenant_id: int, *, outcome: str = "", days: int = 30, limit: int = 200
) -> list[VoiceCall]:
    stmt = select(VoiceCall).where(VoiceCall.tenant_id == tenant_id)
    if days:
        stmt = stmt.where(VoiceCall.started_at >= utcnow() - timedelta(days=days))
    if outcome in OUTCOMES:
        stmt = stmt.where(VoiceCall.outcome == outcome)
    return list(await session.scalars(stmt.order_by(VoiceCall.started_at.desc(), VoiceCall.id.desc()).limit(limit)))


async def weekly(session: AsyncSession, tenant: Tenant, weeks: int = 8) -> list[dict[str, Any]]:
    """Calls and bookings per week (Monday to Sunday in the business's time zone), oldest first."""
    zone = ZoneInfo(tenant.timezone)
    today = datetime.now(UTC).astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    rows = await session.execute(
        select(VoiceCall.started_at, VoiceCall.outcome).where(
            VoiceCall.tenant_id == tenant.id, VoiceCall.started_at >= since
        )
    )
    buckets = {first + timedelta(weeks=i): {"calls": 0, "booked": 0} for i in range(weeks)}
    for started, outcome in rows:
        day: date = started.astimezone(zone).date()
        week = day - timedelta(days=day.weekday())
        if week in buckets:
            buckets[week]["calls"] += 1
            buckets[week]["booked"] += outcome == "booked"
    return [{"week": w, **counts} for w, counts in sorted(buckets.items())]


async def tool_calls(session: AsyncSession, call: VoiceCall) -> list[VoiceToolCall]:
    rows = await session.scalars(
        select(VoiceToolCall)
        .where(VoiceToolCall.tenant_id == call.tenant_id, VoiceToolCall.call_remote_id == call.remote_id)
        .order_by(VoiceToolCall.id)
    )
    return list(rows)


async def count_calls(session: AsyncSession, tenant_id: int) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(VoiceCall).where(VoiceCall.tenant_id == tenant_id)) or 0
    )


async def signed_by(
    env: OAuthEnv, session: AsyncSession, provider: str, agent_id: str
) -> tuple[Connection, str] | None:
    """The connection an agent answers for and its API key (what the provider signs requests with), if any."""
    from fieldhub.hub.connections.service import read_secret
    from fieldhub.hub.vault import DecryptError

    conn = await connection_for_agent(session, provider, agent_id)
    if conn is None:
        return None
    try:
        key = read_secret(env.vault, conn, "access_token")
    except DecryptError:
        return None
    return (conn, key) if key else None
