"""Xero's stand-in: Xero Identity (OpenID Connect, PKCE, signed tokens, rotating refresh tokens) and the connections.

Paths are Xero's own: authorize /identity/connect/authorize (login.xero.com); token /connect/token, revocation
/connect/revocation, userinfo /connect/userinfo, discovery /.well-known/openid-configuration and its key set
/.well-known/openid-configuration/jwks (identity.xero.com); connections /Connections and /Connections/{id}
(api.xero.com, whose paths are case-insensitive: /connections works too).

Token replies are exactly Xero's (shared/specs/xero/test_token_api_refresh_token.yaml is the referee):
`id_token` (only when `openid` was asked), `access_token`, `expires_in` (1800), `token_type` "Bearer",
`refresh_token` (only with `offline_access`), `scope`; nothing else, as xero-python passes the reply to a function
that takes those names and no others. Access and id tokens are RS256 JWTs with Xero's claims, signed with a key
the discovery document's `jwks_uri` publishes. Each consent is an auth event: it connects the organisation chosen
(or renews its connection), and GET /Connections?authEventId= lists what it connected.

The Accounting API (accounting.py, over each organisation's books in books.py) answers under /api.xro/2.0 with
Xero's limits: 60 calls a minute, 5,000 a day (on the emulator's clock) and 5 in progress per tenant, 10,000 a
minute per app; every reply says what is left (X-MinLimit-Remaining, X-DayLimit-Remaining,
X-AppMinLimit-Remaining) and a 429 names the limit hit (X-Rate-Limit-Problem) with Retry-After for the minute and
day limits. Changes to contacts, invoices and credit notes are sent to the hub as signed webhooks (webhooks.py).
See README.md beside this file for what is emulated and what is not.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from fieldhub import exactjson
from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer, RateRule
from fieldhub.hub.emulator.core import CONTROL_PREFIX, INT, STR, error_shape
from fieldhub.hub.emulator.signing import SigningKey, at_hash
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.providers.xero.emulator.accounting import API_PREFIX, RESOURCES, AccountingAPI, render
from fieldhub.providers.xero.emulator.books import Invalid, Organisation, ms
from fieldhub.providers.xero.emulator.webhooks import Webhooks

ORGANISATIONS = [
    Account("a3b4c5d6-0000-4000-8000-00000000c001", "Riverbend Plumbing & Heating", "office@riverbend.example"),
    Account("a3b4c5d6-0000-4000-8000-00000000c002", "Bayside Plumbing Ltd", "accounts@bayside.example"),
]
ACCESS_LIFETIME = 1800
ID_TOKEN_LIFETIME = 300
CONNECTIONS = "/connections"
# Xero's published limits (facts §2.5): per tenant a minute, a day and calls in progress; per app a minute.
LIMITS = {"day": 5000, "minute": 60, "appminute": 10_000}
CONCURRENT = 5


def xero_time(ts: float) -> str:
    """Xero's connection dates: UTC, seven fractional digits, no zone (`2020-03-18T21:20:07.7179250`)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


def user_of(account: Account) -> dict[str, str]:
    """The Xero user who signs in for an organisation (the demo has one per organisation)."""
    user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero-user:{account.email}"))
    given, _, rest = account.email.partition("@")
    return {
        "xero_userid": user_id,
        "email": account.email,
        "preferred_username": account.email,
        "given_name": given.capitalize(),
        "family_name": rest.split(".")[0].replace("-", " ").title(),
        "name": f"{given.capitalize()} {rest.split('.')[0].replace('-', ' ').title()}",
    }


class XeroOAuth(OAuthServer):
    """Xero Identity's replies and tokens, over the framework's code, PKCE and rotation rules."""

    emulator: XeroEmulator

    def authorized(self, account: Account, code: Any, query: dict[str, str]) -> None:
        event = str(uuid.uuid4())
        code.grant.update(
            auth_event_id=event,
            nonce=query.get("nonce", ""),
            auth_time=int(self.emulator.clock.now()),
            sid=uuid.uuid4().hex.upper(),
            global_session_id=uuid.uuid4().hex,
        )
        self.emulator.connect(account, event)

    async def token(self, request: Request) -> Response:
        self.emulator.issuer = str(request.base_url).rstrip("/")
        return await super().token(request)

    def _claims(self, account: Account, grant: dict[str, Any], now: int) -> dict[str, Any]:
        user = user_of(account)
        return {
            "nbf": now,
            "iss": self.emulator.issuer,
            "iat": now,
            "sub": user["xero_userid"].replace("-", ""),
            "auth_time": grant.get("auth_time", now),
            "xero_userid": user["xero_userid"],
            "global_session_id": grant.get("global_session_id", ""),
            "sid": grant.get("sid", ""),
        }

    def access_value(self, account: Account, scope: str, grant: dict[str, Any], expires_at: float) -> str:
        now = int(self.emulator.clock.now())
        claims = {
            **self._claims(account, grant, now),
            "exp": int(expires_at),
            "aud": f"{self.emulator.issuer}/resources",
            "client_id": self.rules.client_id,
            "jti": uuid.uuid4().hex.upper(),
            "authentication_event_id": grant.get("auth_event_id", ""),
            "scope": scope.split(),
            "amr": ["pwd"],
        }
        return self.emulator.signing.sign(claims)

    def _issue(self, account: Account, scope: str, refresh: Any, grant: dict[str, Any] | None = None) -> dict[str, Any]:
        issued = super()._issue(account, scope, refresh, grant)
        scopes = scope.split()
        notes = grant or {}
        body: dict[str, Any] = {}
        if "openid" in scopes:
            now = int(self.emulator.clock.now())
            claims = {
                **self._claims(account, notes, now),
                "exp": now + ID_TOKEN_LIFETIME,
                "aud": self.rules.client_id,
                "at_hash": at_hash(issued["access_token"]),
                "amr": ["pwd"],
            }
            if notes.get("nonce"):
                claims["nonce"] = notes["nonce"]
            if "email" in scopes or "profile" in scopes:
                claims |= {k: v for k, v in user_of(account).items() if k != "xero_userid"}
            body["id_token"] = self.emulator.signing.sign(claims)
        body |= {"access_token": issued["access_token"], "expires_in": issued["expires_in"], "token_type": "Bearer"}
        if "offline_access" in scopes and "refresh_token" in issued:
            body["refresh_token"] = issued["refresh_token"]
        elif "refresh_token" in issued:
            self.tokens.pop(issued["refresh_token"], None)  # without offline_access Xero issues none
        body["scope"] = scope
        return body

    def _revoke_account(self, account_id: str) -> None:
        # Revoking a grant also removes the connections it made.
        super()._revoke_account(account_id)
        self.emulator.disconnect_tenant(account_id)


def _tenant_of(request: Request) -> str | None:
    if not request.url.path.startswith(API_PREFIX):
        return None
    return request.headers.get("xero-tenant-id", "").strip() or None


def _app_of(request: Request) -> str | None:
    path = request.url.path
    return "app" if path.startswith(API_PREFIX) or path.startswith(CONNECTIONS) else None


class XeroEmulator(Emulator):
    key = "xero"
    spec_label = "Xero"
    persisted = ("connections", "signing_pem", "organisations", "replays")
    # Xero's problem details (RFC 7807 with Xero's capitalised names), as api.xero.com answers.
    error_schema: ClassVar[dict[str, Any]] = error_shape(
        {"Type": {"type": ["string", "null"]}, "Title": STR, "Status": INT, "Detail": STR}, closed=False
    )

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.replays: dict[tuple[str, str], tuple[str, float, int, bytes]] = {}  # Idempotency-Key replies
        self.webhooks = Webhooks(
            url=config.hub_url.rstrip("/") + "/webhooks/xero",
            key=config.webhook_secret,
            clock=self.clock,
            deliver=config.deliver_webhooks,
            transport=webhook_transport,
        )
        self.organisations: dict[str, Organisation] = {}
        self._load_organisations()
        self.rate_rules += [
            RateRule("day", limit=LIMITS["day"], window=86400, applies=_tenant_of),
            RateRule("minute", limit=LIMITS["minute"], window=60, applies=_tenant_of),
            RateRule("appminute", limit=LIMITS["appminute"], window=60, applies=_app_of),
            RateRule("concurrent", concurrency=CONCURRENT, applies=_tenant_of),
        ]
        self.issuer = "https://identity.xero.com"  # the base URL the identity endpoints are reached at
        self.signing = SigningKey()
        self.signing_pem = self.signing.pem
        self.connections: dict[str, dict[str, Any]] = {}  # id -> Xero's connection, times as epoch seconds
        rules = OAuthRules.for_config(
            config,
            access_lifetime=ACCESS_LIFETIME,
            refresh_lifetime=5_184_000,
            rotation="rotate",
            reuse_grace=1800,
            pkce=True,
        )
        self.oauth = XeroOAuth(
            self,
            rules,
            list(ORGANISATIONS),
            title="Xero",
            brand_color="#13B5EA",
            authorize_path="/identity/connect/authorize",
            token_path="/connect/token",
            revoke_path="/connect/revocation",
        )
        self.app.add_api_route("/.well-known/openid-configuration", self.discovery, methods=["GET"])
        self.app.add_api_route("/.well-known/openid-configuration/jwks", self.jwks, methods=["GET"])
        self.app.add_api_route("/connect/userinfo", self.userinfo, methods=["GET"])
        self.oauth.paths.add("/connect/userinfo")  # OpenID's own errors (RFC 6750), not the API's problem body
        self.app.add_api_route(CONNECTIONS, self.list_connections, methods=["GET"])
        self.app.add_api_route(CONNECTIONS + "/{connection_id}", self.delete_connection, methods=["DELETE"])
        self.accounting = AccountingAPI(self)
        _add_control_routes(self)

    def _load_organisations(self) -> None:
        self.organisations.clear()
        for account in ORGANISATIONS:
            self.organisations[account.id] = Organisation(account.id, account.name, self.clock.now)
        self._wire()

    def _wire(self) -> None:
        for org in self.organisations.values():
            org.now = self.clock.now
            org.notify = functools.partial(self.webhooks.event, org.tenant_id)

    # --- framework hooks --------------------------------------------------------------------------
    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """Accounting replies against xero_accounting.yaml (200s and 400 ValidationExceptions); /Connections against
        xero-identity.yaml; the other errors (401, 403, 404, 429: api.xero.com's problem body, which the
        Accounting spec does not describe) against `error_schema`."""
        from fieldhub.providers.xero.emulator.spec import load_spec

        if path.lower().startswith(API_PREFIX.lower()) and status in (200, 400):
            spec = load_spec("accounting")
        elif path.lower().startswith(CONNECTIONS) and status == 200:
            spec = load_spec("identity")
        else:
            return super().spec_problems(method, path, status, body)
        if spec is None:
            raise SpecMissing("shared/specs/xero")
        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return spec.response_errors(method, path, status, data)

    def limit_headers(self, request: Request) -> dict[str, str]:
        """What is left of each limit, on every reply of the API."""
        tenant = _tenant_of(request)
        rules = {rule.name: rule for rule in self.rate_rules}
        headers = {"X-AppMinLimit-Remaining": str(self.remaining(rules["appminute"], "app"))}
        if tenant:
            headers["X-DayLimit-Remaining"] = str(self.remaining(rules["day"], tenant))
            headers["X-MinLimit-Remaining"] = str(self.remaining(rules["minute"], tenant))
        return headers

    def rate_limited_response(self, retry_after: float, request: Request | None = None) -> Response:
        response = self.error_response(429, "Rate limit exceeded", request)
        problem = getattr(request.state, "rate_rule", "minute") if request is not None else "minute"
        response.headers["X-Rate-Limit-Problem"] = problem
        if problem != "concurrent":
            # Retry-After is read in real seconds by clients: a scaled clock shortens the wait.
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after / self.clock.scale)))
        if request is not None:
            response.headers.update(self.limit_headers(request))
        return response

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        hooks = self.webhooks
        state["webhooks"] = {"pending": hooks.pending, "deliveries": hooks.deliveries, "sequence": hooks.sequence}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.signing = SigningKey(self.signing_pem)
        self._wire()
        hooks = state.get("webhooks", {})
        self.webhooks.pending = hooks.get("pending", [])
        self.webhooks.deliveries = hooks.get("deliveries", [])
        self.webhooks.sequence = hooks.get("sequence", 0)

    def reset(self) -> None:
        super().reset()
        self.replays.clear()
        self.webhooks.pending.clear()
        self.webhooks.deliveries.clear()
        self._load_organisations()

    def state(self) -> dict[str, Any]:
        return {
            tenant: {
                "name": org.name,
                "counts": {r.name: len(getattr(org, r.store)) for r in RESOURCES.values() if r.store},
                "objects": {
                    r.name: [_plain(render(org, r.name, o)) for o in getattr(org, r.store).values()]
                    for r in RESOURCES.values()
                    if r.store and r.store != "tax_rates"
                },
            }
            for tenant, org in self.organisations.items()
        }

    def organisation_body(self, org: Organisation) -> dict[str, Any]:
        """GET /Organisation, as the recorded reply (specs/xero/test_get_organisations.yaml) shapes it."""
        return {
            "OrganisationID": org.tenant_id,
            "APIKey": "",
            "Name": org.name,
            "LegalName": org.name,
            "PaysTax": True,
            "Version": "US",
            "OrganisationType": "COMPANY",
            "BaseCurrency": "USD",
            "CountryCode": "US",
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUALS",
            "SalesTaxPeriod": "QUARTERLY",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": ms(org.created),
            "OrganisationEntityType": "COMPANY",
            "Timezone": "EASTERNSTANDARDTIME",
            "ShortCode": "!" + org.tenant_id[-5:].upper(),
            "Edition": "BUSINESS",
            "Class": "STANDARD",
            "LineOfBusiness": "Plumbing",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # api.xero.com matches paths without regard to case (/Connections, as the OpenAPI and SDK write it).
        if scope["type"] == "http" and scope["path"].lower().startswith(CONNECTIONS):
            path = scope["path"].lower()
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await super().__call__(scope, receive, send)

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        body: dict[str, Any] = {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": message,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        }
        return JSONResponse(body, status_code=status)

    # --- connections ------------------------------------------------------------------------------
    def connect(self, account: Account, auth_event_id: str) -> dict[str, Any]:
        """A consent for `account`: its connection is made, or renewed (same id, newer updatedDateUtc)."""
        now = self.clock.now()
        found = next((c for c in self.connections.values() if c["tenantId"] == account.id), None)
        if found is None:
            found = {
                "id": str(uuid.uuid4()),
                "tenantId": account.id,
                "tenantType": "ORGANISATION",
                "tenantName": account.name,
                "created": now,
            }
            self.connections[found["id"]] = found
        found.update(authEventId=auth_event_id, updated=now)
        return found

    def disconnect_tenant(self, tenant_id: str) -> None:
        for connection_id in [i for i, c in self.connections.items() if c["tenantId"] == tenant_id]:
            del self.connections[connection_id]

    @staticmethod
    def connection_body(connection: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": connection["id"],
            "authEventId": connection["authEventId"],
            "tenantId": connection["tenantId"],
            "tenantType": connection["tenantType"],
            "tenantName": connection["tenantName"],
            "createdDateUtc": xero_time(connection["created"]),
            "updatedDateUtc": xero_time(connection["updated"]),
        }

    async def list_connections(self, request: Request) -> Response:
        """Every organisation this app is connected to (by the signed-in user), oldest first."""
        if self.oauth.authenticate(request) is None:
            return self.error_response(401, "AuthenticationUnsuccessful")
        event = request.query_params.get("authEventId", "")
        found = sorted(self.connections.values(), key=lambda c: c["created"])
        return JSONResponse([self.connection_body(c) for c in found if not event or c["authEventId"] == event])

    async def delete_connection(self, connection_id: str, request: Request) -> Response:
        if self.oauth.authenticate(request) is None:
            return self.error_response(401, "AuthenticationUnsuccessful")
        if self.connections.pop(connection_id, None) is None:
            return self.error_response(404, "Resource not found")
        return Response(status_code=204)

    # --- OpenID ---------------------------------------------------------------------------------
    async def discovery(self, request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": base,
                "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
                "authorization_endpoint": f"{base}/identity/connect/authorize",
                "token_endpoint": f"{base}/connect/token",
                "userinfo_endpoint": f"{base}/connect/userinfo",
                "revocation_endpoint": f"{base}/connect/revocation",
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "claims_supported": [
                    "sub",
                    "xero_userid",
                    "global_session_id",
                    "email",
                    "preferred_username",
                    "given_name",
                    "family_name",
                    "name",
                ],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["plain", "S256"],
            }
        )

    async def jwks(self) -> JSONResponse:
        return JSONResponse({"keys": [self.signing.jwk()]})

    async def userinfo(self, request: Request) -> JSONResponse:
        account = self.oauth.authenticate(request)
        if account is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        user = user_of(account)
        return JSONResponse({"sub": user["xero_userid"].replace("-", ""), **user})


def _plain(value: Any) -> Any:
    """Amounts as exact strings: the control surface is JSON through FastAPI, which would make them floats."""
    return json.loads(exactjson.text(value))


def _add_control_routes(emu: XeroEmulator) -> None:
    """A bookkeeper working in Xero (what the hub must notice), and the webhooks' state and Intent to Receive."""
    app = emu.app
    base = f"{CONTROL_PREFIX}/organisations/{{tenant_id}}"

    async def act(tenant_id: str, resource: str, object_id: str, request: Request, pay: bool = False) -> Response:
        org = emu.organisations.get(tenant_id)
        found = RESOURCES.get(resource.lower())
        if org is None or found is None or not found.store:
            return emu.error_response(404, "No such organisation or resource")
        raw = await request.body()
        body = exactjson.loads(raw) if raw.strip() else {}
        try:
            if pay:
                invoice = org.invoices[object_id]
                account = body.get("Account") or {"Code": "090"}
                body = {
                    "Invoice": {"InvoiceID": object_id},
                    "Account": account,
                    "Amount": body.get("Amount", invoice["AmountDue"]),
                    **{k: v for k, v in body.items() if k in ("Date", "Reference")},
                }
                found = RESOURCES["payments"]
                record = org.pay(body)
            else:
                store = getattr(org, found.store)
                existing = store.get(object_id) if object_id else None
                if object_id and existing is None:
                    return emu.error_response(404, "Resource not found")
                writers = {
                    "Contacts": lambda: org.save_contact(body, existing),
                    "Items": lambda: org.save_item(body, existing),
                    "Invoices": lambda: org.save_document("invoices", body, existing),
                    "CreditNotes": lambda: org.save_document("credit_notes", body, existing),
                    "BankTransactions": lambda: org.save_bank_transaction(body, existing),
                    "Payments": lambda: org.delete_payment(existing, body) if existing else org.pay(body),
                }
                record = writers[found.name]()
        except (Invalid, KeyError) as exc:
            return emu.error_response(400, str(exc))
        emu.save_state()
        return Response(exactjson.dumps({found.name: [render(org, found.name, record)]}), media_type="application/json")

    @app.post(base + "/invoices/{invoice_id}/pay")
    async def pay(tenant_id: str, invoice_id: str, request: Request) -> Response:
        """The bookkeeper records a payment (the invoice's whole balance unless Amount is given) into 090."""
        return await act(tenant_id, "Invoices", invoice_id, request, pay=True)

    @app.post(base + "/{resource}")
    async def create(tenant_id: str, resource: str, request: Request) -> Response:
        return await act(tenant_id, resource, "", request)

    @app.post(base + "/{resource}/{object_id}")
    async def edit(tenant_id: str, resource: str, object_id: str, request: Request) -> Response:
        return await act(tenant_id, resource, object_id, request)

    @app.get(f"{CONTROL_PREFIX}/webhooks")
    async def deliveries() -> dict[str, Any]:
        hooks = emu.webhooks
        return {
            "url": hooks.url,
            "deliver": hooks.deliver,
            "pending_events": len(hooks.pending),
            "intent": hooks.intent,
            "deliveries": hooks.listing(),
        }

    @app.post(f"{CONTROL_PREFIX}/webhooks/flush")
    async def flush(due_only: bool = False) -> dict[str, Any]:
        attempted = await emu.webhooks.flush(force=not due_only)
        return {"attempted": len(attempted), "statuses": [d.status for d in attempted]}

    @app.post(f"{CONTROL_PREFIX}/webhooks/intent")
    async def intent() -> dict[str, Any]:
        return await emu.webhooks.intent_to_receive()


def create_emulator(config: EmulatorConfig) -> XeroEmulator:
    return XeroEmulator(config)
