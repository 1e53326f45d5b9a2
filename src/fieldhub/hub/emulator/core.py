"""Emulator core: clock, request log, fault injection, rate limits and the /_emulator control surface."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from fieldhub.hub import registry
from fieldhub.hub.emulator import speccheck

CONTROL_PREFIX = "/_emulator"
# Starlette's own words when routing finds no route (404) or no method (405) for a request.
ROUTE_ERRORS = {404: "Not Found", 405: "Method Not Allowed"}
# Credentials and every provider's webhook signature header (from the providers' tomls, not a list here).
REDACT_HEADERS = {"authorization", "cookie"} | {
    s.webhooks.signature_header.lower() for s in registry.all() if s.webhooks and s.webhooks.signature_header
}


REDACTED = "[redacted]"
# Names of fields, query parameters and headers that carry a credential: OAuth's tokens, codes and client secrets,
# API keys, passwords, signing secrets. A pagination or sync cursor ("nextPageToken", QuickBooks' SyncToken) is not.
SECRET_NAMES = {"code", "key", "apikey", "api_key", "password", "assertion", "client_assertion", "code_verifier"}
SECRET_ENDINGS = ("token", "secret", "authorization", "cookie", "signature", "api-key", "apikey", "api_key")
NOT_SECRET = ("page", "sync", "type", "expires")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if lowered in SECRET_NAMES:
        return True
    return lowered.endswith(SECRET_ENDINGS) and not any(word in lowered for word in NOT_SECRET)


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_name(str(k)) and v not in (None, "") else _redact_json(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


_PAIR = re.compile(r"^[^=&\s]+=[^&\s]*(&[^=&\s]+=[^&\s]*)*$")


def redact_text(text: str) -> str:
    """A logged body or query string as the control surface shows it: every credential field replaced by
    "[redacted]", in JSON (at any depth) and in form or query encoding alike; other text as it was."""
    if not text:
        return text
    try:
        return json.dumps(_redact_json(json.loads(text)))
    except ValueError:
        pass
    except RecursionError:  # nested too deep to walk: shown as nothing rather than unread
        return REDACTED
    if _PAIR.match(text.strip()):
        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        return urlencode([(k, REDACTED if is_secret_name(k) and v else v) for k, v in pairs], safe="[]")
    return text


def shown(entry: LoggedRequest) -> dict[str, Any]:
    """One logged request as GET /_emulator/requests shows it: anyone who can reach the port can read it, so no
    live token, refresh token, client secret, code or key is shown (headers, query, body and reply)."""
    data = asdict(entry)
    data["headers"] = {k: REDACTED if k in REDACT_HEADERS or is_secret_name(k) else v for k, v in entry.headers.items()}
    data["query"] = redact_text(entry.query)
    data["body"] = redact_text(entry.body)
    data["response"] = redact_text(entry.response)
    return data


def error_shape(properties: dict[str, Any], *, closed: bool = True) -> dict[str, Any]:
    """A JSON Schema for an error body that carries every one of `properties` (and, closed, nothing else)."""
    schema: dict[str, Any] = {"type": "object", "required": list(properties), "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}


@dataclass
class EmulatorConfig:
    """What every provider's `create_emulator(config)` receives (providers/<key>/emulator/__init__.py).

    hub_url: where the hub is reached (its OAuth callback is hub_url + "/oauth/callback"; webhooks are
    delivered to hub_url + "/webhooks/<key>"). The client id/secret and webhook secret are the values
    the hub is configured with in demo and test mode. access_lifetime overrides the provider's token
    lifetime (seconds) for demos of expiry; None keeps the provider's real one.
    """

    hub_url: str = "http://127.0.0.1:8000"
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    webhook_secret: str = "emulator-webhook-secret"
    time_scale: float = 1.0
    seed: int | None = None
    access_lifetime: int | None = None
    deliver_webhooks: bool = True

    @property
    def redirect_uri(self) -> str:
        return self.hub_url.rstrip("/") + "/oauth/callback"


class Clock:
    """Emulated time. `scale` 60 makes a minute pass in a real second (benchmarks); `advance` jumps (tests)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._origin_real = time.monotonic()
        self._origin = time.time()
        self.offset = 0.0

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin_real) * self.scale + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    async def sleep(self, emulated_seconds: float) -> None:
        await asyncio.sleep(max(0.0, emulated_seconds / self.scale))


@dataclass
class FaultRule:
    """Inject a fault into matching requests.

    kind: "status" (answer `status` with the provider's error body), "rate_limit" (429 with Retry-After),
    "timeout" (hold the request `delay` seconds, longer than the client waits), "latency" (add `delay`
    then answer normally), "drop_after_commit" (do the work, then cut the connection: the client never
    sees the reply). `probability` per request, or `count` times then the rule is spent.
    """

    kind: str
    path: str = ".*"  # regex on the request path
    method: str = ""  # empty = any
    body: str = ""  # regex the request body must contain (a batch of payments: '"Payment"'); empty = any
    probability: float = 1.0
    count: int | None = None
    status: int = 500
    delay: float = 0.0
    retry_after: float = 1.0

    def matches(self, method: str, path: str, body: str = "") -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.body and re.search(self.body, body) is None:
            return False
        return re.search(self.path, path) is not None


@dataclass
class RateRule:
    """A published limit: `limit` requests per `window` emulated seconds and at most `concurrency` at once
    per bucket. `bucket` maps a request to its bucket (a realm, an account) or None to exempt it."""

    name: str
    limit: int | None = None
    window: float = 60.0
    concurrency: int | None = None
    applies: Callable[[Request], str | None] = lambda request: "all"


@dataclass
class LoggedRequest:
    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    status: int = 0
    response: str = ""
    started: float = 0.0
    finished: float = 0.0
    fault: str = ""
    bucket: str = ""
    retry_after: str = ""  # the Retry-After header of a 429, to check clients wait that long


class EmulatedDrop(Exception):
    """Raised after the emulator committed a request: the connection is cut and the reply is lost."""


class _Replay:
    """Keeps the body of a request readable by both the log and the route."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = False

    async def __call__(self) -> Message:
        if self.sent:
            return {"type": "http.disconnect"}
        self.sent = True
        return {"type": "http.request", "body": self.body, "more_body": False}


class Emulator:
    """Base of every provider emulator: subclass, add routes to `self.app`, call `super().__init__`."""

    key = "emulator"
    log_limit = 20_000
    # How the suite's spec check names this provider ("QBO"); empty when it publishes no spec to check against.
    spec_label: ClassVar[str] = ""
    # The provider's error body as a JSON Schema: what `error_response` answers, and so what an unknown path, a
    # method a path does not take and a malformed request get (tests/hub/emulator/test_errors.py holds every
    # emulator to it). Never FastAPI's `{"detail": ...}`.
    error_schema: ClassVar[dict[str, Any]] = {}
    # Attributes that hold the provider's state (companies, objects, connections): what `snapshot` keeps across a
    # restart of the demo, with the OAuth server's tokens and the clock's offset (hub/emulator/persist.py).
    persisted: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, clock: Clock | None = None, seed: int | None = None) -> None:
        self.clock = clock or Clock()
        self.random = random.Random(seed)
        self.app = FastAPI(title=f"{self.key} emulator", docs_url=None, redoc_url=None, openapi_url=None)
        self.requests: deque[LoggedRequest] = deque(maxlen=self.log_limit)
        self.faults: list[FaultRule] = []
        self.rate_rules: list[RateRule] = []
        self._seq = 0
        self._windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._inflight: dict[tuple[str, str], int] = defaultdict(int)
        self.max_inflight: dict[str, int] = defaultdict(int)  # per bucket, for tests of "never two at once"
        self.state_file: Any = None  # a persist.StateFile in the demo: written before each reply leaves
        self.app.add_exception_handler(StarletteHTTPException, self._http_exception)
        self.app.add_exception_handler(RequestValidationError, self._validation_exception)
        self._add_control_routes()

    # --- provider hooks -------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request | None = None) -> Response:
        """The provider's own error body; providers override with their real shape."""
        return JSONResponse({"error": message}, status_code=status)

    def route_error(self, status: int, request: Request) -> Response:
        """The reply to a request no route takes: an unknown path (404) or a method the path does not take (405)."""
        return self.error_response(status, ROUTE_ERRORS.get(status, "Not Found"), request)

    def rate_limited_response(self, retry_after: float, request: Request | None = None) -> Response:
        response = self.error_response(429, "Too many requests", request)
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
        return response

    def state(self) -> dict[str, Any]:
        """What the emulator holds, for tests and the demo's inspection page."""
        return {}

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in ROUTE_ERRORS and exc.detail == ROUTE_ERRORS[exc.status_code]:
            response = self.route_error(exc.status_code, request)  # routing found no route or no method
        else:
            response = self.error_response(exc.status_code, str(exc.detail), request)
        for name, value in (exc.headers or {}).items():
            response.headers.setdefault(name, value)
        return response

    async def _validation_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # Where and what, never the value sent (it may be long, or a secret).
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        ]
        return self.error_response(400, "Invalid request: " + "; ".join(problems), request)

    @classmethod
    def spec_problems(cls, method: str, path: str, status: int, body: str) -> list[str] | None:
        """What the provider's published spec finds wrong with one JSON reply ([] if nothing), or None when the
        spec does not describe it (an OAuth endpoint, a hosted page). Raises speccheck.SpecMissing when the
        spec files are not here. Run by the test suite's spec check over every reply (speccheck.py).

        Without a spec, an error reply is held to the provider's declared error body (`error_schema`)."""
        if status < 400 or not cls.error_schema:
            return None
        import jsonschema  # only where replies are checked

        try:
            data = json.loads(body)
        except ValueError:
            return [f"not JSON: {body[:80]!r}"]
        validator = jsonschema.Draft7Validator(cls.error_schema)
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}" for e in validator.iter_errors(data)
        ]

    def _is_oauth(self, path: str) -> bool:
        oauth = getattr(self, "oauth", None)
        return oauth is not None and path in getattr(oauth, "paths", ())

    def snapshot(self) -> dict[str, Any]:
        """The state to outlive the process: `persisted` attributes, issued tokens, the clock's offset. Not the
        request log, faults or rate windows. Providers with state outside `persisted` extend it (and `restore`)."""
        state: dict[str, Any] = {"clock_offset": self.clock.offset}
        state["attrs"] = {name: getattr(self, name) for name in self.persisted}
        oauth = getattr(self, "oauth", None)
        if oauth is not None:
            state["oauth"] = oauth.snapshot()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.clock.offset = state.get("clock_offset", 0.0)
        for name, value in state.get("attrs", {}).items():
            if name not in self.persisted:
                continue
            current = getattr(self, name, None)
            # Containers are refilled in place: routes installed earlier may hold them (a closure's `links`).
            if isinstance(current, dict) and isinstance(value, dict):
                current.clear()
                current.update(value)
            elif isinstance(current, list) and isinstance(value, list):
                current[:] = value
            elif isinstance(current, set) and isinstance(value, set):
                current.clear()
                current.update(value)
            else:
                setattr(self, name, value)
        oauth = getattr(self, "oauth", None)
        if oauth is not None and "oauth" in state:
            oauth.restore(state["oauth"])

    def save_state(self) -> None:
        if self.state_file is not None:
            self.state_file.save()

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.max_inflight.clear()

    # --- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            if self.state_file is None or scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            # The control surface changes state too (pay an invoice, connect an account): kept before it answers.
            captured = _Capture()
            await self.app(scope, receive, captured)
            self.save_state()
            await captured.replay(send)
            return
        await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self._seq += 1
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        entry = LoggedRequest(
            seq=self._seq,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            headers={k: ("[redacted]" if k in REDACT_HEADERS else v) for k, v in headers.items()},
            body=body.decode("utf-8", "replace"),
            started=self.clock.now(),
        )
        self.requests.append(entry)
        request = Request(scope, _Replay(body))

        fault = self._pick_fault(entry.method, entry.path, entry.body)
        if fault and fault.kind in ("latency", "timeout"):
            entry.fault = fault.kind
            await asyncio.sleep(fault.delay)
        if fault and fault.kind in ("status", "rate_limit"):
            entry.fault = fault.kind
            response = (
                self.rate_limited_response(fault.retry_after, request)
                if fault.kind == "rate_limit"
                else self.error_response(fault.status, "Injected fault", request)
            )
            await self._send(response, entry, scope, receive, send)
            return

        limited = self._check_rate(request, entry)
        if limited is not None:
            await self._send(self.rate_limited_response(limited, request), entry, scope, receive, send)
            return
        buckets = [(rule.name, b) for rule in self.rate_rules if rule.concurrency and (b := rule.applies(request))]
        concurrency_hit = next(
            (
                rule
                for rule in self.rate_rules
                if rule.concurrency
                and (b := rule.applies(request))
                and self._inflight[(rule.name, b)] >= rule.concurrency
            ),
            None,
        )
        if concurrency_hit is not None:
            request.state.rate_rule = concurrency_hit.name  # which limit: providers that name it in the reply
            await self._send(self.rate_limited_response(1.0, request), entry, scope, receive, send)
            return
        for key in buckets:
            self._inflight[key] += 1
            self.max_inflight[key[1]] = max(self.max_inflight[key[1]], self._inflight[key])
        try:
            captured = _Capture()
            await self.app(scope, _Replay(body), captured)
        finally:
            for key in buckets:
                self._inflight[key] -= 1
        entry.status = captured.status
        entry.response = captured.body.decode("utf-8", "replace")
        entry.finished = self.clock.now()
        if speccheck.recording():
            speccheck.record(
                self.key,
                entry.method,
                entry.path,
                entry.status,
                captured.content_type,
                captured.body,
                oauth=self._is_oauth(entry.path),
            )
        # On disk before the client hears of it: what the client believes done survives a kill of this process.
        self.save_state()
        if fault and fault.kind == "drop_after_commit":
            entry.fault = fault.kind
            raise EmulatedDrop(f"{entry.method} {entry.path}: reply dropped after commit")
        await captured.replay(send)

    async def _send(self, response: Response, entry: LoggedRequest, scope: Scope, receive: Receive, send: Send) -> None:
        entry.status = response.status_code
        entry.response = bytes(response.body).decode("utf-8", "replace")
        entry.retry_after = response.headers.get("retry-after", "")
        entry.finished = self.clock.now()
        if speccheck.recording():
            content_type = response.headers.get("content-type", "")
            speccheck.record(
                self.key,
                entry.method,
                entry.path,
                entry.status,
                content_type,
                bytes(response.body),
                oauth=self._is_oauth(entry.path),
            )
        await response(scope, receive, send)

    def _pick_fault(self, method: str, path: str, body: str) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(method, path, body) and self.random.random() < rule.probability:
                if rule.count is not None:
                    rule.count -= 1
                return rule
        return None

    def remaining(self, rule: RateRule, bucket: str) -> int:
        """What is left of a per-window limit for a bucket now (the requests in its window counted)."""
        window = self._windows[(rule.name, bucket)]
        while window and window[0] <= self.clock.now() - rule.window:
            window.popleft()
        return max(0, (rule.limit or 0) - len(window))

    def _check_rate(self, request: Request, entry: LoggedRequest) -> float | None:
        """Returns seconds to wait (emulated) when a per-window limit is exceeded, else records the request."""
        now = self.clock.now()
        hits: list[deque[float]] = []
        for rule in self.rate_rules:
            if rule.limit is None:
                continue
            bucket = rule.applies(request)
            if bucket is None:
                continue
            entry.bucket = bucket
            window = self._windows[(rule.name, bucket)]
            while window and window[0] <= now - rule.window:
                window.popleft()
            if len(window) >= rule.limit:
                request.state.rate_rule = rule.name
                return window[0] + rule.window - now
            hits.append(window)
        for window in hits:
            window.append(now)
        return None

    # --- control surface ------------------------------------------------------------------------
    def _add_control_routes(self) -> None:
        app = self.app

        @app.get(f"{CONTROL_PREFIX}/requests")
        async def requests_log(since: int = 0) -> list[dict[str, Any]]:
            return [shown(r) for r in self.requests if r.seq > since]

        @app.post(f"{CONTROL_PREFIX}/faults")
        async def add_fault(request: Request) -> dict[str, Any]:
            rule = FaultRule(**json.loads(await request.body()))
            self.faults.append(rule)
            return asdict(rule)

        @app.delete(f"{CONTROL_PREFIX}/faults")
        async def clear_faults() -> dict[str, int]:
            count = len(self.faults)
            self.faults.clear()
            return {"cleared": count}

        @app.get(f"{CONTROL_PREFIX}/state")
        async def get_state() -> dict[str, Any]:
            return self.state()

        @app.post(f"{CONTROL_PREFIX}/reset")
        async def do_reset() -> dict[str, bool]:
            self.reset()
            return {"reset": True}

        @app.post(f"{CONTROL_PREFIX}/clock/advance")
        async def advance(seconds: float) -> dict[str, float]:
            self.clock.advance(seconds)
            return {"now": self.clock.now()}


class _Capture:
    """Collects a route's response so the emulator can log it, and then send it or drop it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.status = 0
        self.content_type = ""
        self.body = b""

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.content_type = next(
                (v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"content-type"), ""
            )
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def replay(self, send: Send) -> None:
        for message in self.messages:
            await send(message)
