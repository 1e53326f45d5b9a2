"""Emulators are mounted in demo and test mode, URLs point at them, and production keeps the real URLs."""

from __future__ import annotations

from fastapi import FastAPI

from fieldhub.hub import registry
from fieldhub.hub.emulator.mount import Endpoints, has_emulator, mount_emulators
from fieldhub.settings import ProviderCredentials, Settings

QBO_TOKEN = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


def test_every_provider_ships_an_emulator() -> None:
    assert [s.key for s in registry.all() if not has_emulator(s.key)] == []


def test_test_mode_mounts_every_emulator_and_rewrites_urls() -> None:
    app = FastAPI()
    endpoints = mount_emulators(app, Settings(mode="test", public_url="http://hub.example"))
    assert sorted(endpoints.emulators) == sorted(s.key for s in registry.all())
    assert endpoints.url("quickbooks", QBO_TOKEN) == "http://hub.example/emulators/quickbooks/oauth2/v1/tokens/bearer"
    api = registry.get("quickbooks").api.base_url
    assert endpoints.url("quickbooks", api).startswith("http://hub.example/emulators/quickbooks/v3/company/")
    assert endpoints.transport("quickbooks") is not None


def test_production_keeps_real_urls_and_mounts_nothing() -> None:
    app = FastAPI()
    endpoints = mount_emulators(app, Settings(mode="production"))
    assert endpoints.emulators == {}
    assert endpoints.url("quickbooks", QBO_TOKEN) == QBO_TOKEN
    assert endpoints.transport("quickbooks") is None
    assert not any(getattr(r, "path", "").startswith("/emulators") for r in app.routes)


def test_a_base_url_points_a_provider_at_an_emulator_on_a_port() -> None:
    settings = Settings(mode="production", providers={"xero": ProviderCredentials(base_url="http://127.0.0.1:9100/")})
    endpoints = Endpoints(settings)
    assert endpoints.url("xero", "https://identity.xero.com/connect/token") == "http://127.0.0.1:9100/connect/token"
    assert endpoints.transport("xero") is None


async def test_in_process_transport_reaches_the_emulator_without_a_socket() -> None:
    app = FastAPI()
    endpoints = mount_emulators(app, Settings(mode="demo", public_url="http://hub.example"))
    async with endpoints.client("xero") as http:
        r = await http.get(endpoints.url("xero", "https://api.xero.com/connections"))
        state = await http.get("http://hub.example/emulators/xero/_emulator/oauth")
    assert r.status_code == 401  # Xero's own answer to a call without a token
    assert state.json()["refresh_requests"] == 0


def test_demo_credentials_only_outside_production() -> None:
    assert Settings(mode="demo").provider("xero").client_id == "demo-xero-client"
    assert Settings(mode="production").provider("xero").client_id == ""
    configured = Settings(mode="demo", providers={"xero": ProviderCredentials(client_id="mine")})
    assert configured.provider("xero").client_id == "mine"
    assert configured.provider("xero").client_secret.get_secret_value() == "demo-xero-client-secret"
