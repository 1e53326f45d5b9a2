"""Settings, the Integrations hub and its card pages: order, content and who may see them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from tests.conftest import Browser, Business
from tests.hub.oauth.conftest import consent

from fieldhub.hub import features, registry
from fieldhub.hub.connections.models import Connection

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


def card_names(html: str) -> list[str]:
    return re.findall(r'<div class="name">([^<]+)</div>', html)


async def test_owner_sees_the_hub_cards_in_the_seed_order(owner: Browser) -> None:
    r = await owner.get("/settings/integrations")
    assert r.status_code == 200
    assert card_names(r.text) == SEED_ORDER
    assert "Receive and manage leads from Thumbtack.com." in r.text
    assert "Sync invoices and customers with QuickBooks." in r.text
    assert "Sync with Google Calendar, Outlook." in r.text
    # Each card is a link to its page, with a status line.
    for card in registry.cards():
        assert f'href="/settings/integrations/{card.key}"' in r.text
    assert r.text.count("Not connected") == len(SEED_ORDER)
    # The icon box carries the brand colour on a translucent background.
    assert "background: rgba(0, 159, 217, 0.15); color: #009FD9" in r.text


async def test_admin_may_open_the_hub(client: Browser, biz: Business) -> None:
    await client.login(biz.admin.email)
    assert (await client.get("/settings/integrations")).status_code == 200


async def test_settings_lists_integrations_and_billing_for_the_owner(owner: Browser) -> None:
    r = await owner.get("/settings")
    assert r.status_code == 200
    assert 'href="/settings/integrations"' in r.text
    assert 'href="/settings/billing/stripe"' in r.text
    assert r.text.index("Operations") < r.text.index("Billing &amp; Taxes")
    assert 'href="/settings/company"' in r.text


@pytest.mark.parametrize("role", ["tech", "dispatcher"])
async def test_staff_get_403_and_no_integrations_link(client: Browser, biz: Business, role: str) -> None:
    await client.login(getattr(biz, role).email)
    for url in (
        "/settings/integrations",
        "/settings/integrations/calendar",
        "/settings/billing",
        "/settings/billing/stripe",
    ):
        assert (await client.get(url)).status_code == 403, url
    page = await client.get("/settings")
    assert page.status_code == 200
    assert "/settings/integrations" not in page.text
    assert "/settings/billing" not in page.text
    assert 'href="/settings/company"' in page.text  # the read-only profile stays
    assert 'href="/settings"' in page.text  # the sidebar link stays


async def test_card_page_shows_each_provider_with_its_connect_button(owner: Browser) -> None:
    r = await owner.get("/settings/integrations/calendar")
    assert r.status_code == 200
    assert r.text.index('data-provider="google_calendar"') < r.text.index('data-provider="outlook"')
    assert 'href="/integrations/google_calendar/connect?mode=page"' in r.text
    assert 'href="/integrations/outlook/connect?mode=page"' in r.text
    assert "Connect to Google Calendar" in r.text
    assert '<script src="/static/connect.js"' in r.text


async def test_api_key_providers_ask_for_a_key(owner: Browser) -> None:
    r = await owner.get("/settings/integrations/seo")
    assert 'action="/integrations/ahrefs/api-key"' in r.text
    assert 'action="/integrations/pagespeed/api-key"' in r.text


@pytest.mark.parametrize("card", [c.key for c in registry.cards()])
async def test_every_card_page_renders(owner: Browser, card: str) -> None:
    r = await owner.get(f"/settings/integrations/{card}")
    assert r.status_code == 200
    for spec in registry.registry().card(card).providers:
        assert f'data-provider="{spec.key}"' in r.text
        assert spec.description.replace("'", "&#39;") in r.text


async def test_accounting_card_shows_what_syncs(owner: Browser) -> None:
    r = await owner.get("/settings/integrations/accounting")
    assert [m for m in re.findall(r'data-provider="(\w+)"', r.text)] == ["xero", "freshbooks", "wave"]
    assert "Both ways (newest edit wins)" in r.text
    assert "<code>Contacts</code>" in r.text


async def test_unknown_card_is_404(owner: Browser) -> None:
    assert (await owner.get("/settings/integrations/nope")).status_code == 404
    assert (await owner.get("/settings/billing/quickbooks")).status_code == 404  # on the hub, not billing


async def test_stripe_lives_under_billing_not_the_hub(owner: Browser) -> None:
    hub = await owner.get("/settings/integrations")
    assert "Stripe" not in card_names(hub.text)
    r = await owner.get("/settings/billing/stripe")
    assert r.status_code == 200
    assert 'href="/integrations/stripe/connect?mode=page"' in r.text
    billing = await owner.get("/settings/billing")
    assert card_names(billing.text) == ["Stripe"]


async def test_company_profile_is_read_only_for_everyone(client: Browser, biz: Business) -> None:
    await client.login(biz.tech.email)
    r = await client.get("/settings/company")
    assert r.status_code == 200
    assert biz.tenant.name in r.text
    assert "<form" not in r.text.split("</nav>", 1)[1]


NOT_SYNCING = [
    s.key
    for s in registry.all()
    if s.card
    and s.entities
    and not features.get(s.key).syncs  # calendars, other ledgers, reviews, e-sign, voice
    and features.get(s.key).coming  # not Thumbtack: its leads arrive by webhook, nothing of it is to come
]


@pytest.mark.parametrize("key", NOT_SYNCING)
async def test_issue15_item1_a_provider_whose_sync_is_to_come_shows_no_sync_dashboard(
    owner: Browser, session, key: str
) -> None:  # noqa: ANN001
    spec = registry.get(key)
    if spec.auth.mode.value == "api_key":
        r = await owner.submit(f"/integrations/{key}/api-key", {"api_key": f"demo-{key}-api-key"})
    else:
        r, _ = await consent(owner, key)
    assert r.status_code == 303, r.text
    conn = await session.scalar(select(Connection).where(Connection.provider == key))
    html = (await owner.get(f"/settings/integrations/{spec.card}")).text
    panel = html[html.index(f'data-provider="{key}"') :]
    panel = panel[: panel.index("</section>")]
    # What it really does: the connection, its account and health; and what is coming, in plain words.
    assert ">Connected<" in panel and 'class="health-label">Excellent' in panel
    assert "arrives in a coming release" in panel
    works = panel[panel.index(f'data-works="{key}"') :]
    assert 'data-now="connect"' in works and 'data-now="health"' in works
    assert works.count("data-coming=") == len(spec.entities)
    # No dashboard, Auto-Sync, entity cards or runs for work that is never done.
    for claim in ("data-sync-dashboard", "Auto-Sync", "changes go out as they happen", "data-entity=", "Sync history"):
        assert claim not in panel, claim
    assert panel.count("data-coming>Coming, not built yet<") == len(spec.entities)  # the table says so too
    refused = await owner.submit(f"/settings/integrations/{spec.card}/{conn.id}/sync")
    assert refused.status_code == 404 and "coming release" in refused.text


async def test_issue15_item1_hub_cards_state_what_works_now(owner: Browser) -> None:
    html = (await owner.get("/settings/integrations")).text
    lines = dict(re.findall(r'data-card="(\w+)".*?data-now-line>([^<]+)<', html, flags=re.S))
    assert set(lines) == {c.key for c in registry.cards()}
    assert lines["quickbooks"].startswith("Works now: syncs customers, items")
    assert lines["google_business_profile"] == (
        "Works now: connect and health checks. Coming: reviews and review replies."
    )
    assert lines["calendar"] == "Works now: syncs jobs and time blocks."  # Google Calendar sends jobs (issue 17)
    assert lines["voice_ai"] == "Works now: syncs calls."  # the assistant's calls come in (issue 21)
    # Xero sends them (issue 16); the card says it is Xero's, and that FreshBooks and Wave are to come.
    assert lines["accounting"].startswith("Works now: Xero syncs customers, items")
    assert lines["accounting"].endswith("Coming: FreshBooks and Wave.")
