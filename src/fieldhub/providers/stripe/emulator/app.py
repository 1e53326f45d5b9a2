"""The Stripe emulator: state, the /v1 dispatcher (auth, Stripe-Account, idempotency, expand) and control routes."""

from __future__ import annotations

import asyncio
import base64
import copy
import heapq
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig, OAuthServer, RateRule
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.hub.emulator.speccheck import SpecMissing
from fieldhub.providers.stripe.emulator import objects as build
from fieldhub.providers.stripe.emulator import versions
from fieldhub.providers.stripe.emulator.api import ApiRouter, Ctx, StripeError, expand, fingerprint
from fieldhub.providers.stripe.emulator.forms import FormError, parse_form
from fieldhub.providers.stripe.emulator.spec import load_spec, request_schema, unknown_names

_ALNUM = string.ascii_letters + string.digits


@dataclass
class Stored:
    """One object and the account it belongs to; `seq` orders lists newest first when `created` ties."""

    obj: dict[str, Any]
    account: str
    seq: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timings:
    """Emulated seconds between the steps Stripe takes on its own (all settable for tests and demos)."""

    card_available: int = 2 * 86400
    ach_settle: int = 4 * 86400
    ach_available: int = 2 * 86400
    payout_in_transit: int = 3600
    payout_arrival: int = 2 * 86400
    session_lifetime: int = 86400
    account_link_lifetime: int = 300


@dataclass
class Saved:
    fingerprint: str
    status: int = 0
    body: bytes = b""
    request_id: str = ""
    done: bool = False


class StripeEmulator(Emulator):
    key = "stripe"
    spec_label = "Stripe"
    persisted = (
        "objects",
        "events",
        "idempotency",
        "connected",
        "account_links",
        "payout_failures",
        "scheduled",
        "order",
    )
    # spec3's `error` object: `{"error": {"type": ..., "message": ..., "code"?, "param"?, ...}}`.
    error_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    }
    rate_per_second = 25  # sandbox global limit; live mode allows 100

    def __init__(self, config: EmulatorConfig, *, clock: Clock | None = None, webhook_transport: Any = None) -> None:
        super().__init__(clock=clock or Clock(config.time_scale), seed=config.seed)
        self.config = config
        self.timings = Timings()
        self.public_url: str | None = None  # where browsers reach the emulator; default: the request's base URL
        self.api = ApiRouter()
        self.objects: dict[str, Stored] = {}
        self.events: list[str] = []
        self.idempotency: dict[tuple[str, str], Saved] = {}
        self.connected: set[str] = set()
        self.account_links: dict[str, Any] = {}  # token -> connect.AccountLink
        self.payout_failures: list[str] = []  # failure codes for the next payouts, consumed in order
        self.oauth: OAuthServer  # set by connect.install
        self.order = 0  # orders stored objects (and scheduled actions) as they came
        # (when, order, action name, its arguments): what Stripe does later on its own, kept as data so the demo's
        # state file holds it; the actions are registered by name in `actions` by the modules that schedule them.
        self.scheduled: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.actions: dict[str, Callable[..., object]] = {}
        self.rate_rules.append(RateRule("sandbox", limit=self.rate_per_second, window=1.0, applies=_rate_bucket))
        load_spec()  # once per process, now: the first request must not spend a second reading it (parameter checks)

        from fieldhub.providers.stripe.emulator import checkout, connect, payments, search, webhooks

        self.webhooks = webhooks.WebhookSender(self, transport=webhook_transport)
        self.platform_id = "acct_1FieldhubPlatform"
        self._seed_accounts()
        connect.install(self)
        checkout.install(self)
        search.install(self)  # before payments: /v1/charges/search is not a charge id
        payments.install(self)
        webhooks.install(self)
        self.app.add_api_route("/v1/{path:path}", self.dispatch, methods=["GET", "POST", "DELETE"])
        self.app.add_api_route(f"{CONTROL_PREFIX}/objects", self.control_objects, methods=["GET"])
        self.app.add_api_route(f"{CONTROL_PREFIX}/tick", self.control_tick, methods=["POST"])

    # --- ids, time, storage -----------------------------------------------------------------------
    def new_id(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_" + "".join(self.random.choice(_ALNUM) for _ in range(length))

    def now(self) -> int:
        return int(self.clock.now())

    def put(self, account: str, obj: dict[str, Any], **meta: Any) -> dict[str, Any]:
        self.objects[obj["id"]] = Stored(obj, account, self.next_order(), dict(meta))
        return obj

    def get(self, account: str, object_id: str, kind: str, param: str = "id") -> dict[str, Any]:
        stored = self.objects.get(object_id)
        if stored is None or stored.account != account or stored.obj.get("object") != kind:
            from fieldhub.providers.stripe.emulator.api import missing

            raise missing(kind, object_id, param)
        return stored.obj

    def meta(self, object_id: str) -> dict[str, Any]:
        return self.objects[object_id].meta

    def owner(self, object_id: str) -> str:
        return self.objects[object_id].account

    def find(self, account: str, kind: str, where: Callable[[dict[str, Any]], bool] = lambda o: True) -> list[dict]:
        found = [s for s in self.objects.values() if s.account == account and s.obj.get("object") == kind]
        found.sort(key=lambda s: (s.obj.get("created", 0), s.seq), reverse=True)
        return [s.obj for s in found if where(s.obj)]

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def schedule(self, delay: float, action: str, *args: Any) -> None:
        """Run `actions[action](*args)` once `delay` emulated seconds have passed."""
        assert action in self.actions, action
        heapq.heappush(self.scheduled, (self.clock.now() + delay, self.next_order(), action, args))

    def run_due(self) -> int:
        """Run what Stripe would have done by now on its own (ACH settlement, payouts, expiries, retries)."""
        ran = 0
        while self.scheduled and self.scheduled[0][0] <= self.clock.now():
            _, _, action, args = heapq.heappop(self.scheduled)
            self.actions[action](*args)
            ran += 1
        self.webhooks.kick()
        return ran

    async def run(self, interval: float = 0.5) -> None:
        """Keep emulated time moving without requests (ACH settlement, payouts, webhook retries): run as a task."""
        while True:
            self.run_due()
            await self.webhooks.flush()
            await asyncio.sleep(interval)

    # --- events ------------------------------------------------------------------------------------
    def emit(
        self,
        account: str,
        type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = build.event(
            self.new_id("evt"),
            created=self.now(),
            type=type,
            obj=copy.deepcopy(obj),
            account=account if account != self.platform_id else None,
            previous=previous,
            request=request,
        )
        self.put(account, event)
        self.events.append(event["id"])
        self.webhooks.enqueue(event)
        return event

    # --- accounts ----------------------------------------------------------------------------------
    def publishable_key(self, account_id: str) -> str:
        return "pk_test_" + base64.b32encode(account_id.encode()).decode().rstrip("=").lower()

    def _seed_accounts(self) -> None:
        created = self.now() - 400 * 86400
        platform = build.account(self.platform_id, created=created, name="Fieldhub", enabled=True)
        self.put(self.platform_id, platform)
        demo = [
            ("acct_1RiverbendPlumb0", "Riverbend Plumbing & Heating", "office@riverbend.example", "6789"),
            ("acct_1BrightSparkElec", "Bright Spark Electric", "books@brightspark.test", "1116"),
        ]
        for account_id, name, email, last4 in demo:
            bank = build.bank_account(
                f"ba_{account_id[5:]}X", account_id, last4=last4, bank_name="STRIPE TEST BANK", routing="110000000"
            )
            obj = build.account(
                account_id,
                created=created,
                email=email,
                name=name,
                enabled=True,
                capabilities=["card_payments", "transfers", "us_bank_account_ach_payments"],
                bank=bank,
            )
            self.put(self.platform_id, obj)

    def demo_accounts(self) -> list[dict[str, Any]]:
        return [self.objects[i].obj for i in ("acct_1RiverbendPlumb0", "acct_1BrightSparkElec")]

    def account_obj(self, account_id: str) -> dict[str, Any]:
        return self.objects[account_id].obj

    # --- the /v1 dispatcher --------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(7)
        scope.setdefault("state", {})["request_id"] = request_id
        self.run_due()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"request-id" for k, _ in headers):
                    headers.append((b"request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_id)

    def base_url(self, request: Request) -> str:
        return (self.public_url or str(request.base_url)).rstrip("/")

    async def dispatch(self, request: Request, path: str) -> Response:
        version = request.headers.get("stripe-version", versions.SPEC_VERSION).strip()
        if not versions.known(version):
            return _error(StripeError(400, f"Invalid Stripe API version: {version}"))
        response = await self._dispatch(request, path, version)
        response.headers["Stripe-Version"] = version
        return response

    async def _dispatch(self, request: Request, path: str, version: str) -> Response:
        request_id = request.state.request_id
        try:
            raw = await request.body() if request.method == "POST" else request.url.query
            params = parse_form(raw)
        except (FormError, UnicodeDecodeError) as exc:
            return _error(StripeError(400, str(exc), param=getattr(exc, "param", None)))
        try:
            account, connected = self.authenticate(request)
        except StripeError as exc:
            return _error(exc)
        full_path = "/v1/" + path
        found = self.api.match(request.method, full_path)
        if found is None:
            return _error(unrecognized(request.method, full_path))
        unknown = self.unknown_params(request.method, full_path, params)
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            message = f"Received unknown parameter{plural}: {', '.join(unknown)}"
            return _error(StripeError(400, message, code="parameter_unknown", param=unknown[0]))
        handler, path_params = found
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        ctx = Ctx(self, account, request.method, full_path, params, request_id, key, self.base_url(request), connected)
        saved: Saved | None = None
        if key is not None:
            if len(key) > 255:
                too_long = "Idempotency-Key must be at most 255 characters"
                return _error(StripeError(400, too_long, param="Idempotency-Key"))
            print_ = fingerprint(request.method, full_path, params)
            saved = self.idempotency.get((account, key))
            if saved is not None:
                if saved.fingerprint != print_:
                    return _error(
                        StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{key}' if you meant to execute a different "
                            "request.",
                            type="idempotency_error",
                        )
                    )
                if not saved.done:
                    return _error(
                        StripeError(
                            409,
                            "There is currently another in-progress request using this Stripe-Idempotency-Key. "
                            "Please try again later.",
                            type="idempotency_error",
                        )
                    )
                return Response(
                    saved.body,
                    status_code=saved.status,
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true", "Original-Request": saved.request_id},
                )
            saved = Saved(print_, request_id=request_id)
            self.idempotency[(account, key)] = saved
        try:
            result = handler(ctx, **path_params)
            status, body = result if isinstance(result, tuple) else (200, result)
            body = versions.render(expand(ctx, body), version)
            keep = True
        except StripeError as exc:
            status, body, keep = exc.status, exc.body(), exc.saved
        raw = json.dumps(body, indent=2).encode()
        if saved is not None and key is not None:
            if keep:
                saved.status, saved.body, saved.done = status, raw, True
            else:
                del self.idempotency[(account, key)]
        self.webhooks.kick()
        headers = {"Idempotency-Key": key} if key else {}
        return Response(raw, status_code=status, media_type="application/json", headers=headers)

    def unknown_params(self, method: str, path: str, params: dict[str, Any]) -> list[str]:
        """The parameters spec3 does not declare for this operation (none checked when the spec is not here)."""
        spec = load_spec()
        schema = request_schema(spec, method, path) if spec is not None else None
        if spec is None or schema is None:
            return []
        return unknown_names(spec.document, schema, params, "")

    def authenticate(self, request: Request) -> tuple[str, bool]:
        """The acting account: the platform key (optionally with Stripe-Account) or a legacy OAuth access token."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value).decode().partition(":")[0]
            except ValueError:
                value = ""
        elif scheme.lower() != "bearer":
            value = ""
        if not value:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#"
                "authentication for details, or we can help at https://support.stripe.com/.",
            )
        acting = request.headers.get("stripe-account", "").strip()
        if secrets.compare_digest(value.encode(), self.config.client_secret.encode()):
            if not acting or acting == self.platform_id:
                return self.platform_id, False
            if acting in self.connected:
                return acting, True
            raise StripeError(
                403,
                f"The provided key '{_mask(value)}' does not have access to account '{acting}' (or that account "
                "does not exist). Application access may have been revoked.",
                code="account_invalid",
            )
        oauth_account = self.oauth.authenticate(request)
        if oauth_account is not None and oauth_account.id in self.connected:
            return oauth_account.id, True
        raise StripeError(401, f"Invalid API Key provided: {_mask(value)}")

    # --- framework hooks -----------------------------------------------------------------------------
    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """Replies of the API (/v1) against spec3.yaml; OAuth and the hosted pages are not in it."""
        if not path.startswith("/v1/"):
            return None
        spec = load_spec()
        if spec is None:
            raise SpecMissing("shared/specs/stripe/spec3.yaml")
        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        return spec.response_errors(method, path, status, data)

    def route_error(self, status: int, request: Request) -> Response:
        # Stripe answers a method a path does not take as it answers an unknown path.
        return _error(unrecognized(request.method, request.url.path))

    def error_response(self, status: int, message: str, request: Request | None = None) -> Response:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        code = "rate_limit" if status == 429 else None
        if status == 429:
            message = (
                "Request rate limit exceeded. You can learn more about rate limits here "
                "https://stripe.com/docs/rate-limits."
            )
        return _error(StripeError(status, message, type=kind, code=code))

    def state(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for stored in self.objects.values():
            kind = stored.obj.get("object", "?")
            counts[kind] = counts.get(kind, 0) + 1
        return {
            "platform": self.platform_id,
            "connected": sorted(self.connected),
            "objects": counts,
            "events": len(self.events),
            "deliveries": self.webhooks.summary(),
            "scheduled": len(self.scheduled),
        }

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        state["webhooks"] = {"deliveries": self.webhooks.deliveries, "paused": self.webhooks.paused}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        hooks = state.get("webhooks", {})
        self.webhooks.deliveries = hooks.get("deliveries", [])
        self.webhooks.paused = hooks.get("paused", False)

    def reset(self) -> None:
        super().reset()
        self.objects.clear()
        self.events.clear()
        self.idempotency.clear()
        self.connected.clear()
        self.account_links.clear()
        self.payout_failures.clear()
        self.scheduled.clear()
        self.webhooks.clear()
        self._seed_accounts()

    async def control_objects(self, account: str = "", object: str = "") -> list[dict[str, Any]]:
        return [
            {"account": s.account, **s.obj}
            for s in sorted(self.objects.values(), key=lambda s: s.seq)
            if (not account or s.account == account) and (not object or s.obj.get("object") == object)
        ]

    async def control_tick(self) -> dict[str, Any]:
        ran = self.run_due()
        await self.webhooks.flush()
        return {"ran": ran, "now": self.clock.now()}


def unrecognized(method: str, path: str) -> StripeError:
    return StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
        "https://support.stripe.com/.",
    )


def _rate_bucket(request: Request) -> str | None:
    if not request.url.path.startswith("/v1/"):
        return None
    return request.headers.get("stripe-account") or "platform"


def _mask(key: str) -> str:
    return (key[:8] + "*" * 12 + key[-4:]) if len(key) > 12 else "*" * len(key)


def _error(exc: StripeError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
