"""Stripe Connect on the emulator: legacy OAuth, deauthorization, Accounts and Account Links onboarding."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.providers.stripe.conftest import BRIGHT, CLIENT_ID, REDIRECT, RIVERBEND, SECRET, Api, Receiver, oauth_connect


async def test_oauth_connect_then_act_for_the_account(api: Api, emu: StripeEmulator) -> None:
    page = await api.http.get(
        "/oauth/authorize",
        params={"response_type": "code", "client_id": CLIENT_ID, "scope": "read_write", "redirect_uri": REDIRECT},
    )
    assert "Riverbend Plumbing &amp; Heating" in page.text and "Bright Spark Electric" in page.text

    before = await api.get("/v1/account", account=BRIGHT)
    assert before.status_code == 403 and before.json()["error"]["code"] == "account_invalid"

    tokens = await oauth_connect(api.http, BRIGHT)
    assert tokens["stripe_user_id"] == BRIGHT
    assert tokens["stripe_publishable_key"].startswith("pk_test_")
    assert tokens["scope"] == "read_write" and tokens["livemode"] is False and tokens["token_type"] == "bearer"
    assert tokens["access_token"] and tokens["refresh_token"] and "expires_in" not in tokens

    me = (await api.get("/v1/account", account=BRIGHT)).json()
    assert me["id"] == BRIGHT and me["business_profile"]["name"] == "Bright Spark Electric"
    assert me["charges_enabled"] and me["external_accounts"]["data"][0]["last4"] == "1116"
    same = (await api.get(f"/v1/accounts/{BRIGHT}")).json()
    assert same == me
    # The legacy OAuth access token works as the account's own key, too.
    assert (await api.get("/v1/account", key=tokens["access_token"])).json()["id"] == BRIGHT
    # The platform alone is itself.
    assert (await api.get("/v1/account")).json()["id"] == emu.platform_id
    # Riverbend never connected.
    assert (await api.get(f"/v1/accounts/{RIVERBEND}")).status_code == 404


async def test_token_exchange_rules(api: Api) -> None:
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT}
    r = await api.http.post("/oauth/authorize", data={**params, "decision": "approve", "account": RIVERBEND})
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    wrong = await api.http.post(
        "/oauth/token", data={"grant_type": "authorization_code", "code": code, "client_secret": "sk_test_nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    # Bearer authentication with the platform key is accepted instead of the form parameter.
    ok = await api.http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert ok.status_code == 200 and ok.json()["stripe_user_id"] == RIVERBEND
    again = await api.http.post(
        "/oauth/token", data={"grant_type": "authorization_code", "code": code, "client_secret": SECRET}
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    denied = await api.http.post("/oauth/authorize", data={**params, "decision": "deny", "state": "x"})
    assert parse_qs(urlparse(denied.headers["location"]).query)["error"] == ["access_denied"]


async def test_deauthorize_emits_event_and_cuts_access(api: Api, emu: StripeEmulator, receiver: Receiver) -> None:
    await oauth_connect(api.http, RIVERBEND)
    r = await api.http.post(
        "/oauth/deauthorize",
        data={"client_id": CLIENT_ID, "stripe_user_id": RIVERBEND},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert r.status_code == 200 and r.json() == {"stripe_user_id": RIVERBEND}
    await emu.webhooks.idle()
    assert receiver.types() == ["account.application.deauthorized"]
    event = receiver.events[0]
    assert event["account"] == RIVERBEND and event["data"]["object"]["id"] == CLIENT_ID
    api.spec.validate(event, "event")
    assert (await api.get("/v1/account", account=RIVERBEND)).status_code == 403
    twice = await api.http.post(
        "/oauth/deauthorize",
        data={"client_id": CLIENT_ID, "stripe_user_id": RIVERBEND},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_client"


async def test_account_links_onboarding(api: Api, emu: StripeEmulator, receiver: Receiver) -> None:
    created = await api.post(
        "/v1/accounts",
        {
            "type": "standard",
            "email": "new@biz.test",
            "country": "US",
            "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
        },
    )
    assert created.status_code == 200
    account = created.json()
    assert account["charges_enabled"] is False and account["requirements"]["currently_due"]
    link_params = {
        "account": account["id"],
        "type": "account_onboarding",
        "refresh_url": "http://hub.test/stripe/refresh",
        "return_url": "http://hub.test/stripe/return",
    }
    link = (await api.post("/v1/account_links", link_params)).json()
    assert link["object"] == "account_link" and link["expires_at"] - link["created"] == 300
    path = urlparse(link["url"]).path
    page = await api.http.get(path)
    assert page.status_code == 200 and "Agree and submit" in page.text
    done = await api.http.post(path, data={"business_name": "New Roots Landscaping"})
    assert done.status_code == 303 and done.headers["location"] == "http://hub.test/stripe/return"

    now = (await api.get(f"/v1/accounts/{account['id']}")).json()
    assert now["charges_enabled"] and now["payouts_enabled"] and now["details_submitted"]
    assert now["business_profile"]["name"] == "New Roots Landscaping"
    assert now["external_accounts"]["data"][0]["last4"] == "6789"
    await emu.webhooks.idle()
    event = receiver.events[-1]
    assert event["type"] == "account.updated" and event["account"] == account["id"]
    assert event["data"]["previous_attributes"]["charges_enabled"] is False

    # Single use: a second visit goes to refresh_url.
    assert (await api.http.get(path)).headers["location"] == "http://hub.test/stripe/refresh"
    # And a fresh link dies after 300 seconds.
    second = (await api.post("/v1/account_links", link_params)).json()
    emu.clock.advance(301)
    assert (await api.http.get(urlparse(second["url"]).path)).headers["location"] == "http://hub.test/stripe/refresh"


async def test_errors_have_stripes_shape(api: Api) -> None:
    r = await api.get("/v1/account", key=None)
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    r = await api.get("/v1/account", key="sk_test_wrong")
    assert r.status_code == 401 and "Invalid API Key" in r.json()["error"]["message"]
    r = await api.http.get("/v1/nothing", headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 404 and "Unrecognized request URL" in r.json()["error"]["message"]
    r = await api.post("/v1/accounts", {"type": "weird"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "type"
    r = await api.post("/v1/account_links", {"account": "acct_missing", "type": "account_onboarding"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
