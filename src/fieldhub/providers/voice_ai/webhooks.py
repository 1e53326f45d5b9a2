"""Retell's call webhooks (call_started, call_ended, call_analyzed) into the voice capability's call log.

A delivery is signed with the API key of the workspace whose agent took the call: the key fieldhub holds for the
connection that agent answers for. Its event id is `<call_id>:<event>`, so each event of a call is kept once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fieldhub.capabilities.voice import service as voice
from fieldhub.capabilities.voice.protocol import CallRecord
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext
from fieldhub.providers.voice_ai.voice import verify as verify_signature

PROVIDER = "voice_ai"
EVENTS = ("call_started", "call_ended", "call_analyzed")
# What Retell's events bring in (fieldhub check): the calls the assistant took.
IMPORTS = ("call",)


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    return verify_signature(headers, body, secret) is not None


async def delivery_secret(env: OAuthEnv, headers: dict[str, str], body: bytes) -> str | None:
    try:
        agent_id = str(json.loads(body)["call"]["agent_id"])
    except (ValueError, KeyError, TypeError):
        return None
    async with env.sessionmaker() as session:
        found = await voice.signed_by(env, session, PROVIDER, agent_id)
    return found[1] if found else None


def parse(payload: dict[str, Any]) -> InboundEvent:
    event, call = payload["event"], payload["call"]
    if not isinstance(event, str) or not isinstance(call, dict) or not call.get("call_id"):
        raise ValueError("not a Retell call event")
    return InboundEvent(
        id=f"{call['call_id']}:{event}", type=event, account=str(call.get("agent_id") or ""), payload=payload
    )


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if isinstance(value, int | float) and value > 0 else None


def record(payload: dict[str, Any]) -> CallRecord:
    call = payload["call"]
    analysis = call.get("call_analysis") or {}
    return CallRecord(
        remote_id=str(call["call_id"]),
        agent_id=str(call.get("agent_id") or ""),
        event=str(payload["event"]),
        direction=str(call.get("direction") or "inbound"),
        from_number=str(call.get("from_number") or ""),
        to_number=str(call.get("to_number") or ""),
        started_at=_ms(call.get("start_timestamp")),
        ended_at=_ms(call.get("end_timestamp")),
        duration_ms=int(call.get("duration_ms") or 0),
        transcript=str(call.get("transcript") or ""),
        summary=str(analysis.get("call_summary") or ""),
        recording_url=str(call.get("recording_url") or ""),
        disconnection_reason=str(call.get("disconnection_reason") or ""),
    )


async def handle(ctx: WebhookContext) -> bool:
    if ctx.connection is None or ctx.event.type not in EVENTS:
        return False
    return await voice.record_call(ctx.session, ctx.connection, record(ctx.event.payload))
