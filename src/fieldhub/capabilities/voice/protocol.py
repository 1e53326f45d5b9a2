"""What a voice provider implements (its `voice.py`), and the records the capability and the provider exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv


@dataclass(frozen=True)
class ToolSpec:
    """One tool the assistant may call: its name, when to call it (for the model), its JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]
    url: str


@dataclass(frozen=True)
class AgentSpec:
    """The agent as the business is: what it says first, what it knows (prompt), its tools, where calls report."""

    name: str
    greeting: str
    prompt: str
    tools: list[ToolSpec]
    webhook_url: str
    voice_id: str = ""


@dataclass(frozen=True)
class AgentInfo:
    agent_id: str
    llm_id: str
    phone_number: str


@dataclass(frozen=True)
class ToolRequest:
    """A tool call as the provider sent it. `from_number` is the telephone network's caller id, never what the
    caller said: balances are given only when it matches the customer's number."""

    call_id: str
    agent_id: str
    name: str
    args: dict[str, Any]
    from_number: str
    to_number: str = ""


@dataclass(frozen=True)
class CallRecord:
    """A call as the provider reports it (its call_started / call_ended / call_analyzed events)."""

    remote_id: str
    agent_id: str
    event: str
    direction: str = "inbound"
    from_number: str = ""
    to_number: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int = 0
    transcript: str = ""
    summary: str = ""
    recording_url: str = ""
    disconnection_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class VoiceApi(Protocol):
    """A voice provider's `voice.py` module."""

    async def ensure_agent(self, env: OAuthEnv, conn: Connection, spec: AgentSpec) -> AgentInfo:
        """Create the agent (and its model config and phone number) or update the one in conn.settings."""
        ...

    async def call_me(self, env: OAuthEnv, conn: Connection, to_number: str) -> str:
        """Place an outbound test call from the business's number to `to_number`; the provider's call id."""
        ...

    def verify(self, headers: dict[str, str], body: bytes, secret: str, now_ms: int | None = None) -> str | None:
        """The request's signature if it is valid and fresh (the replay guard keeps it), else None."""
        ...

    def parse_tool(self, body: dict[str, Any], name: str) -> ToolRequest:
        """The tool request in the capability's words (ValueError when it is not one)."""
        ...
