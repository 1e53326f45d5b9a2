"""Connecting QuickBooks in a real browser: the 600x700 sign-in window, and the full-page fallback when it's blocked.

Serves the app (test mode: every emulator mounted at /emulators/<key>) with uvicorn on a free port and
drives Debian's Chromium through Playwright.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import PASSWORD, TEST_KEYS, make_business

from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.models import metadata
from fieldhub.settings import VAR

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SHOTS = VAR / "screenshots"
COMPANY = "Riverbend Plumbing LLC"
REALM = "9341453050001234"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _prepare(url: str) -> dict[str, str]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with make_sessionmaker(engine)() as session:
        emails = {slug: (await make_business(session, slug)).owner.email for slug in ("popup", "blocked")}
    await engine.dispose()
    return emails


# The hub runs in its own process, as it does in production: nothing of this test process (module
# globals, SQLAlchemy's global session events, threads left by earlier tests) can reach into it.
SERVER = (
    "import sys, uvicorn; from fieldhub.main import create_app; from fieldhub.settings import Settings; "
    "uvicorn.run(create_app(Settings()), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('connect') / 'hub.db'}"
    emails = asyncio.run(_prepare(url))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FIELDHUB_MODE": "test",
        "FIELDHUB_DATABASE_URL": url,
        "FIELDHUB_ENCRYPTION_KEYS": TEST_KEYS,
        "FIELDHUB_PUBLIC_URL": base,
    }
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the hub exited with {server.returncode}")
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the hub did not start within 60 s")
            time.sleep(0.1)
        yield base, emails
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def chromium(served):  # noqa: ANN001, ANN201 - playwright types
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _login(context, base: str, email: str):  # noqa: ANN001, ANN202
    page = context.new_page()
    page.goto(f"{base}/login?next=/settings/integrations/quickbooks")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    # Exact: a glob would also match the login page's own ?next=… URL.
    page.wait_for_url(f"{base}/settings/integrations/quickbooks")
    page.locator("[data-connection-panel=quickbooks]").wait_for()
    return page


# Generous: a loaded CI machine serving the hub and its emulators in one process can take seconds here.
UI_TIMEOUT_MS = 45_000


def _connect_in_popup(page) -> None:  # noqa: ANN001
    with page.expect_popup() as opened:
        page.click("[data-connection-panel=quickbooks] a.connect-button")
    popup = opened.value
    popup.wait_for_load_state()
    assert "/emulators/quickbooks/connect/oauth2" in popup.url
    size = popup.evaluate("[window.innerWidth, window.innerHeight]")
    assert size == [600, 700], size
    popup.click("#approve")
    popup.wait_for_event("close", timeout=UI_TIMEOUT_MS)


def _expect_connected(page) -> None:  # noqa: ANN001
    panel = page.locator("[data-connection-panel=quickbooks]")
    panel.locator(".account-name", has_text=COMPANY).wait_for(timeout=UI_TIMEOUT_MS)
    assert panel.locator('[data-detail="Realm ID"]').inner_text() == REALM
    assert panel.locator(".connection-status").inner_text() == "Connected"
    assert panel.locator(".health-label").inner_text() == "Excellent"
    assert panel.locator(".health .dots i[style]").count() == 5


def test_connect_disconnect_reconnect_through_the_popup(served, chromium) -> None:  # noqa: ANN001
    base, emails = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = _login(context, base, emails["popup"])
    _connect_in_popup(page)
    _expect_connected(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "quickbooks-connected.png"), full_page=True)

    messages = []

    def answer(dialog) -> None:  # noqa: ANN001
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.click("[data-connection-panel=quickbooks] .disconnect-form button")
    panel = page.locator("[data-connection-panel=quickbooks]")
    panel.locator(".connection-status", has_text="Disconnected").wait_for(timeout=UI_TIMEOUT_MS)
    assert panel.locator(".connection-status").inner_text() == "Disconnected"
    assert panel.locator(".health-label").inner_text() == "Disconnected"
    assert "stay" in messages[0] and "Future syncing stops" in messages[0]

    _connect_in_popup(page)
    _expect_connected(page)
    context.close()


def test_blocked_popup_falls_back_to_this_tab(served, chromium) -> None:  # noqa: ANN001
    base, emails = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script("window.open = function () { return null; };")
    page = _login(context, base, emails["blocked"])
    page.click("[data-connection-panel=quickbooks] a.connect-button")
    blocked = page.locator("[data-connection-panel=quickbooks] .popup-blocked")
    blocked.wait_for(state="visible")
    assert "Your browser blocked the sign-in window" in blocked.inner_text()
    blocked.locator("a", has_text="Continue in this tab").click()
    page.wait_for_url("**/emulators/quickbooks/connect/oauth2**")
    page.click("#approve")
    page.wait_for_url("**/settings/integrations/quickbooks?connected=quickbooks")
    _expect_connected(page)
    context.close()
