"""The ProviderClient a sync run uses for one connection: its API base, auth, shared limiter and transport."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.http import ProviderClient
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import ConnectionAuth
from fieldhub.hub.ratelimit import RateLimiter
from fieldhub.hub.sync.adapter import classifier


class InProcessTransport(httpx.AsyncBaseTransport):
    """An emulator mounted in-process, failing the way a socket would.

    ASGITransport enforces no timeout and lets an app's exception escape as itself; over the network
    a stalled reply is a ReadTimeout and a cut connection a RemoteProtocolError. Translating them
    here lets the engine meet the emulator's "timeout" and "drop after commit" faults exactly as it
    would meet them in production.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            async with asyncio.timeout(timeout):
                return await self.inner.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout("no reply in time", request=request) from None
        except httpx.HTTPError:
            raise
        except Exception as exc:  # noqa: BLE001 — whatever the app raised, the client only saw a cut connection
            raise httpx.RemoteProtocolError(f"connection closed: {type(exc).__name__}", request=request) from None

    async def aclose(self) -> None:
        await self.inner.aclose()


def api_base(env: OAuthEnv, connection: Connection) -> str:
    spec = registry.get(connection.provider)
    real = str(spec.api.base_url).format(account_id=connection.account_id) if spec.api else ""
    return env.endpoints.url(connection.provider, real)


def client_for(env: OAuthEnv, connection: Connection, **options: Any) -> ProviderClient:
    """`options` go to ProviderClient (tests inject `sleep`, `retry`, `timeout`, `transport`)."""
    spec = registry.get(connection.provider)
    assert spec.api is not None, f"{connection.provider} has no [api] section"
    transport = options.pop("transport", None) or env.endpoints.transport(connection.provider)
    if isinstance(transport, httpx.ASGITransport):
        transport = InProcessTransport(transport)
    options.setdefault("limiter", RateLimiter(env.sessionmaker))
    return ProviderClient(
        spec.api,
        ConnectionAuth(env, connection.id),
        provider=connection.provider,
        transport=transport,
        base_url=api_base(env, connection),
        classify=classifier(connection.provider),
        **options,
    )
