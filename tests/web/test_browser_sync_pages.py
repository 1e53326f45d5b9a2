"""The QuickBooks page in Chromium as a new owner meets it (issue 15): connecting leads to the next step in place,
each entity card counts its own records, the history folds idle runs and names what each run touched, pending
records say why they wait, and the page fits 1280 and 390 px without sideways scrolling.

The hub runs in demo mode (emulators mounted, the embedded worker syncing), as `make demo` serves it. Saves
var/screenshots/issue15-*.png for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import Browser, make_business
from tests.hub.oauth.conftest import consent
from tests.web.browser import SHOTS, UI_TIMEOUT_MS, chromium, login, serve_hub

from fieldhub.providers.quickbooks.emulator.seed import US_MAPPING as MAPPING

pytestmark = pytest.mark.browser
PAGE = "/settings/integrations/quickbooks"
NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"
FITS = "box => box.scrollWidth <= box.clientWidth"  # a table wholly visible in its box, every column


async def _owner(session: Any) -> str:
    return (await make_business(session, "issue15")).owner.email


@pytest.fixture(scope="module")
def fresh_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A business that has not connected QuickBooks yet."""
    with serve_hub(tmp_path_factory.mktemp("fresh"), _owner, {"FIELDHUB_MODE": "demo"}) as (base, email, _):
        yield base, email


@pytest.fixture(scope="module")
def synced_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    """QuickBooks connected, Auto-Sync off (as a new connection starts), records made, then the mapping saved,
    which sends them: 'Home Depot' (a vendor's name in QuickBooks: it fails, and its invoice waits for it) and
    'Ada Lovelace' with an item and an invoice (they go through)."""
    with serve_hub(tmp_path_factory.mktemp("synced"), _owner, {"FIELDHUB_MODE": "demo"}) as (base, email, _):
        yield base, email, asyncio.run(_records(base, email))


async def _records(base: str, email: str) -> int:
    async with Browser(base_url=base, timeout=30) as client:
        await client.login(email)
        r, _ = await consent(client, "quickbooks")
        assert r.status_code == 303, r.text
        page = await client.get(PAGE)
        connection_id = int(re.search(r'data-sync-dashboard="(\d+)"', page.text).group(1))
        r = await client.submit(
            "/items/new", {"name": "Sump pump check", "unit_price": "95.00", "kind": "service", "active": "on"}
        )
        assert r.status_code == 303, r.text
        item = re.search(r"/items/(\d+)", r.headers["location"]).group(1)
        for name in ("Home Depot", "Ada Lovelace"):
            r = await client.submit(
                "/customers/new", {"display_name": name, "email": f"{name[:3].lower()}@example.com"}
            )
            assert r.status_code == 303, r.text
            customer = re.search(r"/customers/(\d+)", r.headers["location"]).group(1)
            line = {"item_id": item, "description": "Sump pump check", "quantity": "1", "unit_price": "95.00"}
            form = {f"lines-0-{k}": v for k, v in (line | {"taxable": "false"}).items()}
            r = await client.submit(
                "/invoices/new", {"customer_id": customer, "line_count": "1", "status": "OPEN", **form}
            )
            assert r.status_code == 303, re.findall(r'class="error"[^>]*>([^<]+)', r.text)
        # Saving the mapping sends what waited for it (one run: Auto-Sync is off, nothing went before).
        r = await client.submit(f"{PAGE}/{connection_id}/mapping", dict(MAPPING))
        assert r.status_code == 303, r.text
        return connection_id


def _card(page: Any, entity: str) -> dict[str, str]:
    card = page.locator(f".entity-card[data-entity={entity}]")
    counts = {k: card.locator(f"[data-count={k}]").inner_text() for k in ("created", "updated", "failed")}
    return {**counts, "badge": card.locator("[data-entity-badge]").inner_text()}


def _wait_for(page: Any, url: str, selector: str) -> None:
    """Reload `url` until `selector` is on it (the worker syncs in the background)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        page.goto(url)
        if page.locator(selector).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} did not appear on {url}")
        time.sleep(0.5)


# ----------------------------------------------------------------------------- item 5


def test_issue15_item5_connecting_shows_the_next_step_without_a_reload(fresh_hub) -> None:  # noqa: PLR0915
    base, email = fresh_hub
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = login(browser.new_context(viewport={"width": 1280, "height": 900}), base, email, PAGE)
        page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

        with page.expect_popup() as opened:
            page.click("[data-connection-panel=quickbooks] a.connect-button")
        popup = opened.value
        popup.wait_for_load_state()
        with popup.expect_event("close", timeout=UI_TIMEOUT_MS):
            popup.click("#approve")
        step = page.locator("[data-next-step=mapping]")
        step.wait_for(timeout=UI_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
        assert "Off" in page.locator(".autosync-state").inner_text()
        # The swapped-in section works in place too: Auto-Sync refuses to go on before the mapping.
        page.locator(".autosync .track").click()
        page.locator(".autosync .form-error", has_text="stays off until the field mapping is saved").wait_for()
        assert page.evaluate("window.__sameDocument") is True
        page.screenshot(path=str(SHOTS / "issue15-1-connected.png"), full_page=True)

        step.locator("a", has_text="Open the field mapping").click()
        page.wait_for_url("**/mapping")
        for key, value in MAPPING.items():
            page.select_option(f"#m-{key}", value)
        page.click("form.mapping-form button[type=submit]")
        page.locator(".flash.ok", has_text="Mapping saved").wait_for()
        page.click("text=Back to QuickBooks")
        page.wait_for_url(f"**{PAGE}")
        nxt = page.locator("[data-next-step=test_sync]")
        assert nxt.is_visible() and "Off" in page.locator(".autosync-state").inner_text()
        page.screenshot(path=str(SHOTS / "issue15-2-mapped.png"), full_page=True)

        nxt.locator("a", has_text="Run test sync").click()
        page.wait_for_url("**/test-sync")
        page.click("[data-run-test]")
        page.locator("[data-test-checklist]").wait_for(timeout=UI_TIMEOUT_MS)
        assert page.locator("[data-auto-sync-state=off]").is_visible()
        page.evaluate("window.__sameDocument = true")
        page.locator(".test-checklist .autosync .track").click()
        page.wait_for_selector(".test-checklist .autosync-state:has-text('On')")
        assert page.evaluate("window.__sameDocument") is True
        page.screenshot(path=str(SHOTS / "issue15-3-test-sync.png"), full_page=True)

        page.reload()
        assert page.locator("[data-auto-sync-state=on]").is_visible()
        assert "turn Auto-Sync on" not in page.inner_text("main")
        page.goto(f"{base}{PAGE}")
        assert page.locator("[data-next-step]").count() == 0
        assert "On" in page.locator(".autosync-state").inner_text()


# ----------------------------------------------------------------------------- items 3 and 4


def test_issue15_items3_4_cards_history_and_pending_reasons_at_1280_and_390(synced_hub) -> None:  # noqa: PLR0915
    base, email, connection_id = synced_hub
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = login(browser.new_context(viewport={"width": 1280, "height": 900}), base, email, PAGE)
        _wait_for(page, f"{base}{PAGE}", "tbody.run[data-status=partial]")
        # Sync Now again and again: nothing new is due (the invoice waits for its customer), so these runs
        # have nothing to do, and fold into one row.
        for _ in range(3):
            before = page.locator("[data-idle-runs]").evaluate_all(
                "rows => rows.reduce((n, r) => n + Number(r.dataset.idleRuns), 0)"
            )
            page.click(".sync-toolbar button:has-text('Sync everything')")
            page.locator(f"#sync-notice-{connection_id}", has_text="sync started").wait_for()
            deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
            while time.monotonic() < deadline:
                page.goto(f"{base}{PAGE}")
                idle = page.locator("[data-idle-runs]").evaluate_all(
                    "rows => rows.reduce((n, r) => n + Number(r.dataset.idleRuns), 0)"
                )
                if idle > before:
                    break
                time.sleep(0.3)

        # Item 3: each card counts its own entity.
        customers, invoices, items = (_card(page, e) for e in ("customer", "invoice", "item"))
        assert customers == {"created": "1", "updated": "0", "failed": "1", "badge": "1 failed"}, customers
        assert invoices == {"created": "1", "updated": "0", "failed": "0", "badge": "1 pending"}, invoices
        assert items == {"created": "1", "updated": "0", "failed": "0", "badge": "In step"}, items

        # Item 4: the run names what it touched, its error is readable, idle runs are one folded row.
        run = page.locator("tbody.run[data-status=partial]")
        assert run.locator("[data-records]").inner_text() == "2 customers, 1 item, 1 invoice"
        error = run.locator("td.error-cell")
        assert "Customer name conflict" in error.inner_text()
        assert error.bounding_box()["width"] >= 600, error.bounding_box()  # the table's whole width, not 2 letters
        assert page.locator("tbody.run").count() == 1
        folds = page.locator("[data-idle-runs]")
        assert folds.count() >= 1 and "with nothing to do" in folds.first.inner_text()
        assert page.evaluate(NO_SIDEWAYS)
        assert page.locator(".table-wrap:has(table.history)").evaluate(FITS), "the history scrolls inside its box"
        page.screenshot(path=str(SHOTS / "issue15-4-cards-1280.png"), full_page=True)

        page.goto(f"{base}{PAGE}/{connection_id}/history")
        assert page.evaluate(NO_SIDEWAYS) and page.locator(".table-wrap:has(table.history)").evaluate(FITS)
        page.screenshot(path=str(SHOTS / "issue15-5-history-1280.png"), full_page=True)

        # Why the invoice waits, from the ledger.
        pending = f"{base}{PAGE}/{connection_id}/records?state=pending"
        page.goto(pending)
        reason = page.locator("[data-waiting]").first.inner_text()
        assert "Waiting on its customer “Home Depot”, which failed to sync: Customer name conflict" in reason
        page.screenshot(path=str(SHOTS / "issue15-6-pending-1280.png"), full_page=True)

        # A phone: the same pages, nothing wider than the screen; the history's runs are cards of their own.
        phone = login(browser.new_context(viewport={"width": 390, "height": 844}), base, email, PAGE)
        for url in (f"{base}{PAGE}", f"{base}{PAGE}/{connection_id}/history", pending):
            phone.goto(url)
            width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (url, width)
        phone.goto(f"{base}{PAGE}")
        error = phone.locator("tbody.run[data-status=partial] td.error-cell")
        assert error.bounding_box()["width"] >= 250 and error.bounding_box()["x"] + error.bounding_box()["width"] <= 390
        assert phone.locator("table.history thead").evaluate("e => getComputedStyle(e).display") == "none"
        phone.screenshot(path=str(SHOTS / "issue15-7-phone.png"), full_page=True)
