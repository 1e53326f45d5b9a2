"""The request plumbing of Stripe's API: errors, the route table, pagination, `expand[]`, idempotency."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

DOCS = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An error Stripe answers with `{"error": {...}}`.

    `saved` says whether an idempotent replay keeps it: Stripe saves a result only once the endpoint
    started executing, so parameter validation failures are not saved and the key stays usable.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        saved: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.saved = saved if saved is not None else type not in ("invalid_request_error", "idempotency_error")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}#{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def missing(object_name: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {object_name}: '{object_id}'", code="resource_missing", param=param)


def invalid(param: str, message: str, code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param)


def required(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


@dataclass
class Ctx:
    """One API call: who is acting (the platform, or a connected account through Stripe-Account) and with what."""

    emu: StripeEmulator
    account: str
    method: str
    path: str
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    base_url: str
    connected: bool = False  # acting for a connected account via Stripe-Account

    @property
    def request_info(self) -> dict[str, Any]:
        return {"id": self.request_id, "idempotency_key": self.idempotency_key}

    def str_param(self, name: str, *, default: str | None = None, need: bool = False) -> str | None:
        value = self.params.get(name, default)
        if value is None or value == "":
            if need:
                raise required(name)
            return default
        if not isinstance(value, str):
            raise invalid(name, f"Invalid string: {name}")
        return value

    def int_param(self, name: str, value: Any = None, *, need: bool = False, minimum: int | None = None) -> int | None:
        raw = self.params.get(name) if value is None else value
        if raw is None or raw == "":
            if need:
                raise required(name)
            return None
        if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
            raise invalid(name, f"Invalid integer: {raw}", code="parameter_invalid_integer")
        number = int(raw)
        if minimum is not None and number < minimum:
            message = f"This value must be greater than or equal to {minimum}."
            raise invalid(name, message, code="parameter_invalid_integer")
        return number

    def dict_param(self, name: str) -> dict[str, Any]:
        value = self.params.get(name) or {}
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid(name, f"Invalid object: {name} must be a hash")
        return value

    def metadata(self, name: str = "metadata") -> dict[str, str]:
        value = self.dict_param(name)
        for key, v in value.items():
            if not isinstance(v, str):
                raise invalid(f"{name}[{key}]", "Metadata values must be strings")
            if len(key) > 40 or len(v) > 500:
                raise invalid(f"{name}[{key}]", "Metadata keys are at most 40 characters and values at most 500")
        if len(value) > 50:
            raise invalid(name, "You can have at most 50 metadata keys")
        return dict(value)


Handler = Callable[..., Any]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


@dataclass
class ApiRouter:
    """Stripe's /v1 routes. Handlers take a Ctx and the path's named groups and return the reply object."""

    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        self.routes.append(Route(method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for route in self.routes:
            if route.method == method and (m := route.pattern.match(path)):
                return route.handler, m.groupdict()
        return None


def paginate(ctx: Ctx, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """Newest-first `items` cut into one page by `limit`, `starting_after` and `ending_before`."""
    limit = ctx.int_param("limit")
    if limit is None:
        limit = 10
    if not 1 <= limit <= 100:
        raise invalid("limit", "This value must be between 1 and 100.", code="parameter_invalid_integer")
    ids = [o["id"] for o in items]
    after = ctx.str_param("starting_after")
    before = ctx.str_param("ending_before")
    if after:
        if after not in ids:
            raise missing("object", after, "starting_after")
        window = items[ids.index(after) + 1 :]
        page, has_more = window[:limit], len(window) > limit
    elif before:
        if before not in ids:
            raise missing("object", before, "ending_before")
        window = items[: ids.index(before)]
        page, has_more = window[-limit:], len(window) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def created_filter(ctx: Ctx, name: str = "created") -> Callable[[dict[str, Any]], bool]:
    """`created=1700000000` or `created[gte]=…&created[lt]=…`."""
    raw = ctx.params.get(name)
    if raw is None:
        return lambda obj: True
    if isinstance(raw, str):
        exact = ctx.int_param(name, raw)
        return lambda obj: obj.get(name) == exact
    if not isinstance(raw, dict):
        raise invalid(name, f"Invalid {name}")
    ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    bounds = []
    for op, value in raw.items():
        if op not in ops:
            raise invalid(f"{name}[{op}]", f"Received unknown parameter: {name}[{op}]", code="parameter_unknown")
        bound = ctx.int_param(f"{name}[{op}]", value, need=True)
        assert bound is not None
        bounds.append((ops[op], bound))
    return lambda obj: all(fn(obj.get(name) or 0, bound) for fn, bound in bounds)


def expand(ctx: Ctx, body: dict[str, Any]) -> dict[str, Any]:
    """Replace ids named by `expand[]` with the objects they point at (a copy: stored objects never change)."""
    paths = ctx.params.get("expand") or []
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        return body
    body = copy.deepcopy(body)
    for path in paths:
        parts = path.split(".")
        if len(parts) > 4:
            raise invalid("expand", f"You cannot expand more than 4 levels of a property. Property: {path}")
        _expand(ctx, body, parts, path)
    return body


def _expand(ctx: Ctx, node: Any, parts: list[str], path: str) -> None:
    if node is None or not parts:
        return
    if isinstance(node, list):
        for item in node:
            _expand(ctx, item, parts, path)
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if node.get("object") == "list" and head == "data":
        _expand(ctx, node["data"], rest, path)
        return
    if head not in node:
        raise invalid("expand", f"This property cannot be expanded ({head}).")
    value = node[head]
    if isinstance(value, str):
        stored = ctx.emu.objects.get(value)
        if stored is None or stored.account != ctx.account:
            raise invalid("expand", f"This property cannot be expanded ({head}).")
        node[head] = copy.deepcopy(stored.obj)
    _expand(ctx, node[head], rest, path)


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    return json.dumps([method, path, params], sort_keys=True)
