"""The FreshBooks emulator in tests: a token got the way an app gets one (consent, then the code exchange), and
the emulator served on a real port for the official freshbooks-sdk (which FreshBooks points at another host with
its own FRESHBOOKS_API_URL setting; nothing else of the SDK is touched)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.freshbooks.emulator import BUSINESSES, FreshBooksEmulator, create_emulator

CONFIG = EmulatorConfig(hub_url="http://app.test", client_id="fb-client-id", client_secret="fb-client-secret")
SPECS = next((p / "shared/specs/freshbooks" for p in Path(__file__).resolve().parents
              if (p / "shared/specs/freshbooks").is_dir()), None)  # fmt: skip


def recorded(name: str) -> Any:  # noqa: ANN401
    assert SPECS is not None
    return json.loads((SPECS / name).read_text())


def consent_code(http: httpx.Client, business: str = BUSINESSES[0].id) -> str:
    """What the user does on FreshBooks' consent page: approve, for one business."""
    form = {"client_id": CONFIG.client_id, "redirect_uri": CONFIG.redirect_uri, "response_type": "code",
            "state": "s", "account": business, "decision": "approve"}  # fmt: skip
    reply = http.post("/oauth/authorize", data=form)
    assert reply.status_code == 302, reply.text
    return parse_qs(urlsplit(reply.headers["location"]).query)["code"][0]


def token(http: httpx.Client, business: str = BUSINESSES[0].id) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": consent_code(http, business), "client_id": CONFIG.client_id,
            "client_secret": CONFIG.client_secret, "redirect_uri": CONFIG.redirect_uri}  # fmt: skip
    reply = http.post("/auth/oauth/token", data=form)
    assert reply.status_code == 200, reply.text
    return reply.json()


def served() -> Iterator[tuple[FreshBooksEmulator, int]]:
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
