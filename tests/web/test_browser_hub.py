"""The Integrations hub in a real browser: 2 columns on a desktop, 1 on a phone, cards in order, 403 for a tech.

Serves the app with uvicorn on a free 127.0.0.1 port over a SQLite file and drives Debian's Chromium
through Playwright (Playwright's own browser download is not used). Screenshots go to var/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import make_business
from tests.web import browser
from tests.web.browser import SHOTS

pytestmark = pytest.mark.browser

SEED_ORDER = [
    "Thumbtack",
    "QuickBooks",
    "Voice AI",
    "Calendar",
    "E-Signatures",
    "Google Business Profile",
    "SEO Integrations",
    "Accounting",
    "Voyage AI",  # billing memory's embedding provider (issue 22), after the seed's cards
]


async def _prepare(session: Any) -> dict[str, str]:
    biz = await make_business(session, "browser")
    return {"owner": biz.owner.email, "tech": biz.tech.email, "dispatcher": biz.dispatcher.email}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with browser.serve_hub(tmp_path_factory.mktemp("browser"), _prepare) as (base, emails, _):
        yield base, emails


@pytest.fixture(scope="module")
def chromium(served):  # noqa: ANN001, ANN201 - playwright types
    with browser.chromium() as launched:
        yield launched


def _login(chromium, base: str, email: str, width: int, next_url: str):  # noqa: ANN001, ANN202
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = browser.login(context, base, email, next_url)
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.parametrize(("width", "columns"), [(1280, 2), (390, 1)])
def test_hub_grid_columns_and_order(served, chromium, width: int, columns: int) -> None:  # noqa: ANN001
    base, emails = served
    page = _login(chromium, base, emails["owner"], width, "/settings/integrations")
    assert page.url.endswith("/settings/integrations")

    grid = page.locator("[data-testid=hub-grid]")
    tracks = grid.evaluate("e => getComputedStyle(e).gridTemplateColumns.split(' ').filter(Boolean).length")
    assert tracks == columns

    cards = page.locator(".hub-grid a.hub-card")
    assert cards.count() == len(SEED_ORDER)
    assert page.locator(".hub-card .name").all_inner_texts() == SEED_ORDER
    boxes = [cards.nth(i).bounding_box() for i in range(cards.count())]
    lefts = sorted({round(b["x"]) for b in boxes})
    assert len(lefts) == columns
    if columns == 2:
        # Row by row: the first two cards share a row, side by side and equally wide.
        assert round(boxes[0]["y"]) == round(boxes[1]["y"]) and boxes[0]["x"] < boxes[1]["x"]
        assert abs(boxes[0]["width"] - boxes[1]["width"]) < 1
    else:
        assert all(boxes[i]["y"] < boxes[i + 1]["y"] for i in range(len(boxes) - 1))
        assert all(b["x"] + b["width"] <= width for b in boxes)  # nothing overflows the phone screen

    icon = cards.first.locator(".icon-box")
    size = icon.bounding_box()
    assert round(size["width"]) == 48 and round(size["height"]) == 48
    assert icon.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 159, 217, 0.15)"

    name = cards.first.locator(".name")
    assert name.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    assert name.evaluate("e => getComputedStyle(e).fontWeight") == "700"
    cards.first.hover()
    page.wait_for_timeout(300)  # the colour transition
    assert name.evaluate("e => getComputedStyle(e).color") == "rgb(59, 130, 246)"
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"hub-{width}.png"), full_page=True)

    cards.nth(SEED_ORDER.index("Calendar")).click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/settings/integrations/calendar")
    assert page.locator("[data-provider]").evaluate_all("els => els.map(e => e.dataset.provider)") == [
        "google_calendar",
        "outlook",
    ]
    if width == 1280:
        page.screenshot(path=str(SHOTS / "hub-calendar-1280.png"), full_page=True)
    page.close()


def test_settings_page_shows_the_integrations_card(served, chromium) -> None:  # noqa: ANN001
    base, emails = served
    page = _login(chromium, base, emails["owner"], 1280, "/settings")
    link = page.locator('a.hub-card[href="/settings/integrations"]')
    assert link.count() == 1
    assert link.evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(16, 185, 129)"  # emerald
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "settings-1280.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("role", ["tech", "dispatcher"])
def test_staff_get_403(served, chromium, role: str) -> None:  # noqa: ANN001
    base, emails = served
    page = _login(chromium, base, emails[role], 1280, "/")
    response = page.goto(f"{base}/settings/integrations")
    assert response is not None and response.status == 403
    assert "Not allowed" in page.content()
    page.goto(f"{base}/settings")
    assert page.locator('a[href="/settings/integrations"]').count() == 0
    page.close()


NAV = [
    "Dashboard",
    "Customers",
    "Items",
    "Invoices",
    "Estimates",
    "Schedule",
    "Leads",
    "Phone calls",
    "Web vitals",
    "Notifications",
    "Settings",
]


def test_issue15_item8_the_phone_menu_names_every_link(served, chromium) -> None:  # noqa: ANN001
    """At 390 px the navigation is a labelled Menu button that opens a list of named links, not a row of icons."""
    base, emails = served
    page = _login(chromium, base, emails["owner"], 390, "/customers")
    button = page.locator("[data-menu]")
    assert button.is_visible() and button.inner_text().strip() == "Menu"
    assert button.get_attribute("aria-expanded") == "false"
    links = page.locator(".nav-links a.nav")
    assert not links.first.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    names = [a.inner_text().strip() for a in links.all() if a.is_visible()]
    assert names[: len(NAV)] == NAV, names
    current = page.locator(".nav-links a.nav[aria-current=page]")
    assert current.inner_text().strip() == "Customers"
    for a in links.all():
        box = a.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 36  # a finger-sized row
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "nav-390-open.png"))
    links.filter(has_text="Invoices").click()
    page.wait_for_url("**/invoices")
    assert not page.locator(".nav-links a.nav").first.is_visible()  # closed again on the next page
    page.close()

    wide = _login(chromium, base, emails["owner"], 1280, "/customers")
    assert not wide.locator("[data-menu]").is_visible()
    assert [a.inner_text().strip() for a in wide.locator(".nav-links a.nav").all()][: len(NAV)] == NAV
    wide.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_issue15_item8_a_refused_key_is_shown_on_its_form(served, chromium, width: int) -> None:  # noqa: ANN001
    base, emails = served
    page = _login(chromium, base, emails["owner"], width, "/settings/integrations/seo")
    field = page.locator("#api-key-ahrefs")
    field.fill("changeme")
    page.locator("form[action='/integrations/ahrefs/api-key'] button[type=submit]").click()
    page.wait_for_load_state()
    error = page.locator("#api-key-ahrefs-error")
    assert error.is_visible() and "placeholder" in error.inner_text()
    assert page.locator("#api-key-ahrefs").get_attribute("aria-invalid") == "true"
    assert page.locator("#api-key-ahrefs").input_value() == ""  # the refused key is not written back
    assert "changeme" not in page.content()
    box, under = page.locator("#api-key-ahrefs").bounding_box(), error.bounding_box()
    assert under["y"] >= box["y"] + box["height"] - 1 and abs(under["x"] - box["x"]) < 2  # right below the field
    assert page.locator("h1").inner_text() == "SEO Integrations"  # the card's own page, not a bare one
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"key-refused-{width}.png"), full_page=True)
    page.close()
