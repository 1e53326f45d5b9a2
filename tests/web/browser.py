"""What every browser test needs, written once: the hub served in its own process, and Debian's Chromium.

`serve_hub` prepares a SQLite file (schema plus whatever `prepare` adds through a session), starts
`fieldhub`'s app with uvicorn in a subprocess on a free port — as in production, nothing of the test
process (module globals, SQLAlchemy's global session events, threads left by earlier tests) can reach
into it — waits for /login, and stops it afterwards. `chromium` launches Debian's Chromium through
Playwright (Playwright's own browser download can't be fetched here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import PASSWORD, TEST_KEYS

from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.models import metadata
from fieldhub.settings import VAR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = VAR / "screenshots"
# Generous: a loaded CI machine serving the hub and its emulators in one process can take seconds.
UI_TIMEOUT_MS = 45_000

SERVER = (
    "import sys, uvicorn; from fieldhub.main import create_app; from fieldhub.settings import Settings; "
    "uvicorn.run(create_app(Settings()), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (run `make chromium`)")


async def _prepare(url: str, prepare: Callable[[Any], Awaitable[Any]]) -> Any:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with make_sessionmaker(engine)() as session:
        made = await prepare(session)
    await engine.dispose()
    return made


@contextlib.contextmanager
def serve_hub(
    directory: Path, prepare: Callable[[Any], Awaitable[Any]], env: dict[str, str] | None = None
) -> Iterator[tuple[str, Any, str]]:
    """Yield (base URL, what `prepare(session)` returned, database URL) while the hub serves in a subprocess."""
    require_chromium()
    url = f"sqlite+aiosqlite:///{directory / 'hub.db'}"
    made = asyncio.run(_prepare(url, prepare))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environ = {
        **os.environ,
        "FIELDHUB_MODE": "test",
        "FIELDHUB_DATABASE_URL": url,
        "FIELDHUB_ENCRYPTION_KEYS": TEST_KEYS,
        "FIELDHUB_PUBLIC_URL": base,
        **(env or {}),
    }
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=environ)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the hub exited with {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the hub did not start within 60 s")
            time.sleep(0.1)
        yield base, made, url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Runs in every page of a context before its own scripts (Playwright injects it, outside the page's CSP).
_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  var where = e.sourceFile + ":" + e.lineNumber;
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + where);
});
"""


def watch_errors(context: Any) -> list[str]:
    """Every console error of every page of `context`, popups included, as "url: text". A refusal by the
    Content-Security-Policy is one (its text names the "Content Security Policy"): it breaks a page without
    a word, so a test that drives pages asserts none came. Each page's `window.__violations` lists the
    securitypolicyviolation events of its current document."""
    errors: list[str] = []

    def seen(message: Any) -> None:
        if message.type == "error":
            page = getattr(message, "page", None)
            errors.append(f"{page.url if page else '?'}: {message.text}")

    context.add_init_script(_VIOLATIONS)
    context.on("console", seen)
    return errors


def csp_refusals(errors: list[str]) -> list[str]:
    return [e for e in errors if "Content Security Policy" in e]


def login(context: Any, base: str, email: str, next_url: str) -> Any:
    """Sign in on a new page of `context` (a Browser or BrowserContext) and wait until `next_url` is shown."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = context.new_page()
    page.goto(f"{base}/login?next={next_url}")
    target = f"{base}{next_url}"  # exact: a glob would also match the login page's own ?next=… URL
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    try:
        page.wait_for_url(target, timeout=UI_TIMEOUT_MS // 3)
        return page
    except PlaywrightTimeout:
        # Twice in session 5's full runs (not reproduced alone, nor under CPU load) signing in never
        # arrived and the hub logged nothing. Say what the page showed; if it still sits on /login, the
        # submit seems lost: sign in once more. A hub that really hangs still fails, with the evidence.
        shown = _shown(page)
        print(f"signing in had not reached {next_url} after {UI_TIMEOUT_MS // 3000} s; the page showed {shown}")
    if "/login" in page.url:
        page.goto(f"{base}/login?next={next_url}")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
    try:
        page.wait_for_url(target, timeout=UI_TIMEOUT_MS)
    except PlaywrightTimeout:
        shown = _shown(page)
        raise AssertionError(f"signing in did not reach {next_url}; the page showed {shown}") from None
    return page


def _shown(page: Any) -> str:
    """The page's URL and the start of its text, for a failure message (never waiting long for either)."""
    try:
        text = repr(page.inner_text("body", timeout=2_000)[:300])
    except Exception as exc:  # noqa: BLE001 — mid-navigation, or the page is gone: say so
        text = f"(no text: {type(exc).__name__})"
    return f"{page.url}: {text}"


def within(target: float = 1.0) -> float:
    """The deadline a "within 1 s" promise is checked against in a browser test.

    The target itself on a machine with a core to spare. On an overloaded one (1-minute load average
    above the core count: the hub, Chromium and the test share the cores with other work) a timing
    says more about the machine than the hub, so the check allows 3× and says so in the test output.
    FIELDHUB_BROWSER_WITHIN_S sets the deadline outright.
    """
    if "FIELDHUB_BROWSER_WITHIN_S" in os.environ:
        return float(os.environ["FIELDHUB_BROWSER_WITHIN_S"])
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        print(f"machine overloaded (load {load:.1f} on {cores} cores): allowing {3 * target:.1f} s for {target:.1f} s")
        return 3 * target
    return target
