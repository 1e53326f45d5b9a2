"""Finding a connection's ledger: the accounting providers whose folder has a `ledger.py` (open_ledger)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fieldhub.capabilities.accounting.protocol import Ledger
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec
from fieldhub.hub.sync.clients import client_for

CAPABILITY = "accounting"


def module(provider: str) -> ModuleType | None:
    """The provider's ledger module, or None if it is not a ledger (yet)."""
    try:
        spec = registry.get(provider)
    except registry.UnknownProvider:
        return None
    if spec.category != CAPABILITY:
        return None
    found = registry.import_module(provider, "ledger")
    return found if found is not None and hasattr(found, "open_ledger") else None


def providers() -> list[ProviderSpec]:
    """Every accounting provider that implements the ledger protocol, in hub order."""
    return [p for p in registry.providers_of(CAPABILITY) if module(p.key) is not None]


def name_of(provider: str) -> str:
    """The ledger's name as pages say it (its ledger module's NAME, else the provider's name)."""
    found = module(provider)
    return str(getattr(found, "NAME", "")) or registry.get(provider).name


def is_ledger(provider: str) -> bool:
    return module(provider) is not None


@asynccontextmanager
async def open_for(env: OAuthEnv, conn: Connection, **client_options: Any) -> AsyncIterator[Ledger]:
    """The connection's ledger over a client of its own (rate limits, retries, the token under its lock)."""
    found = module(conn.provider)
    if found is None:
        raise LookupError(f"{conn.provider} is not a ledger")
    async with client_for(env, conn, **client_options) as client:
        yield found.open_ledger(conn, client, env)
