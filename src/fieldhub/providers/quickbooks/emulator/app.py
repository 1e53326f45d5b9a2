"""The QuickBooks Online emulator: Intuit's OAuth, the v3 company API, its limits, faults and webhooks."""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub import exactjson
from fieldhub.hub.emulator import Account, Clock, Emulator, EmulatorConfig, OAuthRules, OAuthServer, RateRule
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.providers.quickbooks.emulator import fields, query
from fieldhub.providers.quickbooks.emulator.control import add_control_routes
from fieldhub.providers.quickbooks.emulator.errors import (
    QBOFault,
    auth_failed_body,
    parse_time,
    qbo_time,
    required,
    system_fault,
    throttle_fault,
)
from fieldhub.providers.quickbooks.emulator.seed import companies
from fieldhub.providers.quickbooks.emulator.store import ENTITIES, Company
from fieldhub.providers.quickbooks.emulator.webhooks import Webhooks

API_PREFIX = "/v3/company/"
SCOPES = ["com.intuit.quickbooks.accounting", "openid", "profile", "email"]
REFRESH_LIFETIME = 8726400  # x_refresh_token_expires_in in Intuit's token responses
BATCH_MAX = 30
# Where Intuit's OAuth clients (intuitlib's AuthClient, the SDKs) read the endpoints (facts §1.1).
DISCOVERY_PATHS = ("openid_sandbox_configuration", "openid_configuration", "openid-sandbox-configuration")


class IntuitOAuth(OAuthServer):
    """Intuit's token responses carry `x_refresh_token_expires_in`, never the RFC's `refresh_token_expires_in`."""

    def _issue(self, account: Account, scope: str, refresh: Any, grant: dict[str, Any] | None = None) -> dict[str, Any]:
        body = super()._issue(account, scope, refresh, grant)
        body.pop("refresh_token_expires_in", None)
        return body


def _fault_schema(fault: str, error: str, message: str) -> dict[str, Any]:
    item = {"type": "object", "required": [message], "properties": {message: {"type": "string"}}}
    errors = {"type": "array", "minItems": 1, "items": item}
    inner = {"type": "object", "required": [error, "type"], "properties": {error: errors, "type": {"type": "string"}}}
    return {"type": "object", "required": [fault], "properties": {fault: inner}}


class QuickBooksEmulator(Emulator):
    key = "quickbooks"
    spec_label = "QBO"
    persisted = ("companies", "replays")
    # The data service's Fault, or the gateway's lower-case one for a refused token (errors.auth_failed_body).
    error_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [_fault_schema("Fault", "Error", "Message"), _fault_schema("fault", "error", "message")]
    }

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.replays: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.webhooks = Webhooks(
            url=config.hub_url.rstrip("/") + "/webhooks/quickbooks",
            verifier_token=config.webhook_secret,
            clock=self.clock,
            deliver=config.deliver_webhooks,
            transport=webhook_transport,
        )
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
        for name in DISCOVERY_PATHS:
            for path in (f"/.well-known/{name}", f"/.well-known/{name}/"):
                self.app.add_api_route(path, self.discovery, methods=["GET"])
        self.app.add_api_route("/op/v1/jwks", self.jwks, methods=["GET"])
        self.app.add_api_route(API_PREFIX + "{realm_id}/{rest:path}", self.api, methods=["GET", "POST"])
        add_control_routes(self)

    def _load_companies(self) -> None:
        self.companies = {seed.realm_id: Company(seed, self.clock.now) for seed in companies()}
        for company in self.companies.values():
            self.webhooks.watch(company)

    # --- framework hooks ------------------------------------------------------------------------
    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """Data-API replies against Intuit's XSDs. Intuit's gateway, not the data service, answers a refused
        token (401, lower-case `fault`) and a throttle (429, Fault type SERVICE, which is XML on the real
        service): the XSD describes neither, nor the OAuth endpoints."""
        if not path.startswith(API_PREFIX) or status in (401, 429):
            return None
        from fieldhub.providers.quickbooks.emulator import xsd  # xmlschema: only where replies are checked

        folder = xsd.find_specs_dir()
        if folder is None:
            raise SpecMissing("shared/specs/qbo")
        try:
            data = exactjson.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return xsd.validate_response(data, folder)

    def error_response(self, status: int, message: str, request: Request | None = None) -> Response:
        if status == 401:
            return self._auth_failed("Token invalid")
        if status == 429:
            return self.fault_response(throttle_fault())
        if 400 <= status < 500:
            return self.fault_response(
                QBOFault("2010", "Request has invalid or unsupported property", message, status=status)
            )
        return self.fault_response(system_fault(status))

    def route_error(self, status: int, request: Request) -> Response:
        detail = f"Operation {request.method} {request.url.path} is not supported."
        return self.fault_response(QBOFault("500", "Unsupported Operation", detail, status=status))

    def rate_limited_response(self, retry_after: float, request: Request | None = None) -> Response:
        response = self.fault_response(throttle_fault())
        # Retry-After is read in real seconds by clients: a scaled clock shortens the wait.
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after / self.clock.scale)))
        return response

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        state["webhooks"] = {
            "pending": self.webhooks.pending,
            "deliveries": self.webhooks.deliveries,
            "format": self.webhooks.format,
        }
        return state

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        for company in self.companies.values():
            company.now = self.clock.now
            self.webhooks.watch(company)
        hooks = state.get("webhooks", {})
        self.webhooks.pending = hooks.get("pending", [])
        self.webhooks.deliveries = hooks.get("deliveries", [])
        self.webhooks.format = hooks.get("format", self.webhooks.format)

    def reset(self) -> None:
        super().reset()
        self.replays.clear()
        self.webhooks.pending.clear()
        self.webhooks.deliveries.clear()
        self._load_companies()

    def state(self) -> dict[str, Any]:
        return {
            realm: {
                "name": company.seed.name,
                "country": company.seed.country,
                "counts": {entity: len(rows) for entity, rows in company.objects.items()},
                "objects": _plain(company.objects),
                "settings": asdict(company.settings),
            }
            for realm, company in self.companies.items()
        }

    # --- responses ------------------------------------------------------------------------------
    def json(self, payload: dict[str, Any], status: int = 200) -> Response:
        body = {**payload, "time": qbo_time(self.clock.now(), millis=True)}
        return Response(
            exactjson.dumps(body), status_code=status, media_type="application/json", headers={"intuit_tid": _tid()}
        )

    def fault_response(self, fault: QBOFault) -> Response:
        return self.json({"Fault": fault.fault()}, status=fault.status)

    def _auth_failed(self, detail: str) -> Response:
        return JSONResponse(
            auth_failed_body(detail, self.clock.now()),
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"', "intuit_tid": _tid()},
        )

    # --- OpenID ---------------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        """Intuit's OpenID discovery document (specs/qbo/discovery.json), naming this emulator's endpoints, so
        an SDK pointed at it (intuitlib takes a discovery URL as its environment) finds them all here."""
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": f"{base}/op/v1",
                "authorization_endpoint": f"{base}/connect/oauth2",
                "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
                "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
                "jwks_uri": f"{base}/op/v1/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "address", "phone"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
            }
        )

    async def jwks(self) -> Response:
        # No id_token is issued (README: not emulated), so there is no key to publish.
        return JSONResponse({"keys": []})

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
        request_id = request.query_params.get("requestid", "")
        if request_id:
            if len(request_id) > 50:
                return self.fault_response(
                    QBOFault("2130", "Invalid Request Id Format", "requestid must be at most 50 characters")
                )
            replay = self.replays.get((realm_id, request_id))
            if replay is not None:
                # The same requestid answers with the original reply and does nothing again.
                return Response(replay[1], status_code=replay[0], media_type="application/json")
        try:
            response = await self.dispatch(company, rest.strip("/"), request)
        except QBOFault as fault:
            response = self.fault_response(fault)
        if request_id and 200 <= response.status_code < 300:
            self.replays[(realm_id, request_id)] = (response.status_code, bytes(response.body))
        return response

    async def dispatch(self, company: Company, path: str, request: Request) -> Response:
        parts = path.split("/")
        resource = parts[0].lower()
        params = request.query_params
        method = request.method
        if resource == "query":
            text = params.get("query", "")
            if method == "POST" and not text:
                text = (await request.body()).decode("utf-8", "replace")
            return self.json({"QueryResponse": query.run(company, text)})
        if resource == "batch" and method == "POST":
            return self.json(self.batch(company, await _json_body(request)))
        if resource == "cdc" and method == "GET":
            return self.json({"CDCResponse": [{"QueryResponse": self.cdc(company, params)}]})
        entity = ENTITIES.get(resource)
        if entity is None:
            raise QBOFault("500", "Unsupported Operation", f"Operation {method} {parts[0]} is not supported.")
        if method == "GET":
            if len(parts) != 2:
                raise QBOFault("500", "Unsupported Operation", f"Use GET {parts[0]}/<Id> or a query.")
            return self.json({entity: company.read(entity, parts[1])})
        if len(parts) != 1:
            raise QBOFault("500", "Unsupported Operation", f"Operation POST {path} is not supported.")
        body = await _json_body(request)
        operation = params.get("operation", "").lower()
        if params.get("include", "").lower() == "void" and operation in ("", "update"):
            operation = "void"
        return self.json({entity: self.write(company, entity, operation, body)})

    def write(
        self, company: Company, entity: str, operation: str, body: dict[str, Any], *, bookkeeper: bool = False
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise QBOFault("2010", "Request has invalid or unsupported property", f"{entity} must be an object")
        body = fields.normalise(entity, body)
        if operation == "delete":
            return company.delete(entity, body, bookkeeper=bookkeeper)
        if operation == "void":
            return company.void(entity, body, bookkeeper=bookkeeper)
        if operation not in ("", "create", "update"):
            raise QBOFault("500", "Unsupported Operation", f"Operation {operation} is not supported.")
        if operation == "update" or (operation == "" and body.get("Id")):
            return company.update(entity, body, bookkeeper=bookkeeper)
        return company.create(entity, body)

    def batch(self, company: Company, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise required("BatchItemRequest")
        if len(items) > BATCH_MAX:
            raise QBOFault(
                "1040",
                "Batch size exceeds allowed limit",
                f"Batch size {len(items)} exceeds the maximum of {BATCH_MAX} items in one request.",
            )
        out = []
        for item in items:
            bid = str(item.get("bId", ""))
            try:
                if "Query" in item:
                    out.append({"bId": bid, "QueryResponse": query.run(company, str(item["Query"]))})
                    continue
                entity = next((ENTITIES[k.lower()] for k in item if k.lower() in ENTITIES), None)
                if entity is None:
                    raise required("entity")
                operation = str(item.get("operation", "")).lower()
                if str(item.get("optionsData", "")).lower() == "void":
                    operation = "void"
                if operation not in ("create", "update", "delete", "void"):
                    raise QBOFault("500", "Unsupported Operation", f"Batch operation {operation!r} is not supported.")
                key = next(k for k in item if k.lower() == entity.lower())
                out.append({"bId": bid, entity: self.write(company, entity, operation, item[key])})
            except QBOFault as fault:
                out.append({"bId": bid, "Fault": fault.fault()})
        return {"BatchItemResponse": out}

    def cdc(self, company: Company, params: Any) -> list[dict[str, Any]]:
        names = [n.strip() for n in params.get("entities", "").split(",") if n.strip()]
        if not names:
            raise required("entities")
        entities = []
        for name in names:
            entity = ENTITIES.get(name.lower())
            if entity is None:
                raise QBOFault("2010", "Request has invalid or unsupported property", f"Invalid entity {name}")
            entities.append(entity)
        raw = params.get("changedSince", "")
        if not raw:
            raise required("changedSince")
        since = parse_time(raw)
        if since is None:
            raise QBOFault("2010", "Request has invalid or unsupported property", f"Invalid changedSince {raw}")
        if since < self.clock.now() - query.CDC_LOOKBACK:
            raise QBOFault(
                "2010",
                "Request has invalid or unsupported property",
                "Invalid ChangedSince value: changedSince cannot be more than 30 days in the past.",
                element="changedSince",
            )
        return query.changes_since(company, entities, since)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = exactjson.loads(raw)
    except ValueError:
        raise QBOFault(
            "2010", "Request has invalid or unsupported property", "Could not parse the request body as JSON"
        ) from None
    if not isinstance(body, dict):
        raise QBOFault("2010", "Request has invalid or unsupported property", "The request body must be an object")
    return body


def _plain(value: Any) -> Any:
    """Amounts as exact strings: the control surface is JSON through FastAPI, which would make them floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


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
