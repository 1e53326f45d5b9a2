"""Migrations upgrade an empty database to head on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command

from fieldhub.db import libpq_url
from fieldhub.migrate import alembic_config, check, upgrade
from tests.conftest import BACKENDS, PG_URL


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_then_no_drift(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        upgrade(url)
        check(url)
        return
    name = f"fh_mig_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(PG_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = re.sub(r"/[^/]+$", f"/{name}", PG_URL)
        upgrade(url)
        check(url)
        # procrastinate's queue comes and goes with its migration, and nothing of it is left behind.
        assert _procrastinate_objects(url) > 10
        command.downgrade(alembic_config(url), "20261122a1")
        assert _procrastinate_objects(url) == 0
        upgrade(url)
        check(url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _procrastinate_objects(url: str) -> int:
    """Tables, routines and types named procrastinate_… in the database."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%')"
            " + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%')"
            " + (SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%')"
        ).fetchone()
    assert row is not None
    return int(row[0])
