"""Fixtures for the Stripe emulator: an in-process emulator, a webhook receiver, and the spec as referee."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.stripe.emulator import StripeEmulator
from fieldhub.providers.stripe.emulator.forms import encode_form
from fieldhub.providers.stripe.emulator.spec import StripeSpec, load_spec

SECRET = "sk_test_51Platform0000000000000000"
CLIENT_ID = "ca_FieldhubTestClient0000000000"
WEBHOOK_SECRET = "whsec_test_secret"
HUB = "http://hub.test"
REDIRECT = HUB + "/oauth/callback"
RIVERBEND = "acct_1RiverbendPlumb0"
BRIGHT = "acct_1BrightSparkElec"


@dataclass
class Receiver:
    """Stands in for the hub's webhook endpoint; `status` sets what it answers next."""

    received: list[httpx.Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.received]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture(scope="session")
def spec() -> StripeSpec:
    loaded = load_spec()
    if loaded is None:
        pytest.skip("shared/specs/stripe/spec3.yaml not found above the repo: cannot validate against Stripe's spec")
    return loaded


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def emu(receiver: Receiver) -> StripeEmulator:
    config = EmulatorConfig(
        hub_url=HUB, client_id=CLIENT_ID, client_secret=SECRET, webhook_secret=WEBHOOK_SECRET, seed=7
    )
    return StripeEmulator(config, webhook_transport=httpx.MockTransport(receiver))


class Api:
    """A thin Stripe client for tests: form encoding, keys, Stripe-Account; every /v1 reply checked by the spec."""

    def __init__(self, http: httpx.AsyncClient, spec: StripeSpec) -> None:
        self.http = http
        self.spec = spec

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        account: str | None = None,
        key: str | None = SECRET,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if account:
            headers["Stripe-Account"] = account
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        pairs = encode_form(params or {})
        if method == "GET":
            reply = await self.http.get(path, params=pairs, headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            reply = await self.http.request(method, path, content=urlencode(pairs).encode(), headers=headers)
        assert reply.headers.get("request-id", "").startswith("req_")
        if path.startswith("/v1/"):
            self.spec.validate_response(method, urlparse(path).path, reply.status_code, reply.json())
        return reply

    async def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return await self.call("GET", path, params, **kw)

    async def post(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return await self.call("POST", path, params, **kw)


@pytest.fixture
async def http(emu: StripeEmulator):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu), base_url="http://stripe.test") as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient, spec: StripeSpec) -> Api:
    return Api(http, spec)


async def oauth_connect(http: httpx.AsyncClient, account: str = RIVERBEND) -> dict[str, Any]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "scope": "read_write",
        "redirect_uri": REDIRECT,
        "state": "st-1",
    }
    page = await http.get("/oauth/authorize", params=params)
    assert page.status_code == 200
    r = await http.post("/oauth/authorize", data={**params, "decision": "approve", "account": account})
    assert r.status_code == 302
    query = parse_qs(urlparse(r.headers["location"]).query)
    assert query["state"] == ["st-1"] and query["scope"] == ["read_write"]
    r = await http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": query["code"][0], "client_secret": SECRET},
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
async def stripe_hub(app, owner):  # noqa: ANN001, ANN201 - the hub side: tests/providers/stripe/hub.py
    from tests.providers.stripe.hub import StripeHub

    emulator = app.state.endpoints.emulators["stripe"]
    # Webhooks go straight into this app, as Stripe would post them to /webhooks/stripe.
    emulator.webhooks.transport = httpx.ASGITransport(app=app)
    yield StripeHub(app, emulator, owner)
    # Webhooks the test's last step set off are answered before the app stops: a send still under way
    # when the event loop closed left SQLite's thread answering a closed loop (a warning in a later test).
    await emulator.webhooks.idle()
