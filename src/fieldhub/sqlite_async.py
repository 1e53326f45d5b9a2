"""SQLAlchemy's aiosqlite driver, with one trip to the SQLite thread per statement instead of four.

aiosqlite runs each SQLite connection in a thread of its own, and every call is a trip there and back:
queued, run, and handed back to the event loop. SQLAlchemy's adapter (2.1) makes four trips per
statement (open a cursor, execute, fetch the rows, close the cursor) and one more when the pool takes
a connection back (a rollback, even with no transaction open). A QuickBooks batch costs about eight
statements, so a sync made 35 trips per batch (counted over a 10,000-invoice backfill), each one
waiting for the loop and the thread to hand over the GIL.

Here a statement is one trip: the thread opens a cursor, runs the statement, reads its rows, rowcount
and lastrowid and closes the cursor, and the loop gets all of it back at once. A rollback with no
transaction open is skipped (sqlite3's `in_transaction` is a plain read, safe from the loop's thread).
Everything else — connecting, commit, isolation level, server-side cursors — is SQLAlchemy's.

It is a subclass, not a fork: `make_engine` passes `module=dbapi()` to `create_async_engine`, the
documented way to give a dialect its DBAPI. It reaches one private method of aiosqlite
(`Connection._execute`, the queue every aiosqlite call goes through) and its sqlite3 connection
(`_conn`), as SQLAlchemy's own adapter does for the isolation level; tests/test_sqlite_async.py runs
every statement shape through it.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_


@dataclass(slots=True)
class _Finished:
    """A statement done in the thread, as the base cursor's properties read it from `_cursor`."""

    description: Any = None
    rowcount: int = -1
    lastrowid: Any = None
    arraysize: int = 1  # the DBAPI default: fetchmany() with no size takes this many rows


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[list[Any], _Finished]:
    """In the connection's thread: the whole statement, cursor opened and closed."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return rows, _Finished(cursor.description, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose `_cursor` is the last statement's results (`_Finished`), not an aiosqlite cursor: the
    base class's description, rowcount, lastrowid and arraysize read them from there unchanged."""

    __slots__ = ()

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Finished()  # type: ignore[assignment]  # nothing to open or close in the thread
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None  # as sqlite3's own cursor: nothing to do

    def nextset(self) -> None:
        return None  # SQLite statements have one result set

    async def _async_soft_close(self) -> None:
        return None  # the rows are already here

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._go(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._go(operation, seq_of_parameters, many=True)

    def _go(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            rows, finished = await_(connection._execute(_run, connection._conn, operation, parameters, many))
        except Exception as error:  # noqa: BLE001 - SQLAlchemy maps it to its own exception types
            self._adapt_connection._handle_exception(error)
        finished.arraysize = self._cursor.arraysize  # kept across statements, as a DBAPI cursor keeps it
        self._cursor = finished  # type: ignore[assignment]
        self._rows = deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = OneTripCursor

    def rollback(self) -> None:
        connection = self._connection._connection
        if connection is not None and connection.in_transaction:
            super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    """The DBAPI module for `create_async_engine(..., module=dbapi())` on a sqlite+aiosqlite URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
