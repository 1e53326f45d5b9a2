"""Stripe's form encoding: bracket notation (`a[b][0][c]=1`, `x[]=1`) to and from nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A parameter name that bracket notation cannot express (e.g. `a[b` or `a[]` mixed with `a[x]`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_form(body: str | bytes) -> dict[str, Any]:
    """Parse an application/x-www-form-urlencoded body (or query string) the way Stripe reads it."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return parse_pairs(parse_qsl(body, keep_blank_values=True))


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for name, value in pairs:
        match = _KEY.match(name)
        if match is None:
            raise FormError(name, f"Invalid parameter name: {name}")
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        _put(root, parts, value, name)
    return _listify(root)


def _put(node: dict[str, Any], parts: list[str], value: str, name: str) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        if isinstance(node.get(head), dict):
            raise FormError(name, f"Invalid parameter: {name} is both a value and a hash")
        node[head] = value
        return
    if rest[0] == "":
        # `x[]=a&x[]=b` appends; `x[][k]=v` is not something Stripe accepts.
        if len(rest) > 1:
            raise FormError(name, f"Invalid array parameter: {name}")
        current = node.setdefault(head, _Array())
        if not isinstance(current, _Array):
            raise FormError(name, f"Invalid parameter: {name} mixes an array and a hash")
        current.append(value)
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise FormError(name, f"Invalid parameter: {name} mixes a value and a hash")
    _put(child, rest, value, name)


class _Array(list):
    pass


def _listify(node: Any) -> Any:
    """Hashes whose keys are all integers become lists in index order (`line_items[0][...]`)."""
    if isinstance(node, _Array):
        return list(node)
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def encode_form(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The inverse of `parse_form`, for tests and for clients that speak Stripe's encoding."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                pairs.extend((f"{prefix}[]", _scalar(v)) for v in value)
            else:
                for i, v in enumerate(value):
                    walk(f"{prefix}[{i}]", v)
        elif value is not None:
            pairs.append((prefix, _scalar(value)))

    walk("", params)
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
