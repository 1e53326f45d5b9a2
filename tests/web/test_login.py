"""The login form: its CSRF value (issue 14 item 8) and the throttle's answer on the page (issue 14 item 2)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from tests.conftest import PASSWORD, Browser, Business

from fieldhub.core.accounts.models import LoginSession, LoginThrottle
from fieldhub.web.routes.auth import LOGIN_CSRF_COOKIE


async def _count(session, model) -> int:  # noqa: ANN001
    return await session.scalar(select(func.count()).select_from(model))


async def test_issue14_item8_cross_site_login_post_is_refused_and_nothing_happens(
    client: Browser, make_client, session, biz: Business
) -> None:
    right = {"email": biz.owner.email, "password": PASSWORD}
    # A page elsewhere posts the attacker's credentials: no cookie of ours, and a made-up value or none.
    for data in (right, {**right, "csrf_token": "x" * 43}):
        async with make_client() as victim:
            r = await victim.post("/login", data=data)
            assert r.status_code == 403
            assert "This sign-in form expired or came from another site, so nothing was done." in r.text
            assert "fh_session" not in r.cookies
            assert (await victim.get("/")).status_code == 303  # still signed out
    # The cookie alone is not enough either: the form must carry the same value.
    await client.login_csrf()
    r = await client.post("/login", data={**right, "csrf_token": "y" * 43})
    assert r.status_code == 403 and "fh_session" not in r.cookies
    assert await _count(session, LoginSession) == 0
    assert await _count(session, LoginThrottle) == 0  # not even counted as an attempt


async def test_issue14_item8_login_csrf_cookie_and_form_match(client: Browser, biz: Business) -> None:
    page = await client.get("/login")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_CSRF_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/login" in cookie
    value = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.cookies[LOGIN_CSRF_COOKIE] == value and len(value) >= 32
    again = await client.get("/login")
    assert re.search(r'name="csrf_token" value="([^"]+)"', again.text).group(1) == value  # kept, not re-minted
    r = await client.post("/login", data={"email": biz.owner.email, "password": PASSWORD, "csrf_token": value})
    assert r.status_code == 303 and "fh_session" in r.cookies
    assert LOGIN_CSRF_COOKIE not in client.cookies  # spent with the sign-in
    assert (await client.get("/")).status_code == 200


async def test_issue14_item2_login_page_says_when_to_try_again(client: Browser, biz: Business) -> None:
    token = await client.login_csrf()
    wrong = {"email": biz.owner.email, "password": "nope", "csrf_token": token}
    statuses = [(await client.post("/login", data=wrong)).status_code for _ in range(5)]
    assert statuses == [400] * 5
    r = await client.post("/login", data={**wrong, "password": PASSWORD})
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= 60
    assert f"Too many failed sign-ins. Try again in {wait} s." in r.text
    assert "fh_session" not in r.cookies
