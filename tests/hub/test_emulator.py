"""The emulator framework: OAuth rules, faults, rate limits, request log (on a tiny sample emulator)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Account, Emulator, FaultRule, OAuthRules, OAuthServer, RateRule
from fieldhub.hub.emulator.core import EmulatedDrop

REDIRECT = "http://hub.test/oauth/callback"


class Sample(Emulator):
    key = "sample"

    def __init__(self, rules: OAuthRules) -> None:
        super().__init__(seed=1)
        self.oauth = OAuthServer(
            self, rules, [Account("acct-1", "Acme Co"), Account("acct-2", "Beta LLC")], title="Sample"
        )
        self.things: dict[str, int] = {}

        @self.app.post("/v1/things/{name}")
        async def create(name: str, request: Request):
            if self.oauth.authenticate(request) is None:
                return JSONResponse({"fault": "unauthorized"}, status_code=401)
            await asyncio.sleep(0.01)
            self.things[name] = self.things.get(name, 0) + 1
            return {"name": name, "count": self.things[name]}


def client(emulator: Emulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://emu.test")


async def connect(http: httpx.AsyncClient, rules: OAuthRules, verifier: str = "") -> dict:
    params = {"client_id": rules.client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": "s1"}
    if verifier:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    page = await http.get("/oauth/authorize", params=params)
    assert page.status_code == 200 and "Acme Co" in page.text
    r = await http.post("/oauth/authorize", data={**params, "decision": "approve", "account": "acct-1"})
    assert r.status_code == 302
    q = parse_qs(urlparse(r.headers["location"]).query)
    assert q["state"] == ["s1"]
    form = {"grant_type": "authorization_code", "code": q["code"][0], "redirect_uri": REDIRECT}
    if verifier:
        form["code_verifier"] = verifier
    r = await http.post("/oauth/token", data=form, auth=(rules.client_id, rules.client_secret))
    assert r.status_code == 200, r.text
    return r.json()


async def refresh(http: httpx.AsyncClient, rules: OAuthRules, token: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(rules.client_id, rules.client_secret),
    )


async def test_code_flow_with_pkce_and_api_call() -> None:
    rules = OAuthRules(pkce=True, redirect_uris=[REDIRECT])
    emu = Sample(rules)
    async with client(emu) as http:
        tokens = await connect(http, rules, verifier="v" * 50)
        r = await http.post("/v1/things/a", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.json() == {"name": "a", "count": 1}
        assert (await http.post("/v1/things/a", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_wrong_verifier_redirect_and_client_are_refused() -> None:
    rules = OAuthRules(pkce=True, redirect_uris=[REDIRECT])
    emu = Sample(rules)
    async with client(emu) as http:
        bad = await http.get(
            "/oauth/authorize", params={"client_id": rules.client_id, "redirect_uri": "http://evil/cb"}
        )
        assert bad.status_code == 400
        params = {
            "client_id": rules.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "code_challenge": "x",
        }
        r = await http.post("/oauth/authorize", data={**params, "decision": "approve", "account": "acct-1"})
        code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": "y"}
        r = await http.post("/oauth/token", data=form, auth=(rules.client_id, rules.client_secret))
        assert r.json()["error"] == "invalid_grant"
        r = await http.post("/oauth/token", data=form, auth=(rules.client_id, "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_denied_consent_redirects_with_access_denied() -> None:
    rules = OAuthRules()
    async with client(Sample(rules)) as http:
        params = {"client_id": rules.client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": "z"}
        r = await http.post("/oauth/authorize", data={**params, "decision": "deny"})
        q = parse_qs(urlparse(r.headers["location"]).query)
        assert q["error"] == ["access_denied"] and q["state"] == ["z"] and "code" not in q


async def test_rotation_with_grace() -> None:
    rules = OAuthRules(rotation="rotate", reuse_grace=86400)
    emu = Sample(rules)
    async with client(emu) as http:
        first = (await connect(http, rules))["refresh_token"]
        second = (await refresh(http, rules, first)).json()["refresh_token"]
        assert second != first
        assert (await refresh(http, rules, first)).status_code == 200  # inside the grace period
        emu.clock.advance(86401)
        assert (await refresh(http, rules, first)).json()["error"] == "invalid_grant"
        assert emu.oauth.refresh_requests == 3


async def test_single_use_refresh_tokens() -> None:
    rules = OAuthRules(rotation="single_use")
    emu = Sample(rules)
    async with client(emu) as http:
        first = (await connect(http, rules))["refresh_token"]
        assert (await refresh(http, rules, first)).status_code == 200
        assert (await refresh(http, rules, first)).json()["error"] == "invalid_grant"


async def test_expire_and_revoke_controls() -> None:
    rules = OAuthRules()
    emu = Sample(rules)
    async with client(emu) as http:
        tokens = await connect(http, rules)
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        await http.post("/_emulator/tokens/expire")
        assert (await http.post("/v1/things/a", headers=auth)).status_code == 401
        new = (await refresh(http, rules, tokens["refresh_token"])).json()
        assert (
            await http.post("/v1/things/a", headers={"Authorization": f"Bearer {new['access_token']}"})
        ).status_code == 200
        assert (await http.post("/oauth/revoke", json={"token": tokens["refresh_token"]})).status_code == 200
        assert (await refresh(http, rules, tokens["refresh_token"])).json()["error"] == "invalid_grant"
        assert emu.oauth.revocations == ["acct-1"]


async def test_faults_log_and_drop_after_commit() -> None:
    rules = OAuthRules()
    emu = Sample(rules)
    async with client(emu) as http:
        auth = {"Authorization": f"Bearer {(await connect(http, rules))['access_token']}"}
        await http.post("/_emulator/faults", json={"kind": "status", "status": 503, "count": 1, "path": "^/v1/"})
        assert (await http.post("/v1/things/a", headers=auth)).status_code == 503
        assert emu.things == {}  # the fault answered before any work
        emu.faults.append(FaultRule(kind="rate_limit", count=1, retry_after=7, path="^/v1/"))
        r = await http.post("/v1/things/a", headers=auth)
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        emu.faults.append(FaultRule(kind="drop_after_commit", count=1, path="^/v1/"))
        with pytest.raises(EmulatedDrop):
            await http.post("/v1/things/a", headers=auth)
        assert emu.things == {"a": 1}  # committed, though the client never saw the reply
        log = (await http.get("/_emulator/requests")).json()
        assert [e["fault"] for e in log if e["path"].startswith("/v1/")] == [
            "status",
            "rate_limit",
            "drop_after_commit",
        ]
        assert all(e["headers"].get("authorization") in (None, "[redacted]") for e in log)


async def test_rate_and_concurrency_limits() -> None:
    rules = OAuthRules()
    emu = Sample(rules)

    def api_only(request: Request) -> str | None:
        return "all" if request.url.path.startswith("/v1/") else None

    emu.rate_rules.append(RateRule("per-minute", limit=5, window=60, applies=api_only))
    emu.rate_rules.append(RateRule("concurrent", concurrency=2, applies=api_only))
    async with client(emu) as http:
        auth = {"Authorization": f"Bearer {(await connect(http, rules))['access_token']}"}
        statuses = [(await http.post(f"/v1/things/{i}", headers=auth)).status_code for i in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        emu.clock.advance(61)
        results = await asyncio.gather(*(http.post(f"/v1/things/c{i}", headers=auth) for i in range(4)))
        assert sorted(r.status_code for r in results) == [200, 200, 429, 429]
        assert emu.max_inflight["all"] == 2
