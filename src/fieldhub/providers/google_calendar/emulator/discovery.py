"""Google's discovery document for Calendar v3 (shared/specs/google-calendar/calendar.v3.json) as a referee.

The document names every method (HTTP method, path template, request and response schema) and every schema's
properties. Its schemas are JSON-Schema-like; `schema_for` turns one into draft 7 with every `$ref` pointing at
the same document's schemas and unknown properties refused (a reply with a key Google does not have is wrong),
so replies and request bodies are validated as Google describes them.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

SPEC_RELATIVE = Path("shared/specs/google-calendar/calendar.v3.json")
# int64 and uint64 travel as decimal strings (Channel.expiration); the rest of `format`s are checked by jsonschema.
_INT_STRING = r"^-?\d+$"


def find_document(start: Path | None = None) -> Path | None:
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        candidate = folder / SPEC_RELATIVE
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def load_document() -> dict[str, Any] | None:
    path = find_document()
    return json.loads(path.read_text(encoding="utf-8")) if path else None


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if kind == "any":
        return {}
    if kind:
        out["type"] = kind
    fmt = node.get("format")
    if kind == "string" and fmt in ("int64", "uint64"):
        out["pattern"] = _INT_STRING
    elif fmt in ("date-time", "date"):
        out["format"] = fmt
    if "enum" in node:
        out["enum"] = node["enum"]
    if "properties" in node:
        out["properties"] = {k: _convert(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node:
            out["additionalProperties"] = False
    if "additionalProperties" in node:
        out["additionalProperties"] = _convert(node["additionalProperties"])
    if "items" in node:
        out["items"] = _convert(node["items"])
    return out


@functools.cache
def definitions() -> dict[str, Any]:
    document = load_document()
    if document is None:
        return {}
    return {name: _convert(schema) for name, schema in document["schemas"].items()}


def schema_for(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}", "definitions": definitions()}


@functools.cache
def _methods() -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    document = load_document()
    if document is None:
        return []
    found: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                template = "/" + document["servicePath"] + method["path"]
                pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                found.append((method["httpMethod"], re.compile(pattern + "$"), method))
            walk(resource.get("resources", {}))

    walk(document["resources"])
    # Literal paths before templated ones: /events/watch is not the event "watch".
    found.sort(key=lambda m: m[1].pattern.count("[^/]+"))
    return found


def method_for(http_method: str, path: str) -> dict[str, Any] | None:
    for verb, pattern, method in _methods():
        if verb == http_method and pattern.match(path):
            return method
    return None


def problems(name: str, data: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema_for(name), format_checker=jsonschema.FormatChecker())
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}" for e in validator.iter_errors(data)
    ]
