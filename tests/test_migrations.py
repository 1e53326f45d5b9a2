"""Migrations upgrade an empty database to head on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_issue14_item3_accounts_two_businesses_already_share_keep_one_holder(backend: str, tmp_path: Path) -> None:
    """Before uq_connections_provider_held_account, two businesses could hold one Stripe account. The upgrade keeps the
    one its events went to (connected, newest) and pauses the other with the reason, so the index can exist."""
    import sqlalchemy as sa

    if backend == "sqlite":
        url, sync_url, drop = (
            f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
            f"sqlite:///{tmp_path / 'shared.db'}",
            None,
        )
    else:
        name = f"fh_mig_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(libpq_url(PG_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = re.sub(r"/[^/]+$", f"/{name}", PG_URL)
        sync_url, drop = url, name
    try:
        upgrade(url, "20261122c1")
        engine = sa.create_engine(sync_url)
        md = sa.MetaData()
        tenants = sa.Table("tenants", md, autoload_with=engine)
        connections = sa.Table("connections", md, autoload_with=engine)
        at = datetime(2026, 12, 1, tzinfo=UTC)
        common = {"account_name": "", "account_details": {}, "scopes": "", "sync_error": "", "auto_sync": True}
        common |= {"settings": {}, "token_version": 0, "created_at": at, "updated_at": at}
        with engine.begin() as db:
            for n in (1, 2, 3):
                db.execute(
                    tenants.insert().values(
                        id=n,
                        name=f"B{n}",
                        slug=f"b{n}",
                        timezone="UTC",
                        currency="USD",
                        country="US",
                        email="",
                        phone="",
                        created_at=at,
                        updated_at=at,
                    )
                )
            for n, (tenant, provider, account, status) in enumerate(
                [
                    (1, "stripe", "acct_1Shared", "connected"),
                    (2, "stripe", "acct_1Shared", "connected"),  # the newest: Stripe's events went here
                    (3, "stripe", "acct_1Shared", "disconnected"),
                    (1, "google_calendar", "sub-1", "connected"),  # a person's login: shared is fine
                    (2, "google_calendar", "sub-1", "connected"),
                ],
                1,
            ):
                db.execute(
                    connections.insert().values(
                        id=n, tenant_id=tenant, provider=provider, account_id=account, status=status, **common
                    )
                )
        upgrade(url)
        check(url)
        with engine.connect() as db:
            rows = db.execute(
                sa.text("SELECT id, status, owns_account, held_account, sync_error FROM connections ORDER BY id")
            ).all()
        engine.dispose()
        assert [(r[0], r[1], bool(r[2]), r[3]) for r in rows] == [
            (1, "needs_reauth", False, None),
            (2, "connected", True, "acct_1Shared"),
            (3, "disconnected", True, None),
            (4, "connected", False, None),
            (5, "connected", False, None),
        ]
        assert rows[0][4].startswith("This account is also connected to another fieldhub business")
    finally:
        if drop:
            with psycopg.connect(libpq_url(PG_URL), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
