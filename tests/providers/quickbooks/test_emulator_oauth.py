"""The QuickBooks emulator's OAuth: Intuit's endpoints, token shape, rotation with 24 h grace, realm-bound tokens."""

from __future__ import annotations

import base64

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator import CA_REALM, US_REALM, create_emulator

from .conftest import CONFIG, QBO, connect, emu_client


def _basic(config: EmulatorConfig) -> str:
    return base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode()


async def refresh(http, token: str, config: EmulatorConfig = CONFIG):
    return await http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Authorization": "Basic " + _basic(config)},
    )


async def test_consent_offers_both_companies_and_callback_carries_realm(http) -> None:
    page = await http.get(
        "/connect/oauth2",
        params={"client_id": CONFIG.client_id, "redirect_uri": CONFIG.redirect_uri, "response_type": "code"},
    )
    assert "Riverbend Plumbing &amp; Heating" in page.text and "Northern Lights Heating Ltd." in page.text
    tokens = await connect(http, CA_REALM)
    assert tokens["realmId"] == CA_REALM
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] == 8726400
    assert "refresh_token_expires_in" not in tokens


async def test_unregistered_redirect_uri_is_refused(http) -> None:
    r = await http.get(
        "/connect/oauth2",
        params={"client_id": CONFIG.client_id, "redirect_uri": "http://evil.test/cb", "response_type": "code"},
    )
    assert r.status_code == 400


async def test_companyinfo_needs_a_token_for_that_realm(http) -> None:
    tokens = await connect(http, US_REALM)
    qbo = QBO(http, US_REALM, tokens["access_token"])
    r = await qbo.get(f"companyinfo/{US_REALM}")
    assert r.status_code == 200
    info = r.json()["CompanyInfo"]
    assert info["CompanyName"] == "Riverbend Plumbing & Heating" and info["Country"] == "USA" and info["Id"] == US_REALM
    assert "time" in r.json()

    other = QBO(http, CA_REALM, tokens["access_token"])
    r = await other.get(f"companyinfo/{CA_REALM}")
    assert r.status_code == 401
    error = r.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"

    r = await QBO(http, US_REALM, "not-a-token").get(f"companyinfo/{US_REALM}")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_access_token_expires_and_refresh_rotates_with_a_day_of_grace() -> None:
    emulator = create_emulator(EmulatorConfig(hub_url="http://hub.test", access_lifetime=60))
    async with emu_client(emulator) as http:
        tokens = await connect(http)
        assert tokens["expires_in"] == 60
        qbo = QBO(http, US_REALM, tokens["access_token"])
        emulator.clock.advance(61)
        assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 401

        r = await refresh(http, tokens["refresh_token"])
        assert r.status_code == 200
        second = r.json()
        assert second["refresh_token"] != tokens["refresh_token"]
        assert second["x_refresh_token_expires_in"] == 8726400
        qbo.token = second["access_token"]
        assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 200

        assert (await refresh(http, tokens["refresh_token"])).status_code == 200  # within 24 h
        emulator.clock.advance(86401)
        r = await refresh(http, tokens["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert (await refresh(http, second["refresh_token"])).status_code == 200


async def test_revoke_takes_json_and_kills_the_grant(http) -> None:
    tokens = await connect(http)
    r = await http.post(
        "/v2/oauth2/tokens/revoke",
        json={"token": tokens["refresh_token"]},
        auth=(CONFIG.client_id, CONFIG.client_secret),
    )
    assert r.status_code == 200
    assert (await refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    qbo = QBO(http, US_REALM, tokens["access_token"])
    assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 401


async def test_userinfo(http) -> None:
    tokens = await connect(http)
    r = await http.get("/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200 and r.json()["email"].startswith("office@")
