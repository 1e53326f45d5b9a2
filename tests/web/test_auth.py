"""Login, logout, sessions, CSRF and API tokens."""

from __future__ import annotations

from tests.conftest import Browser, Business


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
