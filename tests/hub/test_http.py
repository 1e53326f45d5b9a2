"""The one HTTP client: refresh once on 401, Retry-After, backoff, safe retries, error kinds, redacted logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from prometheus_client import REGISTRY

from fieldhub import log as fieldhub_log
from fieldhub.hub.errors import NeedsReauth, NotEntitled, ProviderError, Rejected, RetryLater
from fieldhub.hub.http import Api, ProviderClient, RetryPolicy, parse_retry_after, provider_message
from fieldhub.hub.ratelimit import RateLimiter

API = Api(base_url="https://api.acme.test/v2")


class FakeAuth:
    """Bearer tokens that change on refresh; registers them as the vault would when it decrypts."""

    def __init__(self, token: str = "access-token-0001-abcdef", fail_refresh: bool = False) -> None:
        self.token = token
        self.refreshes = 0
        self.fail_refresh = fail_refresh
        fieldhub_log.register_secret(token)

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def refresh(self) -> None:
        self.refreshes += 1
        if self.fail_refresh:
            raise NeedsReauth("the refresh token was revoked")
        self.token = f"access-token-{self.refreshes + 1:04d}-abcdef"
        fieldhub_log.register_secret(self.token)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*replies: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
    """A transport answering each request with the next reply; it records what it was sent."""
    sent: list[httpx.Request] = []
    queue = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply

    return httpx.MockTransport(handler), sent


def make(transport, auth=None, sleeps=None, **kw) -> ProviderClient:
    return ProviderClient(
        kw.pop("config", API),
        auth,
        kw.pop("limiter", None),
        provider="acme",
        transport=transport,
        sleep=sleeps or Sleeps(),
        rng=random.Random(7),
        **kw,
    )


def ok(body: object = None, **kw) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"ok": True}, **kw)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_success_sends_auth_and_idempotency_key() -> None:
    transport, sent = scripted(ok({"id": 1}))
    async with make(transport, FakeAuth()) as client:
        r = await client.post("/invoices", json={"n": 1}, idempotency_key="conn1:inv:9:v3")
    assert r.json() == {"id": 1}
    assert sent[0].url == "https://api.acme.test/v2/invoices"
    assert sent[0].headers["authorization"] == "Bearer access-token-0001-abcdef"
    assert sent[0].headers["idempotency-key"] == "conn1:inv:9:v3"
    assert json.loads(sent[0].content) == {"n": 1}


async def test_401_refreshes_once_then_succeeds() -> None:
    def needs_fresh_token(request: httpx.Request) -> httpx.Response:
        fresh = request.headers["authorization"] == "Bearer access-token-0002-abcdef"
        return ok() if fresh else httpx.Response(401, json={"error": "invalid_token"})

    auth = FakeAuth()
    before = counter("fieldhub_token_refreshes_total", provider="acme")
    transport, sent = scripted(needs_fresh_token)
    async with make(transport, auth) as client:
        r = await client.get("/customers")
    assert r.status_code == 200
    assert auth.refreshes == 1
    assert [q.headers["authorization"] for q in sent] == [
        "Bearer access-token-0001-abcdef",
        "Bearer access-token-0002-abcdef",
    ]
    assert counter("fieldhub_token_refreshes_total", provider="acme") == before + 1


async def test_401_after_refresh_is_needs_reauth() -> None:
    auth = FakeAuth()
    transport, sent = scripted(httpx.Response(401, json={"message": "token revoked"}))
    sleeps = Sleeps()
    async with make(transport, auth, sleeps) as client:
        with pytest.raises(NeedsReauth) as exc:
            await client.get("/customers")
    assert auth.refreshes == 1
    assert len(sent) == 2
    assert sleeps.calls == []
    assert "token revoked" in exc.value.reason and exc.value.status == 401


async def test_refresh_that_fails_propagates_needs_reauth() -> None:
    transport, sent = scripted(httpx.Response(401))
    async with make(transport, FakeAuth(fail_refresh=True)) as client:
        with pytest.raises(NeedsReauth, match="revoked"):
            await client.get("/x")
    assert len(sent) == 1


async def test_429_retry_after_seconds_is_honoured() -> None:
    before = counter("fieldhub_provider_429_total", provider="acme")
    transport, sent = scripted(httpx.Response(429, headers={"Retry-After": "7"}), ok())
    sleeps = Sleeps()
    async with make(transport, FakeAuth(), sleeps) as client:
        # Even a plain POST: a 429 means the provider did nothing with it.
        r = await client.post("/invoices", json={})
    assert r.status_code == 200
    assert sleeps.calls == [pytest.approx(7.0, abs=0.05)]  # the hold's end, from when the reply came
    assert len(sent) == 2
    assert counter("fieldhub_provider_429_total", provider="acme") == before + 1


async def test_429_retry_after_http_date_is_honoured() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    transport, _ = scripted(httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}), ok())
    sleeps = Sleeps()
    async with make(transport, None, sleeps) as client:
        await client.get("/x")
    assert len(sleeps.calls) == 1 and 27 <= sleeps.calls[0] <= 30


async def test_a_retry_after_holds_back_the_clients_other_requests_to_that_bucket() -> None:
    """A provider throttles the account: a request the client has not sent yet when another's 429 comes
    back waits the Retry-After out too, whether it was about to start or already waiting for its slot."""
    answered_429 = asyncio.Event()
    log: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        log.append(request.url.path)
        if request.url.path.endswith("/a") and log.count(request.url.path) == 1:
            answered_429.set()
            return httpx.Response(429, headers={"Retry-After": "5"})
        return ok()

    class SlowSlots:
        """The limiter's slot for /b comes as soon as /a's 429 is answered (a slot that took a while), and a
        slot is given back with an await, as the real limiter's is (a database transaction)."""

        @contextlib.asynccontextmanager
        async def slot(self, provider, bucket, **limits):
            if asyncio.current_task().get_name() == "b":
                await answered_429.wait()
            yield None
            await asyncio.sleep(0)

    sleeps = Sleeps()
    async with make(httpx.MockTransport(handler), None, sleeps, limiter=SlowSlots()) as client:
        a = asyncio.create_task(client.get("/a", bucket="realm-1"), name="a")
        b = asyncio.create_task(client.get("/b", bucket="realm-1"), name="b")
        await asyncio.gather(a, b)
        assert sorted(log) == ["/v2/a", "/v2/a", "/v2/b"]
        # /b waited /a's Retry-After out before it left (the sleeps are fake, so the order of /b and /a's
        # retry after them means nothing): /a's retry slept, and so did /b.
        assert len(sleeps.calls) == 2 and all(4.9 < s <= 5 for s in sleeps.calls)
        sleeps.calls.clear()
        await client.get("/c", bucket="realm-2")  # another bucket is not held
    assert sleeps.calls == []


async def test_retry_after_longer_than_a_worker_should_sleep_goes_back_to_the_engine() -> None:
    transport, sent = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    async with make(transport, None, sleeps, retry=RetryPolicy(max_inline_wait=60)) as client:
        with pytest.raises(RetryLater) as exc:
            await client.get("/x")
    assert exc.value.retry_after == 3600 and exc.value.status == 429
    assert sleeps.calls == [] and len(sent) == 1


async def test_5xx_is_retried_with_full_jitter_then_succeeds() -> None:
    transport, sent = scripted(httpx.Response(503), httpx.Response(502), httpx.Response(500), ok())
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=20)
    async with make(transport, FakeAuth(), sleeps, retry=policy) as client:
        r = await client.get("/x")
    assert r.status_code == 200 and len(sent) == 4
    assert len(sleeps.calls) == 3
    for n, delay in enumerate(sleeps.calls, start=1):
        assert 0 <= delay <= 0.5 * 2 ** (n - 1)
    assert len(set(sleeps.calls)) == 3  # jittered, not a fixed schedule


async def test_attempts_are_bounded() -> None:
    transport, sent = scripted(httpx.Response(503, json={"message": "down for maintenance"}))
    sleeps = Sleeps()
    async with make(transport, None, sleeps, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(RetryLater) as exc:
            await client.get("/x")
    assert len(sent) == 3 and len(sleeps.calls) == 2
    assert exc.value.status == 503 and exc.value.retry_after is None


async def test_5xx_outside_the_retry_statuses_is_left_to_the_engine() -> None:
    transport, sent = scripted(httpx.Response(500), ok())
    config = Api(base_url="https://api.acme.test", retry_statuses=(429, 503))
    async with make(transport, None, config=config) as client:
        with pytest.raises(RetryLater):
            await client.get("/x")
    assert len(sent) == 1


async def test_timeouts_are_retried_for_repeatable_requests() -> None:
    transport, sent = scripted(httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), ok())
    sleeps = Sleeps()
    async with make(transport, FakeAuth(), sleeps) as client:
        r = await client.get("/x")
    assert r.status_code == 200 and len(sent) == 3 and len(sleeps.calls) == 2


async def test_post_without_idempotency_key_is_not_repeated_after_it_may_have_landed() -> None:
    transport, sent = scripted(httpx.ReadTimeout("slow"), ok())
    async with make(transport, FakeAuth()) as client:
        with pytest.raises(RetryLater, match="did not answer"):
            await client.post("/invoices", json={})
    assert len(sent) == 1
    # A refused connection never reached the provider: safe to send again.
    transport, sent = scripted(httpx.ConnectError("refused"), ok())
    async with make(transport, FakeAuth()) as client:
        assert (await client.post("/invoices", json={})).status_code == 200
    assert len(sent) == 2
    # With a key the provider dedupes, so the same key goes out again.
    transport, sent = scripted(httpx.Response(502), ok())
    async with make(transport, FakeAuth()) as client:
        await client.post("/invoices", json={}, idempotency_key="k-1")
    assert [q.headers["idempotency-key"] for q in sent] == ["k-1", "k-1"]


async def test_400_is_rejected_with_the_providers_message() -> None:
    body = {"error": {"message": "Customer name already exists", "code": "6240"}}
    transport, sent = scripted(httpx.Response(400, json=body))
    sleeps = Sleeps()
    async with make(transport, FakeAuth(), sleeps) as client:
        with pytest.raises(Rejected) as exc:
            await client.post("/customers", json={}, idempotency_key="k")
    assert len(sent) == 1 and sleeps.calls == []
    assert exc.value.code == "http_400" and exc.value.status == 400
    assert "Customer name already exists" in exc.value.reason
    assert exc.value.fix


async def test_classify_hook_shapes_errors() -> None:
    def classify(response: httpx.Response) -> ProviderError | None:
        body = response.json()
        if response.status_code == 422:
            return Rejected("6000", "Invalid tax rate", "Pick a tax rate that exists in your accounting app.")
        if response.status_code == 403 and body.get("reason") == "scope":
            return NeedsReauth("the connection lacks a permission; reconnect")
        if response.status_code == 200 and body.get("fault"):
            return Rejected("fault", body["fault"], "")
        return None

    cases = [
        (httpx.Response(422, json={}), Rejected, "Invalid tax rate"),
        (httpx.Response(403, json={"reason": "scope"}), NeedsReauth, "reconnect"),
        (httpx.Response(403, json={"reason": "plan"}), NotEntitled, "plan"),
        (httpx.Response(200, json={"fault": "Account not found"}), Rejected, "Account not found"),
    ]
    for reply, kind, text in cases:
        transport, _ = scripted(reply)
        async with make(transport, None, classify=classify) as client:
            with pytest.raises(kind) as exc:
                await client.get("/x")
        assert text in str(exc.value)
        assert exc.value.status == reply.status_code


@pytest.fixture
def json_logs():
    fieldhub_log.configure("DEBUG", json=True)
    yield
    fieldhub_log.configure()


async def test_logs_carry_the_call_and_no_secret(capsys, json_logs) -> None:
    auth = FakeAuth("access-token-0001-abcdef")

    def echo_token(request: httpx.Request) -> httpx.Response:
        # A provider that echoes the credential back in its error text must not leak it through us.
        return httpx.Response(400, json={"message": f"bad request with {request.headers['authorization']}"})

    transport, _ = scripted(httpx.Response(401), httpx.Response(503), echo_token)
    async with make(transport, auth) as client:
        with pytest.raises(Rejected) as exc:
            await client.get("/reports", params={"api_key": "query-secret-value-123", "q": "x"}, bucket="realm-9")
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    calls = [e for e in events if e["event"] == "provider.http"]
    assert [c["status"] for c in calls] == [401, 503, 400]
    assert [c["attempt"] for c in calls] == [1, 2, 3]
    for c in calls:
        assert c["provider"] == "acme" and c["method"] == "GET" and c["path"] == "/v2/reports"
        assert isinstance(c["ms"], float)
    for secret in ("access-token-0001", "access-token-0002", "query-secret-value-123"):
        assert secret not in out
        assert secret not in str(exc.value)
    assert "Bearer [redacted]" in exc.value.reason


async def test_metrics_count_calls_by_status() -> None:
    before_200 = counter("fieldhub_provider_calls_total", provider="acme", status="200")
    before_timeout = counter("fieldhub_provider_calls_total", provider="acme", status="timeout")
    transport, _ = scripted(httpx.ReadTimeout("slow"), ok())
    async with make(transport) as client:
        await client.get("/x")
    assert counter("fieldhub_provider_calls_total", provider="acme", status="200") == before_200 + 1
    assert counter("fieldhub_provider_calls_total", provider="acme", status="timeout") == before_timeout + 1


async def test_an_asgi_app_behind_the_shared_limiter_never_sees_more_than_the_cap(sessionmaker) -> None:
    in_flight = 0
    peak = 0

    async def app(scope, receive, send) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    config = Api(base_url="http://emulator.test", concurrency=2, rate_limit_per_minute=1000)
    limiter = RateLimiter(sessionmaker, poll_seconds=0.01)
    async with make(httpx.ASGITransport(app=app), FakeAuth(), config=config, limiter=limiter) as client:
        replies = await asyncio.gather(*(client.get("/things", bucket="realm-1") for _ in range(8)))
    assert all(r.status_code == 200 for r in replies)
    assert peak == 2


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("1.5", now) == 1.5
    assert parse_retry_after("-3", now) == 0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_provider_message_styles() -> None:
    def r(body: object) -> httpx.Response:
        return httpx.Response(400, json=body)

    assert provider_message(r({"message": "a"})) == "a"
    assert provider_message(r({"error": "invalid_grant", "error_description": "b"})) == "b"
    assert provider_message(r({"errors": [{"detail": "c"}]})) == "c"
    assert provider_message(r({"Fault": {"Error": [{"Message": "d"}]}})) == ""  # provider hooks handle the odd ones
    assert provider_message(httpx.Response(400, text="plain words")) == "plain words"
    assert provider_message(httpx.Response(502, text="<html>bad gateway</html>")) == ""
