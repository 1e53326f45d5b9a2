"""A QuickBooks connection (connected through the in-process emulator's consent page) with its accounts mapped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.engine import sync_connection
from fieldhub.providers.quickbooks.emulator import US_REALM
from fieldhub.providers.quickbooks.emulator.seed import US_MAPPING as MAPPING
from tests.hub.oauth.conftest import consent


@dataclass
class QBOSetup:
    app: Any
    env: Any
    connection_id: int
    emulator: Any
    realm: str
    sleeps: list[float]

    async def sync(self, **kw: Any):
        options = {"sleep": self._sleep, "timeout": 2.0} | kw.pop("client_options", {})
        return await sync_connection(
            self.env, self.connection_id, trigger=kw.pop("trigger", "manual"), client_options=options, **kw
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def objects(self, entity: str) -> dict[str, dict]:
        return self.emulator.companies[self.realm].objects[entity]

    def api_requests(self, since: int = 0) -> list:
        return [r for r in self.emulator.requests if r.seq > since and "/v3/company/" in r.path]


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


async def connect_mapped(app, owner, session) -> QBOSetup:
    """Connect QuickBooks (US company) through the emulator's consent page, save an account mapping and turn
    Auto-Sync on: the connection as the guide leaves it (a new one starts with Auto-Sync off)."""
    response, _ = await consent(owner, "quickbooks", account=US_REALM)
    assert response.status_code in (200, 302, 303), response.text
    connection = await session.scalar(select(Connection).where(Connection.provider == "quickbooks"))
    assert connection is not None
    connection.settings = {**(connection.settings or {}), "account_mapping": dict(MAPPING)}
    connection.auto_sync = True
    await session.commit()
    emulator = app.state.endpoints.emulators["quickbooks"]
    return QBOSetup(app, env_for(app), connection.id, emulator, US_REALM, [])
