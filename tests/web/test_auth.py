"""Login, logout, sessions, CSRF and API tokens."""

from __future__ import annotations

import asyncio
import time

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import PASSWORD, Browser, Business
from tests.web.browser import free_port


async def test_login_page_renders(client: Browser) -> None:
    r = await client.get("/login")
    assert r.status_code == 200
    assert "Log in" in r.text


async def test_pages_redirect_to_login(client: Browser) -> None:
    r = await client.get("/")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=/")


async def test_wrong_password_is_refused(client: Browser, biz: Business) -> None:
    r = await client.post(
        "/login", data={"email": biz.owner.email, "password": "nope", "csrf_token": await client.login_csrf()}
    )
    assert r.status_code == 400
    assert "That email and password don&#39;t match." in r.text
    assert "fh_session" not in r.cookies


async def test_login_then_logout(client: Browser, biz: Business) -> None:
    await client.login(biz.owner.email)
    assert (await client.get("/")).status_code == 200
    r = await client.submit("/logout")
    assert r.status_code == 303
    assert (await client.get("/")).status_code == 303


async def test_post_without_csrf_is_refused(client: Browser, biz: Business) -> None:
    await client.login(biz.owner.email)
    r = await client.post("/logout", data={})
    assert r.status_code == 403
    assert (await client.get("/")).status_code == 200  # still logged in: nothing changed


async def test_open_redirect_refused(client: Browser, biz: Business) -> None:
    r = await client.post(
        "/login",
        data={
            "email": biz.owner.email,
            "password": "correct-horse-battery",
            "next": "//evil.example",
            "csrf_token": await client.login_csrf(),
        },
    )
    assert r.headers["location"] == "/"


async def test_a_form_is_answered_after_its_write_is_committed(app, biz: Business) -> None:
    """The request's transaction commits before the reply leaves, not after (FastAPI runs a yield dependency's exit
    after the response unless it is function-scoped). Otherwise a browser following the 303 can outrun the commit:
    seen signing in while the hub's workers held SQLite's write lock, the next page bounced back to /login."""
    committed: list[float] = []

    class SlowCommit(AsyncSession):
        """A commit that takes a while, as one waiting for SQLite's write lock does."""

        async def commit(self) -> None:
            await asyncio.sleep(0.5)
            await super().commit()
            committed.append(time.monotonic())

    app.state.sessionmaker = async_sessionmaker(app.state.engine, class_=SlowCommit, expire_on_commit=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn says it is up only through this flag
            await asyncio.sleep(0.02)
        async with Browser(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            form = {"email": biz.owner.email, "password": PASSWORD, "csrf_token": await client.login_csrf()}
            committed.clear()
            signed_in = await client.post("/login", data=form)
            answered = time.monotonic()
            assert signed_in.status_code == 303
            assert committed and committed[0] <= answered  # the reply waited for the commit
            assert (await client.get("/")).status_code == 200  # and the session it made is there
    finally:
        server.should_exit = True
        await serving
