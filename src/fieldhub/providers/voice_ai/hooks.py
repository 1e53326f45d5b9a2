"""Voice AI connect hooks: a key is good if listing the workspace's agents succeeds; once connected, the assistant's
agent, model and phone number are made from the business (capabilities/voice)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.voice import service as voice
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec


async def verify_key(spec: ProviderSpec, env: OAuthEnv, http: httpx.AsyncClient, key: str) -> AccountInfo:
    response = await http.get(
        env.endpoints.url(spec.key, spec.api.base_url + "/list-agents"), headers={"Authorization": f"Bearer {key}"}
    )
    if response.status_code in (401, 403):
        raise ValueError("the key was refused")
    response.raise_for_status()
    agents = response.json()
    first = agents[0].get("agent_name", "") if agents else ""
    return AccountInfo(id="api-key", name=f"Voice AI — {first}" if first else "Voice AI", details={})


async def on_connected(env: OAuthEnv, session: AsyncSession, conn: Connection) -> None:
    await voice.setup(env, session, conn)
