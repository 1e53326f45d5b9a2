"""PageSpeed Insights connect hooks: a key is good if a run for the business's site (or example.com) is accepted."""

from __future__ import annotations

import httpx

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec


async def verify_key(spec: ProviderSpec, env: OAuthEnv, http: httpx.AsyncClient, key: str) -> AccountInfo:
    url = env.endpoints.url(spec.key, spec.api.base_url + "/runPagespeed")
    response = await http.get(url, params={"url": "https://example.com", "key": key, "category": "performance"})
    if response.status_code in (400, 401, 403):
        raise ValueError("the key was refused")
    response.raise_for_status()
    return AccountInfo(id="api-key", name="PageSpeed Insights API", details={})
