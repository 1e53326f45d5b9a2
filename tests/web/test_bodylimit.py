"""Issue 14 item 1: bodies are bounded while they stream in, per route family, and the caller is checked first.

Each request sends a chunked body from a generator that counts what the app pulled: httpx's ASGI transport
hands the app one chunk per `receive()`, so the count is exactly what the server took in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import func, select
from tests.conftest import Browser, Business

from fieldhub.core.accounts.service import create_api_token
from fieldhub.core.customers.models import Customer
from fieldhub.web.bodylimit import FORMS, LIMITS, limit_for

CHUNK = 64 * 1024
API_LIMIT = limit_for("/api/v1/customers")


class Counted:
    """A chunked body of `total` bytes (JSON-ish for the API, a form field for pages) that counts its pulls."""

    def __init__(self, total: int, head: bytes = b'{"display_name": "x", "notes": "') -> None:
        self.total = total
        self.head = head
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            chunk = self.head if sent == 0 else b"n" * min(CHUNK, self.total - sent)
            self.pulled += len(chunk)
            sent += len(chunk)
            yield chunk


async def _customers(session) -> int:  # noqa: ANN001
    return await session.scalar(select(func.count()).select_from(Customer))


def test_limits_fit_each_family() -> None:
    assert dict(LIMITS)["/webhooks/"] < API_LIMIT < FORMS
    assert limit_for("/login") < 64 * 1024 and limit_for("/customers/new") == FORMS


async def test_issue14_item1_unauthenticated_api_body_is_never_read(client: Browser, session, biz: Business) -> None:
    for headers in ({}, {"Authorization": "Bearer fhp_not-a-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        body = Counted(300 * 1024 * 1024)
        r = await client.post(
            "/api/v1/customers", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert r.status_code == 401, r.text
        assert r.json() == {"detail": "A valid API token is required"}
        assert body.pulled <= CHUNK, body.pulled  # at most the first chunk, never the 300 MB
    assert await _customers(session) == 0


async def test_issue14_item1_authenticated_oversize_refused_while_streaming(
    client: Browser, session, biz: Business
) -> None:
    token = await create_api_token(session, biz.owner, "t")
    await session.commit()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = Counted(300 * 1024 * 1024)
    r = await client.post("/api/v1/customers", content=body, headers=auth)
    assert r.status_code == 413
    assert r.json() == {"detail": "Request body too large: at most 4 MB here."}
    assert API_LIMIT < body.pulled <= API_LIMIT + CHUNK

    # A declared length past the limit is refused before a byte is taken.
    declared = Counted(API_LIMIT + 1)
    r = await client.post("/api/v1/customers", content=declared, headers={**auth, "Content-Length": str(API_LIMIT + 1)})
    assert r.status_code == 413 and declared.pulled == 0

    # Within the limit the body is read and validated as before.
    r = await client.post("/api/v1/customers", json={"display_name": "Ada", "notes": "n" * 1_000_001}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"]["notes"].startswith("Too long")
    r = await client.post("/api/v1/customers", json={"display_name": "Ada"}, headers=auth)
    assert r.status_code == 201
    assert await _customers(session) == 1


async def test_issue14_item1_page_forms_signed_in_first_then_bounded(
    client: Browser, owner: Browser, make_client, session, biz: Business
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with make_client() as stranger:
        body = Counted(100 * 1024 * 1024, head=b"display_name=x&notes=")
        r = await stranger.post("/customers/new", content=body, headers=form)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert body.pulled == 0

    body = Counted(100 * 1024 * 1024, head=f"csrf_token={owner.csrf}&display_name=x&notes=".encode())
    r = await owner.post("/customers/new", content=body, headers=form)
    assert r.status_code == 413
    assert "Request body too large: at most 12 MB here." in r.text and "<html" in r.text  # the error page
    assert FORMS < body.pulled <= FORMS + CHUNK
    assert await _customers(session) == 0


async def test_issue14_item1_webhooks_and_login_have_their_own_limits(client: Browser) -> None:
    webhook = dict(LIMITS)["/webhooks/"]
    body = Counted(50 * 1024 * 1024, head=b'{"id": "evt_1", "pad": "')
    r = await client.post("/webhooks/stripe", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "at most 1 MB" in r.json()["detail"]
    assert webhook < body.pulled <= webhook + CHUNK

    login = limit_for("/login")
    body = Counted(10 * 1024 * 1024, head=b"email=a%40b.test&password=")
    r = await client.post("/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert login < body.pulled <= login + CHUNK
