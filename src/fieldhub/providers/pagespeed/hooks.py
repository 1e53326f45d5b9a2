"""PageSpeed Insights hooks: a key is good if a run for the business's site (or example.com) is accepted; the
health check asks about the key alone."""

from __future__ import annotations

import httpx

from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.errors import NeedsReauth, RetryLater
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import get_access_token
from fieldhub.hub.spec import ProviderSpec

KEY = "pagespeed"
CHECK_TIMEOUT = 10.0


async def verify_key(spec: ProviderSpec, env: OAuthEnv, http: httpx.AsyncClient, key: str) -> AccountInfo:
    url = env.endpoints.url(spec.key, spec.api.base_url + "/runPagespeed")
    response = await http.get(url, params={"url": "https://example.com", "key": key, "category": "performance"})
    if response.status_code in (400, 401, 403):
        raise ValueError("the key was refused")
    response.raise_for_status()
    return AccountInfo(id="api-key", name="PageSpeed Insights API", details={})


async def check_health(env: OAuthEnv, conn: Connection) -> None:
    """The health check without running an audit (a real run takes Lighthouse tens of seconds): runPagespeed with
    no url. Google checks the key first, so a refused key answers API_KEY_INVALID, and a good one goes on to
    refuse the missing url with a plain 400."""
    spec = registry.get(KEY)
    key = await get_access_token(env, conn.id)
    async with env.endpoints.client(KEY, timeout=CHECK_TIMEOUT) as http:
        try:
            response = await http.get(env.endpoints.url(KEY, spec.api.base_url + "/runPagespeed"), params={"key": key})
        except httpx.HTTPError as e:
            raise RetryLater(f"{spec.name} could not be reached ({type(e).__name__})") from None
    if response.status_code in (401, 403) or "API_KEY_INVALID" in response.text:
        raise NeedsReauth(
            f"{spec.name} refused the API key. Enter a new key to reconnect.", status=response.status_code
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryLater(f"{spec.name} had a temporary problem ({response.status_code})", status=response.status_code)
