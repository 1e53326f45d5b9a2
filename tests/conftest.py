"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, the app, logged-in clients.

Every test that asks for `db_url` (directly or through `app`, `client`, `session`) runs once per
backend: `[sqlite]` and `[postgresql]`. PostgreSQL is used when it answers at
FIELDHUB_TEST_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test); set
FIELDHUB_TEST_BACKENDS=sqlite to run on SQLite alone.

The schema is built once per run into a template (a file for SQLite, a template database for
PostgreSQL) and copied for each test. It is built from the models' metadata; tests/test_migrations.py
proves the Alembic migrations build the same schema (upgrade from empty, then `alembic check`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.db import libpq_url, make_engine, make_sessionmaker
from fieldhub.hub.emulator import speccheck
from fieldhub.hub.sync import queue
from fieldhub.main import create_app
from fieldhub.models import metadata
from fieldhub.settings import Settings

# --- the spec check: every emulator reply the run produces, validated at the end (speccheck.py) ----------
_REPLIES = pytest.StashKey[tuple[Path, bool]]()
_REPORT = pytest.StashKey[speccheck.Report]()


def pytest_configure(config: pytest.Config) -> None:
    """Emulators record their JSON replies into a folder for the run; hub subprocesses inherit the variable."""
    inherited = os.environ.get(speccheck.ENV)
    folder = Path(inherited) if inherited else Path(tempfile.mkdtemp(prefix="fieldhub-replies-"))
    os.environ[speccheck.ENV] = str(folder)
    config.stash[_REPLIES] = (folder, not inherited)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder, owned = session.config.stash.get(_REPLIES, (None, False))
    if folder is None or not owned:
        return
    report = speccheck.check(folder)
    session.config.stash[_REPORT] = report
    shutil.rmtree(folder, ignore_errors=True)
    os.environ.pop(speccheck.ENV, None)
    if not report.ok and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(_REPORT, None)
    for line in report.lines() if report else []:
        terminalreporter.write_line(line, red=line.startswith("  INVALID"), bold=not line.startswith(" "))


PG_URL = os.environ.get("FIELDHUB_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct-horse-battery"
# A fixed test key ring (not a real secret: tests only). 32 bytes, base64.
TEST_KEYS = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _pg_available() -> bool:
    try:
        with psycopg.connect(libpq_url(PG_URL), connect_timeout=2):
            return True
    except Exception:
        return False


def _backends() -> list[str]:
    wanted = os.environ.get("FIELDHUB_TEST_BACKENDS", "sqlite,postgresql").split(",")
    return [b for b in wanted if b == "sqlite" or (b == "postgresql" and _pg_available())]


BACKENDS = _backends()
# argon2's defaults cost ~150 ms a hash by design; tests hash a dozen passwords per business.
accounts.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


async def _create_schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_create_schema(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"fh_tmpl_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(PG_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_create_schema(url))
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(queue.schema_sql())  # procrastinate's tables, as migration 20261122b1 makes them
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"fh_t_{uuid.uuid4().hex[:12]}"
    admin = libpq_url(PG_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(mode="test", database_url=db_url, encryption_keys=TEST_KEYS, public_url="http://testserver")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def session(app) -> AsyncIterator[AsyncSession]:
    async with app.state.sessionmaker() as s:
        yield s


@dataclass
class Business:
    tenant: Tenant
    owner: User
    admin: User
    dispatcher: User
    tech: User


async def make_business(session: AsyncSession, slug: str) -> Business:
    tenant = await accounts.create_tenant(session, name=f"Business {slug}", slug=slug)
    users = {}
    for role in Role:
        users[role] = await accounts.create_user(
            session,
            tenant=tenant,
            email=f"{role}@{slug}.test",
            name=f"{role.title()} {slug}",
            role=role,
            password=PASSWORD,
        )
    await session.commit()
    return Business(tenant, users[Role.OWNER], users[Role.ADMIN], users[Role.DISPATCHER], users[Role.TECHNICIAN])


@pytest.fixture
async def biz(session: AsyncSession) -> Business:
    """Business A, with one user per role."""
    return await make_business(session, "a")


@pytest.fixture
async def other_biz(session: AsyncSession) -> Business:
    """Business B: its records must be invisible to A's users."""
    return await make_business(session, "b")


class Browser(httpx.AsyncClient):
    """An httpx client on the app that can log in and knows its CSRF token."""

    csrf: str = ""

    async def login(self, email: str, password: str = PASSWORD) -> Browser:
        r = await self.post(
            "/login", data={"email": email, "password": password, "csrf_token": await self.login_csrf()}
        )
        assert r.status_code == 303, r.text
        page = await self.get("/")
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m, "no CSRF token on the dashboard"
        self.csrf = m.group(1)
        return self

    async def login_csrf(self) -> str:
        """The login form's CSRF value, read from the page as a browser would (its cookie is kept)."""
        page = await self.get("/login")
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m, "no CSRF token on the login page"
        return m.group(1)

    async def submit(self, url: str, data: dict | None = None, **kw) -> httpx.Response:
        """POST a form the way the page does, CSRF token included."""
        return await self.post(url, data={**(data or {}), "csrf_token": self.csrf}, **kw)


@pytest.fixture
async def client(app) -> AsyncIterator[Browser]:
    async with Browser(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_client(app):
    """Several independent browsers on one app: `async with make_client() as c:`."""

    def factory() -> Browser:
        return Browser(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    return factory


@pytest.fixture
async def owner(client: Browser, biz: Business) -> Browser:
    return await client.login(biz.owner.email)


@pytest.fixture
async def sessionmaker(app):
    return app.state.sessionmaker


@pytest.fixture
def engine_factory():
    """For tests that need their own engine (other processes, other loops)."""
    engines = []

    def factory(url: str):
        engine = make_engine(url)
        engines.append(engine)
        return engine, make_sessionmaker(engine)

    return factory
