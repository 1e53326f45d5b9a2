"""fieldhub.sqlite_async: every statement shape gives what SQLAlchemy's own aiosqlite adapter gives, in one trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fieldhub.db import make_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("n", Integer),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every call queued to aiosqlite's thread."""
    seen: list[str] = []
    queue = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_rows_rowcounts_and_returning_come_back_as_sqlalchemy_gives_them(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(insert(things).returning(things.c.id), [{"name": "a", "n": 1}])
        assert inserted.scalars().all() == [1]
        many = await conn.execute(insert(things), [{"name": "b", "n": 2}, {"name": "c", "n": 3}])
        assert many.rowcount == 2
        single = await conn.execute(insert(things).values(name="d", n=4))
        assert single.inserted_primary_key == (4,)  # from the cursor's lastrowid
        changed = await conn.execute(update(things).where(things.c.n >= 2).values(n=things.c.n * 10))
        assert changed.rowcount == 3
        assert (await conn.execute(select(things.c.name, things.c.n).order_by(things.c.id))).all() == [
            ("a", 1),
            ("b", 20),
            ("c", 30),
            ("d", 40),
        ]
        assert (await conn.execute(select(things).where(things.c.id < 0))).all() == []
        rows = await conn.execute(select(things.c.name).order_by(things.c.id))
        assert rows.fetchmany() == [("a",)] and rows.fetchmany(2) == [("b",), ("c",)] and rows.fetchone() == ("d",)
        assert await conn.scalar(text("SELECT count(*) FROM things")) == 4
    async with engine.connect() as conn:  # streamed results still work (SQLAlchemy's server-side cursor)
        streamed = await conn.stream(select(things.c.name).order_by(things.c.id))
        assert [name async for name in streamed.scalars()] == ["a", "b", "c", "d"]


async def test_errors_are_sqlalchemys_and_a_failed_transaction_changes_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(things).values(name="same"))
            await conn.execute(insert(things).values(name="same"))
    with pytest.raises(exc.OperationalError, match="no such table"):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM nowhere"))
    async with engine.connect() as conn:
        assert await conn.scalar(select(things.c.id)) is None


async def test_a_statement_is_one_trip_and_a_rollback_with_nothing_open_is_none(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(things))
        await conn.execute(insert(things), [{"name": "x"}, {"name": "y"}])
        await conn.commit()
    # Two statements and a commit; the pool's rollback on check-in finds no transaction open.
    assert trips == ["_run", "_run", "commit"]
    trips.clear()
    async with engine.connect() as conn:
        await conn.execute(insert(things).values(name="z"))
        await conn.rollback()
        assert await conn.scalar(select(things.c.id).where(things.c.name == "z")) is None
    assert trips == ["_run", "rollback", "_run"]
