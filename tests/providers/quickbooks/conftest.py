"""Fixtures: an in-process QuickBooks emulator and a client connected to one of its companies."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator import US_REALM, QuickBooksEmulator, create_emulator

CONFIG = EmulatorConfig(hub_url="http://hub.test", deliver_webhooks=False)


def emu_client(emulator: QuickBooksEmulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://qbo.test")


async def connect(http: httpx.AsyncClient, realm: str = US_REALM, config: EmulatorConfig = CONFIG) -> dict:
    """The whole consent flow as the hub runs it; returns the token response plus the callback's realmId."""
    params = {
        "client_id": config.client_id,
        "redirect_uri": config.redirect_uri,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "state": "st-1",
    }
    page = await http.get("/connect/oauth2", params=params)
    assert page.status_code == 200, page.text
    r = await http.post("/connect/oauth2", data={**params, "decision": "approve", "account": realm})
    assert r.status_code == 302, r.text
    callback = parse_qs(urlparse(r.headers["location"]).query)
    assert callback["state"] == ["st-1"]
    form = {"grant_type": "authorization_code", "code": callback["code"][0], "redirect_uri": config.redirect_uri}
    r = await http.post(
        "/oauth2/v1/tokens/bearer",
        data=form,
        auth=(config.client_id, config.client_secret),
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    return {**r.json(), "realmId": callback["realmId"][0]}


class QBO:
    """A tiny API client over the emulator for tests: JSON in, (status, JSON) out."""

    def __init__(self, http: httpx.AsyncClient, realm: str, token: str) -> None:
        self.http = http
        self.realm = realm
        self.token = token

    def url(self, path: str) -> str:
        return f"/v3/company/{self.realm}/{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    async def post(self, path: str, body: dict | None = None, **params: str) -> httpx.Response:
        return await self.http.post(
            self.url(path), json=body or {}, params={"minorversion": "75", **params}, headers=self.headers
        )

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(self.url(path), params={"minorversion": "75", **params}, headers=self.headers)

    async def query(self, statement: str) -> httpx.Response:
        return await self.get("query", query=statement)

    async def create(self, entity: str, body: dict) -> dict:
        r = await self.post(entity.lower(), body)
        assert r.status_code == 200, r.text
        return r.json()[entity]


@pytest.fixture
def emulator() -> QuickBooksEmulator:
    return create_emulator(CONFIG)


@pytest.fixture
async def http(emulator: QuickBooksEmulator):
    async with emu_client(emulator) as client:
        yield client


@pytest.fixture
async def qbo(http: httpx.AsyncClient) -> QBO:
    tokens = await connect(http)
    return QBO(http, tokens["realmId"], tokens["access_token"])
