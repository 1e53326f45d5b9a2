"""Alembic environment: async engine from fieldhub settings; metadata from fieldhub.models."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from fieldhub.db import ScaledDecimal, UTCDateTime, make_engine
from fieldhub.models import metadata
from fieldhub.settings import get_settings

config = context.config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Our TypeDecorators render as their plain implementation so migrations don't import app code.
    if type_ == "type" and isinstance(obj, ScaledDecimal):
        return "sa.BigInteger()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # procrastinate's tables are its own schema (migration 20261122b1), not fieldhub's models.
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    url = config.attributes.get("database_url") or get_settings().database_url
    engine = make_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(run_async())
