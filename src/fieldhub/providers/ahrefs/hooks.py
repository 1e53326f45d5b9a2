"""Ahrefs connect hooks: a key is good if the limits-and-usage call (free of API units) accepts it."""

from __future__ import annotations

import httpx

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec


async def verify_key(spec: ProviderSpec, env: OAuthEnv, http: httpx.AsyncClient, key: str) -> AccountInfo:
    url = env.endpoints.url(spec.key, spec.api.base_url + "/subscription-info/limits-and-usage")
    response = await http.get(url, headers={"Authorization": f"Bearer {key}"})
    if response.status_code in (401, 403):
        raise ValueError("the key was refused")
    response.raise_for_status()
    plan = response.json().get("limits_and_usage", {}).get("subscription", "")
    return AccountInfo(id="api-key", name=f"Ahrefs ({plan})" if plan else "Ahrefs", details={})
