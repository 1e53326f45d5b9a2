"""Async engine, session factory and the declarative Base every table derives from."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from fieldhub import sqlite_async

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which drops the zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact Decimal stored as a scaled integer (cents for money).

    SQLite has no exact decimal type (NUMERIC becomes a float there); integers are exact on both
    databases and SUM() over them stays exact. Values with more places than `scale` are refused
    rather than silently rounded: rounding happens in the service, where it is stated.
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.factor = Decimal(10) ** scale

    def process_bind_param(self, value: Decimal | int | None, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("floats are not money: pass a Decimal")
        scaled = Decimal(value) * self.factor
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        # The integer's digits with the point moved: exactly `scale` places, no division or rounding.
        return Decimal(value).scaleb(-self.scale)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class JSONText(str):
    """JSON already written: a JSON column stores this text as it is (see _json_serializer)."""


def _json_serializer(value: Any) -> str:
    """JSON columns: json.dumps, except for text written once already (hub.sync.models.history_body)."""
    return value if type(value) is JSONText else json.dumps(value)


def libpq_url(url: str) -> str:
    """A PostgreSQL SQLAlchemy URL as libpq (psycopg, procrastinate) takes it: postgresql+psycopg://… → postgresql://…"""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    kwargs.setdefault("json_serializer", _json_serializer)
    if url.startswith("sqlite"):
        # One trip to aiosqlite's thread per statement, not four: see fieldhub.sqlite_async.
        engine = create_async_engine(url, module=sqlite_async.dbapi(), connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


SETTINGS_KEY = "fieldhub.settings"


def make_sessionmaker(engine: AsyncEngine, settings: Any = None) -> async_sessionmaker[AsyncSession]:
    """Sessions of the engine; with `settings`, each session carries them in `session.info[SETTINGS_KEY]`, so a
    domain-event listener can read a setting of the process it runs in (capabilities/memory/queue.py)."""
    return async_sessionmaker(engine, expire_on_commit=False, info={SETTINGS_KEY: settings} if settings else None)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session
