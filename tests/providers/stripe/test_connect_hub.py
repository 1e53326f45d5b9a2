"""Connecting Stripe from Settings → Billing & Taxes: OAuth for an existing account, Account Links for a new one."""

from __future__ import annotations

from urllib.parse import urlparse

from sqlalchemy import select

from fieldhub.hub.connections.models import Connection, ConnectionStatus
from tests.providers.stripe.hub import RIVERBEND, StripeHub


async def test_oauth_connect_shows_the_account_and_disconnect_deauthorizes(stripe_hub: StripeHub) -> None:
    conn = await stripe_hub.connect()
    assert conn.account_id == RIVERBEND and conn.status == ConnectionStatus.CONNECTED
    page = await stripe_hub.owner.get("/settings/billing/stripe")
    assert "Riverbend Plumbing &amp; Heating" in page.text
    assert "•••• 6789" in page.text and page.text.count("Enabled") >= 2
    r = await stripe_hub.owner.submit(f"/integrations/stripe/connections/{conn.id}/disconnect")
    assert r.status_code == 303
    assert RIVERBEND not in stripe_hub.emu.connected  # deauthorized at Stripe, not just forgotten here
    await stripe_hub.delivered()  # account.application.deauthorized comes back: already disconnected, harmless
    async with stripe_hub.app.state.sessionmaker() as s:
        assert (await s.get(Connection, conn.id)).status == ConnectionStatus.DISCONNECTED


async def test_deauthorized_at_stripe_disconnects_here(stripe_hub: StripeHub) -> None:
    conn = await stripe_hub.connect()
    r = await stripe_hub.owner.post(
        "/emulators/stripe/oauth/deauthorize",
        data={
            "client_id": "demo-stripe-client",
            "stripe_user_id": RIVERBEND,
            "client_secret": "demo-stripe-client-secret",
        },
    )
    assert r.status_code == 200, r.text
    await stripe_hub.delivered()
    async with stripe_hub.app.state.sessionmaker() as s:
        assert (await s.get(Connection, conn.id)).status == ConnectionStatus.DISCONNECTED


async def test_account_links_onboarding_for_a_new_account(stripe_hub: StripeHub) -> None:
    page = await stripe_hub.owner.get("/settings/billing/stripe")
    assert 'action="/integrations/stripe/onboard"' in page.text
    r = await stripe_hub.owner.submit("/integrations/stripe/onboard")
    assert r.status_code == 303, r.text
    link = r.headers["location"]
    assert "/emulators/stripe/setup/e/acct_" in link
    async with stripe_hub.app.state.sessionmaker() as s:
        conn = (await s.scalars(select(Connection).where(Connection.provider == "stripe"))).one()
    assert conn.account_details["charges"] == "Not enabled"
    form = await stripe_hub.owner.get(urlparse(link).path)
    assert form.status_code == 200
    done = await stripe_hub.owner.post(urlparse(link).path, data={"business_name": "Business a"})
    assert done.status_code == 303
    assert done.headers["location"].endswith(f"/integrations/stripe/onboard/return?connection={conn.id}")
    back = await stripe_hub.owner.get(done.headers["location"])
    assert back.status_code == 303
    # A used link sends the owner to refresh_url, which mints a new one.
    again = await stripe_hub.owner.get(urlparse(link).path)
    assert again.status_code == 302 and "/onboard/refresh" in again.headers["location"]
    fresh = await stripe_hub.owner.get(urlparse(again.headers["location"]).path + "?connection=" + str(conn.id))
    assert fresh.status_code == 303 and "/setup/e/" in fresh.headers["location"] and fresh.headers["location"] != link
    async with stripe_hub.app.state.sessionmaker() as s:
        conn = await s.get(Connection, conn.id)
    assert conn.account_name == "Business a"
    assert conn.account_details["charges"] == "Enabled" and conn.account_details["payouts"] == "Enabled"
    assert conn.account_details["payout_bank"].endswith("6789")
