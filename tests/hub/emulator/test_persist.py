"""Emulator state on disk (hub/emulator/persist.py): what a demo's emulators had comes back in a new process."""

from __future__ import annotations

import pickle
from pathlib import Path

import httpx

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.hub.emulator.persist import Keeper, StateFile, state_folder
from fieldhub.providers.quickbooks.emulator import US_REALM, create_emulator
from fieldhub.providers.stripe.emulator import StripeEmulator
from fieldhub.settings import Settings
from tests.hub.test_emulator import REDIRECT

CONFIG = EmulatorConfig(hub_url="http://hub.test", deliver_webhooks=False)


async def _qbo_token(http: httpx.AsyncClient) -> dict:
    params = {"client_id": CONFIG.client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": "s"}
    r = await http.post("/connect/oauth2", data={**params, "decision": "approve", "account": US_REALM})
    code = httpx.URL(r.headers["location"]).params["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    r = await http.post("/oauth2/v1/tokens/bearer", data=form, auth=(CONFIG.client_id, CONFIG.client_secret))
    assert r.status_code == 200, r.text
    return r.json()


def _client(app) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emu.test")


async def test_issue15_item13_quickbooks_company_and_tokens_come_back_from_the_state_file(tmp_path: Path) -> None:
    first = create_emulator(CONFIG)
    first.state_file = StateFile(first, tmp_path / "quickbooks.pickle")
    async with _client(first) as http:
        tokens = await _qbo_token(http)
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        r = await http.post(
            f"/v3/company/{US_REALM}/customer",
            json={"DisplayName": "Kept Across Restarts"},
            headers=auth,
            params={"requestid": "req-keep-1"},
        )
        assert r.status_code == 200, r.text
        created = r.json()["Customer"]
    # Written before the reply left: the file already holds the customer (a kill -9 now would lose nothing).
    assert first.state_file.writes >= 2
    assert "Kept Across Restarts" in str(pickle.loads((tmp_path / "quickbooks.pickle").read_bytes()))

    second = create_emulator(CONFIG)
    assert StateFile(second, tmp_path / "quickbooks.pickle").load()
    async with _client(second) as http:
        r = await http.get(f"/v3/company/{US_REALM}/customer/{created['Id']}", headers=auth)
        assert r.status_code == 200 and r.json()["Customer"]["SyncToken"] == created["SyncToken"]
        # The same requestid still replays rather than creating a twin.
        again = await http.post(
            f"/v3/company/{US_REALM}/customer",
            json={"DisplayName": "Kept Across Restarts"},
            headers=auth,
            params={"requestid": "req-keep-1"},
        )
        assert again.json()["Customer"]["Id"] == created["Id"]
        # The refresh token the hub holds still refreshes; new ids do not collide with the kept ones.
        refreshed = await http.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(CONFIG.client_id, CONFIG.client_secret),
        )
        assert refreshed.status_code == 200
        other = await http.post(f"/v3/company/{US_REALM}/customer", json={"DisplayName": "Made After"}, headers=auth)
        assert other.json()["Customer"]["Id"] != created["Id"]
    # Changes are still delivered as webhooks after the restore (the listeners are attached again).
    assert any(e.id == other.json()["Customer"]["Id"] for e in second.webhooks.pending)


async def test_issue15_item13_stripe_connection_objects_and_schedule_come_back(tmp_path: Path) -> None:
    config = EmulatorConfig(hub_url="http://hub.test", client_secret="sk_test_keep", deliver_webhooks=False)
    first = StripeEmulator(config)
    account = "acct_1RiverbendPlumb0"
    first.connected.add(account)
    key = {"Authorization": "Bearer sk_test_keep", "Stripe-Account": account}
    form = {
        "mode": "payment",
        "success_url": "http://hub.test/ok",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "2500",
        "line_items[0][price_data][product_data][name]": "INV-9",
        "line_items[0][quantity]": "1",
    }
    async with _client(first) as http:
        session = (await http.post("/v1/checkout/sessions", data=form, headers=key)).json()
    path = tmp_path / "stripe.pickle"
    assert StateFile(first, path).save()

    second = StripeEmulator(config)
    assert StateFile(second, path).load()
    assert account in second.connected and second.scheduled  # the session's expiry is still due
    async with _client(second) as http:
        got = await http.get(f"/v1/checkout/sessions/{session['id']}", headers=key)
        assert got.status_code == 200 and got.json()["amount_total"] == 2500
        second.clock.advance(86401)
        expired = await http.get(f"/v1/checkout/sessions/{session['id']}", headers=key)
        assert expired.json()["status"] == "expired"  # the scheduled action ran on the stored session itself
        assert second.find(account, "event")[0]["type"] == "checkout.session.expired"


async def test_issue15_item13_the_state_folder_resets_with_its_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    settings = Settings(mode="demo", database_url=f"sqlite+aiosqlite:///{db}")
    folder = state_folder(settings)
    assert folder == tmp_path / "demo-emulators"
    assert state_folder(Settings(mode="test", database_url=settings.database_url)) is None

    from fieldhub.db import make_engine, make_sessionmaker
    from fieldhub.models import metadata
    from tests.conftest import make_business

    engine = make_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        await make_business(session, "one")
    emulator = create_emulator(CONFIG)
    keeper = Keeper(folder, {"quickbooks": emulator}, interval=3600)
    assert await keeper.start(sessionmaker) == []
    emulator.companies[US_REALM].create("Customer", {"DisplayName": "Before The Reset"})
    await keeper.stop()
    assert (folder / "quickbooks.pickle").is_file()

    resumed = create_emulator(CONFIG)
    keeper = Keeper(folder, {"quickbooks": resumed}, interval=3600)
    assert await keeper.start(sessionmaker) == ["quickbooks"]
    assert "Before The Reset" in str(resumed.companies[US_REALM].objects["Customer"])
    await keeper.stop()
    await engine.dispose()

    # Another database (the demo's was deleted and loaded again): the emulators start afresh.
    db.unlink()
    engine = make_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        await make_business(session, "two")
    fresh = create_emulator(CONFIG)
    keeper = Keeper(folder, {"quickbooks": fresh}, interval=3600)
    assert await keeper.start(sessionmaker) == []
    assert "Before The Reset" not in str(fresh.companies[US_REALM].objects["Customer"])
    await keeper.stop()
    await engine.dispose()
