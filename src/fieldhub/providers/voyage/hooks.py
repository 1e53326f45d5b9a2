"""Voyage AI connect hooks: a key is good if Voyage embeds one word with it (1 token, $0.00000002)."""

from __future__ import annotations

import httpx

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec

MODEL = "voyage-3.5-lite"


async def verify_key(spec: ProviderSpec, env: OAuthEnv, http: httpx.AsyncClient, key: str) -> AccountInfo:
    response = await http.post(
        env.endpoints.url(spec.key, spec.api.base_url + "/embeddings"),
        json={"input": ["ok"], "model": MODEL, "input_type": "query"},
        headers={"Authorization": f"Bearer {key}"},
    )
    if response.status_code in (401, 403):
        raise ValueError("the key was refused")
    response.raise_for_status()
    return AccountInfo(id="api-key", name=f"Voyage AI — {MODEL}", details={"Model": MODEL})
