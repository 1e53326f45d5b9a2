"""Connecting Stripe from Settings → Billing & Taxes: OAuth for an existing account, Account Links for a new one."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlparse

from sqlalchemy import select

from fieldhub.core.invoices.models import InvoiceStatus
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from tests.hub.oauth.conftest import consent
from tests.providers.stripe.hub import RIVERBEND, StripeHub, reload, sent_invoice


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


async def test_issue14_item3_a_second_business_cannot_take_the_account_and_payments_reach_the_first(
    stripe_hub: StripeHub, session, biz, other_biz, make_client
) -> None:
    """Two businesses connecting one Stripe account used to send its events to the newest: the first's invoices
    stayed unpaid. The second connect is refused with what to do, and the first business is paid."""
    await stripe_hub.connect()
    async with make_client() as other:
        await other.login(other_biz.owner.email)
        refused, _ = await consent(other, "stripe", account=RIVERBEND)
    assert refused.status_code == 409
    assert (
        "This Stripe account is already connected to another fieldhub business. Disconnect it there first, "
        "or connect a different account."
    ) in refused.text
    assert biz.tenant.name not in refused.text and "Riverbend Plumbing" not in refused.text
    async with stripe_hub.app.state.sessionmaker() as s:
        rows = list(await s.scalars(select(Connection)))
    assert [(c.tenant_id, c.status) for c in rows] == [(biz.tenant.id, ConnectionStatus.CONNECTED)]
    assert RIVERBEND in stripe_hub.emu.connected  # the refusal deauthorized nothing at Stripe

    invoice = await sent_invoice(session, biz.tenant.id, "180.00")
    await stripe_hub.pay_card(await stripe_hub.open_pay_link(invoice))
    await stripe_hub.delivered()
    invoice, payments = await reload(stripe_hub.app, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and [p.amount for p in payments] == [Decimal("180.00")]
