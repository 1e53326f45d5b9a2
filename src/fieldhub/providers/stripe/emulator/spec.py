"""Stripe's published OpenAPI spec (spec3.yaml) as a referee: validate objects and replies against it."""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

SPEC_RELATIVE = Path("shared/specs/stripe/spec3.yaml")
_URN = "urn:stripe:spec3"
_FORMAT = 2  # bump when to_json_schema changes, so stale pickles are not reused


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schemas to plain JSON Schema (draft 4): `nullable: true` becomes an explicit null.

    The spec marks optional-but-present fields `nullable` on enums, `anyOf` unions and `$ref`s alike;
    draft-4 validators ignore the keyword, so without this every null Stripe sends would fail.
    """
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))}
    if node.get("nullable") is True:
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if any(k in out for k in ("anyOf", "oneOf", "allOf", "$ref")):
            return {"anyOf": [out, {"type": "null"}]}
        if "type" in out:
            out["type"] = [out["type"], "null"]
    return out


def find_spec(start: Path | None = None) -> Path | None:
    """spec3.yaml lives in the shared folder beside the checkout: look upward from the repo for it."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        candidate = folder / SPEC_RELATIVE
        if candidate.is_file():
            return candidate
    return None


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next((p for p in here.parents if (p / "pyproject.toml").is_file()), here.parent)


class StripeSpec:
    """The parsed spec, cached as a pickle under var/ (the YAML takes seconds to parse; the pickle, a blink)."""

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        self.path = path
        self.document = self._load(path, cache_dir or _repo_root() / "var" / "cache")
        self.schemas: dict[str, Any] = self.document["components"]["schemas"]
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in self.document["paths"]
        ]
        # Templates with fewer parameters win (`/v1/account` before `/v1/accounts/{account}`).
        self._paths.sort(key=lambda item: item[1].count("{"))

    @staticmethod
    def _load(path: Path, cache_dir: Path) -> dict[str, Any]:
        stat = path.stat()
        key = f"{_FORMAT}:{path}:{stat.st_size}:{stat.st_mtime_ns}"
        tag = hashlib.sha256(key.encode()).hexdigest()[:16]
        cache = cache_dir / f"stripe-spec3-{tag}.pickle"
        if cache.is_file():
            with cache.open("rb") as fh:
                return pickle.load(fh)
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with path.open("rb") as fh:
            document = to_json_schema(yaml.load(fh, Loader=loader))
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                pickle.dump(document, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only checkout still validates, only slower
        return document

    @functools.cached_property
    def _registry(self) -> Any:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        root = {"components": self.document["components"]}
        return Registry().with_resource(_URN, Resource.from_contents(root, default_specification=DRAFT4))

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one spec per process; the cache is the point
    def _validator(self, pointer: str) -> Any:
        from jsonschema import Draft4Validator

        return Draft4Validator({"$ref": f"{_URN}#{pointer}"}, registry=self._registry)

    def errors(self, instance: Any, schema: str) -> list[str]:
        """Problems with `instance` against `#/components/schemas/<schema>` (or a JSON pointer), best first."""
        pointer = schema if schema.startswith("/") else f"/components/schemas/{schema}"
        validator = self._validator(pointer)
        found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}" for e in found]

    def validate(self, instance: Any, schema: str) -> None:
        problems = self.errors(instance, schema)
        if problems:
            raise AssertionError(f"{schema}: " + "; ".join(problems[:8]))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The spec's path template and operation for a concrete request path."""
        for pattern, template in self._paths:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return template, operation
        raise KeyError(f"{method} {path} is not in Stripe's spec")

    def response_pointer(self, method: str, path: str, status: int) -> str:
        template, operation = self.operation(method, path)
        responses = operation["responses"]
        key = str(status) if str(status) in responses else "default"
        escaped = template.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{method.lower()}/responses/{key}/content/application~1json/schema"

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with a reply body against the spec's response schema for that endpoint and status; an
        error reply to a path the spec lacks is checked against its `error` object."""
        try:
            pointer = self.response_pointer(method, path, status)
        except KeyError:
            if status >= 400:
                return self.errors(body, "error")
            return [f"{method} {path} is not in Stripe's spec"]
        validator = self._response_validator(pointer)
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
            for e in validator.iter_errors(body)
        ]

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        """Validate a reply body against the spec's response schema for that endpoint and status."""
        problems = self.response_errors(method, path, status, body)
        if problems:
            raise AssertionError(f"{method} {path} {status}: " + "; ".join(problems[:8]))

    @functools.lru_cache(maxsize=512)  # noqa: B019
    def _response_validator(self, pointer: str) -> Any:
        from jsonschema import Draft4Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        registry = getattr(self, "_full_registry", None)
        if registry is None:
            registry = Registry().with_resource(
                _URN, Resource.from_contents(self.document, default_specification=DRAFT4)
            )
            self._full_registry = registry
        return Draft4Validator({"$ref": f"{_URN}#{pointer}"}, registry=registry)


@functools.lru_cache(maxsize=1)
def load_spec() -> StripeSpec | None:
    path = find_spec()
    return StripeSpec(path) if path else None


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        target: Any = document
        for part in pointer:
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _alternatives(document: dict[str, Any], schema: Any) -> list[dict[str, Any]]:
    """The plain schemas a value may meet: `anyOf`/`oneOf` branches flattened, `$ref`s followed."""
    schema = _resolve(document, schema)
    if not isinstance(schema, dict):
        return []
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return [alt for branch in branches for alt in _alternatives(document, branch)]
    return [schema]


def unknown_names(document: dict[str, Any], schema: Any, value: Any, prefix: str) -> list[str]:
    """The bracket-notation names under `prefix` that `schema` does not declare (Stripe's `parameter_unknown`)."""
    options = _alternatives(document, schema)
    if isinstance(value, dict):
        objects = [o for o in options if o.get("type") == "object" or "properties" in o]
        if not objects or any(o.get("additionalProperties") or "properties" not in o for o in objects):
            return []  # a hash of any keys (metadata), or nothing to hold it to
        found: list[str] = []
        for key, item in value.items():
            name = f"{prefix}[{key}]" if prefix else key
            declared = [o["properties"][key] for o in objects if key in o["properties"]]
            if not declared:
                found.append(name)
                continue
            found += unknown_names(document, {"anyOf": declared}, item, name)
        return found
    if isinstance(value, list):
        arrays = [o for o in options if o.get("type") == "array" and "items" in o]
        if not arrays:
            return []
        items = {"anyOf": [o["items"] for o in arrays]}
        return [n for i, item in enumerate(value) for n in unknown_names(document, items, item, f"{prefix}[{i}]")]
    return []


_RANGE = {
    "anyOf": [
        {"type": "object", "properties": {k: {"type": "integer"} for k in ("gt", "gte", "lt", "lte")}},
        {"type": "integer"},
    ]
}
# Parameters Stripe added after spec3's snapshot (2023-08-16) that the emulator takes. Stripe adds parameters to
# every API version at once, so a request at 2023-08-16 may send them: the list of Checkout Sessions gained
# `created` and `status` filters (stripe-mock's 2025 fixtures and today's API reference).
ADDED_PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/checkout/sessions"): {"created": _RANGE, "status": {"type": "string"}},
}


def request_schema(spec: StripeSpec, method: str, path: str) -> dict[str, Any] | None:
    """The parameters an operation takes, as one object schema: its form body (POST) or its query parameters."""
    try:
        template, operation = spec.operation(method, path)
    except KeyError:
        return None
    added = ADDED_PARAMS.get((method.upper(), template), {})
    if method.upper() == "POST":
        content = operation.get("requestBody", {}).get("content", {})
        schema = content.get("application/x-www-form-urlencoded", {}).get("schema") or {"type": "object"}
        return {**schema, "properties": {**schema.get("properties", {}), **added}}
    declared = {p["name"]: p.get("schema", {}) for p in operation.get("parameters", []) if p.get("in") == "query"}
    return {"type": "object", "properties": {**declared, **added}}
