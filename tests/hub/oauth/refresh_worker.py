"""Run as a separate process: N concurrent API calls that each get their token through get_access_token.

python -m tests.hub.oauth.refresh_worker <db_url> <emulator_url> <connection_id> <realm> <n> <start_at>
Prints a JSON list: the status of each API call, or the error it raised.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import ConnectionAuth
from fieldhub.settings import ProviderCredentials, Settings
from tests.conftest import TEST_KEYS


async def run(db_url: str, emulator_url: str, connection_id: int, realm: str, n: int, start_at: float) -> list:
    settings = Settings(
        mode="test",
        database_url=db_url,
        encryption_keys=TEST_KEYS,
        public_url="http://testserver",
        providers={"quickbooks": ProviderCredentials(base_url=emulator_url)},
    )
    env = OAuthEnv.standalone(settings)
    url = f"{emulator_url}/v3/company/{realm}/companyinfo/{realm}"
    # Both processes start together, so their calls really overlap.
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def call(http: httpx.AsyncClient) -> int:
        auth = ConnectionAuth(env, connection_id)
        response = await http.get(url, headers=await auth.headers())
        if response.status_code == 401:
            await auth.refresh()
            response = await http.get(url, headers=await auth.headers())
        return response.status_code

    try:
        async with httpx.AsyncClient(timeout=60) as http:
            results = await asyncio.gather(*(call(http) for _ in range(n)), return_exceptions=True)
    finally:
        await env.engine.dispose()
    return [r if isinstance(r, int) else repr(r) for r in results]


if __name__ == "__main__":
    db_url, emulator_url, cid, realm, n, start_at = sys.argv[1:7]
    print(json.dumps(asyncio.run(run(db_url, emulator_url, int(cid), realm, int(n), float(start_at)))))
