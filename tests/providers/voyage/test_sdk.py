"""Voyage AI's official `voyageai` client against the emulator, unmodified but for its base URL (a real port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
import voyageai
import voyageai.error

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.voyage.emulator import VoyageEmulator, create_emulator

KEY = "pa-test-key-123"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[VoyageEmulator, str]]:
    emulator = create_emulator(EmulatorConfig(hub_url="http://app.test"))
    emulator.api_keys.add(KEY)
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
    yield emulator, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_issue22_item2_the_official_client_embeds_and_reads_usage(served) -> None:
    emulator, base = served
    client = voyageai.Client(api_key=KEY, base_url=base, max_retries=0)
    result = client.embed(
        ["Water heater installation", "Drain cleaning"], model="voyage-3.5-lite", input_type="document"
    )
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 1024
    assert result.total_tokens > 0 and emulator.billed_tokens >= result.total_tokens
    small = client.embed(["Faucet"], model="voyage-3.5-lite", input_type="query", output_dimension=256)
    assert len(small.embeddings[0]) == 256


def test_issue22_item2_the_official_client_reads_voyages_errors(served) -> None:
    _, base = served
    with pytest.raises(voyageai.error.AuthenticationError):
        voyageai.Client(api_key="pa-wrong", base_url=base, max_retries=0).embed(["x"], model="voyage-3.5-lite")
    client = voyageai.Client(api_key=KEY, base_url=base, max_retries=0)
    with pytest.raises(voyageai.error.InvalidRequestError, match="not supported"):
        client.embed(["x"], model="voyage-99")
    with pytest.raises(voyageai.error.InvalidRequestError, match="exceeding the limit"):
        client.embed(["x"] * 1001, model="voyage-3.5-lite")
