"""What OAuth work needs from the running process: settings, the database, the vault, where providers live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.hub.emulator.mount import Endpoints
from fieldhub.hub.vault import Vault, ensure_demo_key
from fieldhub.settings import Settings


@dataclass
class OAuthEnv:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    vault: Vault
    endpoints: Endpoints

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @classmethod
    def standalone(cls, settings: Settings, endpoints: Endpoints | None = None) -> OAuthEnv:
        """For a process without the web app (worker, CLI, tests in other processes): its own engine."""
        engine = make_engine(settings.database_url)
        return cls(
            settings,
            engine,
            make_sessionmaker(engine, settings),
            ensure_demo_key(settings),
            endpoints or Endpoints(settings),
        )


def env_for(app: Any) -> OAuthEnv:
    """The app's OAuthEnv, built once (the vault is only needed once a connection is touched)."""
    env = getattr(app.state, "oauth_env", None)
    if env is None:
        state = app.state
        endpoints = getattr(state, "endpoints", None) or Endpoints(state.settings)
        env = OAuthEnv(state.settings, state.engine, state.sessionmaker, ensure_demo_key(state.settings), endpoints)
        app.state.oauth_env = env
    return env
