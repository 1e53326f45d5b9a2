"""Retell AI as a voice provider (capabilities/voice): its agent, LLM and number, test calls, signed tool requests.

The agent is a Retell LLM (the prompt, the greeting and fieldhub's four tools as custom functions on fieldhub's
signed endpoint) behind an agent whose webhook is fieldhub's, answering a Retell number. Retell signs tool requests
and webhooks alike: `X-Retell-Signature: v=<unix ms>,d=<hex HMAC-SHA256(API key, raw body + ms)>`, five minutes'
grace (retell-sdk's own verifier: research/other-api-facts.md §10.3).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from fieldhub.capabilities.voice.protocol import AgentInfo, AgentSpec, ToolRequest
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.clients import client_for

SIGNATURE = re.compile(r"v=(\d+),d=([0-9a-f]{64})")
WINDOW_MS = 5 * 60 * 1000
VOICE_ID = "11labs-Adrian"
TOOL_TIMEOUT_MS = 8_000  # the caller is waiting: fieldhub answers well within this, Retell retries once after


def verify(headers: dict[str, str], body: bytes, secret: str, now_ms: int | None = None) -> str | None:
    """The signature's digest when it is Retell's over this body with this key and within five minutes."""
    match = SIGNATURE.fullmatch(headers.get("x-retell-signature", "").strip())
    if not match or not secret:
        return None
    stamp, digest = match.group(1), match.group(2)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - int(stamp)) > WINDOW_MS:
        return None
    expected = hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return digest if hmac.compare_digest(expected, digest) else None


def parse_tool(body: dict[str, Any], name: str) -> ToolRequest:
    call = body["call"]
    args = body.get("args")
    if args is None:  # args_at_root: the arguments are the body itself
        args = {k: v for k, v in body.items() if k not in ("call", "name")}
    if not isinstance(call, dict) or not isinstance(args, dict) or body.get("name", name) != name:
        raise ValueError("not a Retell tool request")
    return ToolRequest(
        call_id=str(call["call_id"]),
        agent_id=str(call.get("agent_id") or ""),
        name=name,
        args=args,
        from_number=str(call.get("from_number") or ""),
        to_number=str(call.get("to_number") or ""),
    )


def _llm_body(spec: AgentSpec) -> dict[str, Any]:
    return {
        "general_prompt": spec.prompt,
        "begin_message": spec.greeting,
        "general_tools": [
            {
                "type": "custom",
                "name": tool.name,
                "description": tool.description,
                "url": tool.url,
                "parameters": tool.parameters,
                "speak_during_execution": True,
                "speak_after_execution": True,
                "timeout_ms": TOOL_TIMEOUT_MS,
                "max_retry": 1,
            }
            for tool in spec.tools
        ],
    }


async def ensure_agent(env: OAuthEnv, conn: Connection, spec: AgentSpec) -> AgentInfo:
    """Update the agent fieldhub made for this connection, or make one (LLM, agent, then a number answering it)."""
    held = (conn.settings or {}).get("agent") or {}
    async with client_for(env, conn) as client:
        if held.get("llm_id") and held.get("agent_id"):
            await client.patch(f"/update-retell-llm/{held['llm_id']}", json=_llm_body(spec))
            await client.patch(
                f"/update-agent/{held['agent_id']}", json={"agent_name": spec.name, "webhook_url": spec.webhook_url}
            )
            return AgentInfo(held["agent_id"], held["llm_id"], held.get("phone_number", ""))
        llm = (await client.post("/create-retell-llm", json=_llm_body(spec))).json()
        agent = (
            await client.post(
                "/create-agent",
                json={
                    "response_engine": {"type": "retell-llm", "llm_id": llm["llm_id"]},
                    "voice_id": spec.voice_id or VOICE_ID,
                    "agent_name": spec.name,
                    "webhook_url": spec.webhook_url,
                },
            )
        ).json()
        number = (
            await client.post(
                "/create-phone-number",
                json={
                    "inbound_agents": [{"agent_id": agent["agent_id"], "weight": 1}],
                    "outbound_agents": [{"agent_id": agent["agent_id"], "weight": 1}],
                    "nickname": spec.name,
                },
            )
        ).json()
    return AgentInfo(agent["agent_id"], llm["llm_id"], number["phone_number"])


async def call_me(env: OAuthEnv, conn: Connection, to_number: str) -> str:
    held = (conn.settings or {}).get("agent") or {}
    async with client_for(env, conn) as client:
        reply = await client.post(
            "/v2/create-phone-call",
            json={
                "from_number": held.get("phone_number"),
                "to_number": to_number,
                "override_agent_id": held.get("agent_id"),
            },
        )
    return str(reply.json()["call_id"])
