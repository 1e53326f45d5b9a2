"""The login form: the throttle's answer on the page (issue 14 item 2)."""

from __future__ import annotations

from tests.conftest import PASSWORD, Browser, Business


async def test_issue14_item2_login_page_says_when_to_try_again(client: Browser, biz: Business) -> None:
    wrong = {"email": biz.owner.email, "password": "nope"}
    statuses = [(await client.post("/login", data=wrong)).status_code for _ in range(5)]
    assert statuses == [400] * 5
    r = await client.post("/login", data={**wrong, "password": PASSWORD})
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= 60
    assert f"Too many failed sign-ins. Try again in {wait} s." in r.text
    assert "fh_session" not in r.cookies
