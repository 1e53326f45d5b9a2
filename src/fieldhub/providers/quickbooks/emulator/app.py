"""The QuickBooks Online emulator: Intuit's OAuth, the v3 company API, its limits, faults and webhooks."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer, RateRule
from fieldhub.providers.quickbooks.emulator.errors import (
    QBOFault,
    auth_failed_body,
    dumps,
    qbo_time,
    system_fault,
    throttle_fault,
)
from fieldhub.providers.quickbooks.emulator.seed import companies
from fieldhub.providers.quickbooks.emulator.store import Company

API_PREFIX = "/v3/company/"
SCOPES = ["com.intuit.quickbooks.accounting", "openid", "profile", "email"]
REFRESH_LIFETIME = 8726400  # x_refresh_token_expires_in in Intuit's token responses


class IntuitOAuth(OAuthServer):
    """Intuit's token responses carry `x_refresh_token_expires_in`, never the RFC's `refresh_token_expires_in`."""

    def _issue(self, account: Account, scope: str, refresh: Any) -> dict[str, Any]:
        body = super()._issue(account, scope, refresh)
        body.pop("refresh_token_expires_in", None)
        return body


class QuickBooksEmulator(Emulator):
    key = "quickbooks"

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.webhook_transport = webhook_transport
        self.companies: dict[str, Company] = {}
        self._load_companies()
        rules = OAuthRules(
            client_id=config.client_id,
            client_secret=config.client_secret,
            redirect_uris=[config.redirect_uri],
            scopes=SCOPES,
            access_lifetime=config.access_lifetime or 3600,
            refresh_lifetime=REFRESH_LIFETIME,
            rotation="rotate",
            reuse_grace=86400,
            callback_params=lambda account: {"realmId": account.id},
            token_extra=lambda account: {"x_refresh_token_expires_in": REFRESH_LIFETIME},
        )
        accounts = [
            Account(c.realm_id, c.seed.name, c.seed.email, {"country": c.seed.country}) for c in self.companies.values()
        ]
        self.oauth = IntuitOAuth(
            self,
            rules,
            accounts,
            title="Intuit QuickBooks",
            brand_color="#2CA01C",
            authorize_path="/connect/oauth2",
            token_path="/oauth2/v1/tokens/bearer",
            revoke_path="/v2/oauth2/tokens/revoke",
        )
        self.rate_rules += [
            RateRule("realm-minute", limit=500, window=60, applies=_realm_of),
            RateRule("realm-concurrent", concurrency=10, applies=_realm_of),
            RateRule("realm-batch-minute", limit=40, window=60, applies=_batch_realm_of),
        ]
        self.app.add_api_route("/v1/openid_connect/userinfo", self.userinfo, methods=["GET"])
        self.app.add_api_route(API_PREFIX + "{realm_id}/{rest:path}", self.api, methods=["GET", "POST"])

    def _load_companies(self) -> None:
        self.companies = {seed.realm_id: Company(seed, self.clock.now) for seed in companies()}

    # --- framework hooks ------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request | None = None) -> Response:
        if status == 401:
            return self._auth_failed("Token invalid")
        if status == 429:
            return self.fault_response(throttle_fault())
        return self.fault_response(system_fault(status))

    def rate_limited_response(self, retry_after: float, request: Request | None = None) -> Response:
        response = self.fault_response(throttle_fault())
        # Retry-After is read in real seconds by clients: a scaled clock shortens the wait.
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after / self.clock.scale)))
        return response

    def reset(self) -> None:
        super().reset()
        self._load_companies()

    def state(self) -> dict[str, Any]:
        return {
            realm: {
                "name": company.seed.name,
                "country": company.seed.country,
                "counts": {entity: len(rows) for entity, rows in company.objects.items()},
                "objects": company.objects,
            }
            for realm, company in self.companies.items()
        }

    # --- responses ------------------------------------------------------------------------------
    def json(self, payload: dict[str, Any], status: int = 200) -> Response:
        body = {**payload, "time": qbo_time(self.clock.now(), millis=True)}
        return Response(dumps(body), status_code=status, media_type="application/json", headers={"intuit_tid": _tid()})

    def fault_response(self, fault: QBOFault) -> Response:
        return self.json({"Fault": fault.fault()}, status=fault.status)

    def _auth_failed(self, detail: str) -> Response:
        return JSONResponse(
            auth_failed_body(detail, self.clock.now()),
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"', "intuit_tid": _tid()},
        )

    # --- OpenID ---------------------------------------------------------------------------------
    async def userinfo(self, request: Request) -> Response:
        account = self.oauth.authenticate(request)
        if account is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {
                "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, account.id)),
                "email": account.email,
                "emailVerified": True,
                "givenName": "Demo",
                "familyName": "Bookkeeper",
                "realmid": account.id,
            }
        )

    # --- the company API ------------------------------------------------------------------------
    async def api(self, realm_id: str, rest: str, request: Request) -> Response:
        account = self.oauth.authenticate(request)
        if account is None:
            return self._auth_failed("Token expired or invalid")
        if account.id != realm_id or realm_id not in self.companies:
            return self._auth_failed(f"Token is not valid for realm {realm_id}")
        company = self.companies[realm_id]
        try:
            return await self.dispatch(company, rest.strip("/"), request)
        except QBOFault as fault:
            return self.fault_response(fault)

    async def dispatch(self, company: Company, path: str, request: Request) -> Response:
        parts = path.split("/")
        resource = parts[0].lower()
        if resource == "companyinfo" and request.method == "GET":
            info = company.get("CompanyInfo", parts[1] if len(parts) > 1 else "")
            if info is None:
                raise QBOFault("610", "Object Not Found", "Object Not Found : CompanyInfo")
            return self.json({"CompanyInfo": info})
        raise QBOFault("500", "Unsupported Operation", f"Operation {request.method} {path} is not supported.")


def _tid() -> str:
    return f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"


def _realm_of(request: Request) -> str | None:
    path = request.url.path
    if not path.startswith(API_PREFIX):
        return None
    return path[len(API_PREFIX) :].split("/", 1)[0] or None


def _batch_realm_of(request: Request) -> str | None:
    realm = _realm_of(request)
    if realm and request.url.path.rstrip("/").lower().endswith("/batch"):
        return realm
    return None
