"""The test harness for the official xero-python SDK against the Xero emulator, unmodified but for the host.

The emulator is served by uvicorn on a real 127.0.0.1 port. What the SDK addresses to Xero's hosts
(identity.xero.com, api.xero.com) goes to that port instead, path and all else untouched: xero-python's
urllib3 pool gets a manager that rewrites the host, and the app's own code exchange (Xero's starter apps do it
with authlib's OAuth2Session, the SDK has no helper for it) gets a requests adapter that does the same.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import requests
import urllib3
import uvicorn
from authlib.integrations.requests_client import OAuth2Session
from requests.adapters import HTTPAdapter
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.xero.emulator import ORGANISATIONS, XeroEmulator, create_emulator

CONFIG = EmulatorConfig(hub_url="http://app.test", client_id="xero-client-id", client_secret="xero-client-secret")
XERO_HOSTS = {"login.xero.com", "identity.xero.com", "api.xero.com"}
SCOPES = ["openid", "profile", "email", "offline_access", "accounting.contacts", "accounting.settings"]
SPECS = next(
    (p / "shared/specs/xero" for p in Path(__file__).resolve().parents if (p / "shared/specs/xero").is_dir()), None
)


def to_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    if parts.hostname in XERO_HOSTS:
        return urlunsplit(("http", f"127.0.0.1:{port}", parts.path, parts.query, parts.fragment))
    return url


class ToEmulatorPool(urllib3.PoolManager):
    """xero-python's pool: a request to a Xero host goes to the emulator's port."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # noqa: ANN401
        return super().urlopen(method, to_port(url, self.port), redirect=redirect, **kw)


class ToEmulatorAdapter(HTTPAdapter):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201 - requests' adapter signature
        request.url = to_port(request.url, self.port)
        return super().send(request, **kwargs)


@pytest.fixture
def served() -> Iterator[tuple[XeroEmulator, int]]:
    emulator = create_emulator(CONFIG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield emulator, port
    server.should_exit = True
    thread.join(timeout=10)


def authorize(
    port: int, organisation: str = ORGANISATIONS[0].id, scopes: list[str] = SCOPES
) -> tuple[OAuth2Session, dict[str, Any]]:
    """What a Xero app does: send the user to Xero's consent page, then exchange the code (PKCE) for tokens."""
    session = OAuth2Session(
        CONFIG.client_id,
        CONFIG.client_secret,
        scope=" ".join(scopes),
        redirect_uri=CONFIG.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )
    session.mount("https://", ToEmulatorAdapter(port))
    verifier = "v" * 64
    url, state = session.create_authorization_url(
        "https://login.xero.com/identity/connect/authorize", code_verifier=verifier, nonce="n-0S6_WzA2Mj"
    )
    browser = requests.Session()
    browser.mount("https://", ToEmulatorAdapter(port))
    assert browser.get(url).status_code == 200
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    consent = browser.post(
        url.split("?")[0], data={**params, "decision": "approve", "account": organisation}, allow_redirects=False
    )
    back = consent.headers["location"]
    assert parse_qs(urlsplit(back).query)["state"] == [state]
    token = session.fetch_token(
        "https://identity.xero.com/connect/token", authorization_response=back, code_verifier=verifier
    )
    return session, dict(token)


def sdk(port: int, token: dict[str, Any]) -> tuple[ApiClient, dict[str, Any]]:
    store: dict[str, Any] = {}
    client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id=CONFIG.client_id, client_secret=CONFIG.client_secret)),
        pool_threads=1,
    )
    client.rest_client.pool_manager = ToEmulatorPool(port)

    @client.oauth2_token_getter
    def get_token() -> dict[str, Any]:
        return store

    @client.oauth2_token_saver
    def save_token(new: dict[str, Any]) -> None:
        store.clear()
        store.update(new)

    client.set_oauth2_token(token)  # raised TypeError on Xero's reply before (refresh_token_expires_in)
    return client, store
