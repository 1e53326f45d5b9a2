"""Stripe's Search API (`GET /v1/<resource>/search?query=…`): its query language and `search_result` pages.

The language (https://stripe.com/docs/search#search-query-language): up to 10 clauses joined by AND or OR
(either keyword, any case; a space means AND; the two may not be mixed), each `field:value` (exact match, case
insensitive), `field~value` (substring, at least 3 characters), `field>n`, `<`, `>=`, `<=` (numbers: amount,
created), a leading `-` negates. Strings are quoted, in single or double quotes; numbers are bare;
`metadata['key']:'value'` reads a metadata key and `metadata['key']:null` matches objects without it.
Results are newest first; `page` takes the `next_page` of the previous result; `expand[]=total_count` adds
`total_count`. Stripe's index lags writes by up to a minute; the emulator's does not.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fieldhub.providers.stripe.emulator.api import Ctx, StripeError, invalid

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

MAX_CLAUSES = 10
NUMERIC = {"amount", "created"}
# Per resource: its URL segment, the object kind, the fields Stripe lets a query name and its docs anchor.
RESOURCES = {
    "payment_intents": (
        "payment_intent",
        {"amount", "created", "currency", "customer", "metadata", "status"},
        "query-fields-for-payment-intents",
    ),
    "charges": (
        "charge",
        {
            "amount",
            "billing_details.address.postal_code",
            "created",
            "currency",
            "customer",
            "disputed",
            "metadata",
            "payment_method_details.card.brand",
            "payment_method_details.card.exp_month",
            "payment_method_details.card.exp_year",
            "payment_method_details.card.last4",
            "refunded",
            "status",
        },
        "query-fields-for-charges",
    ),
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>>=|<=|[:~<>])
      | (?P<neg>-(?=[A-Za-z]))
      | (?P<metadata>metadata\[(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\])
      | (?P<word>[A-Za-z0-9_.\-]+)
    )""",
    re.VERBOSE,
)


@dataclass
class Clause:
    field: str
    key: str  # the metadata key, for metadata['key']
    op: str
    value: str | None  # None: `null`
    quoted: bool
    negated: bool


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _bad(detail: str) -> StripeError:
    return invalid("query", f"Invalid search query: {detail}", code="parameter_invalid")


def parse(query: str) -> tuple[list[Clause], str]:
    """The clauses of a query and how they are joined ("AND" or "OR")."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = query.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"unexpected character at position {position + 1}: {text[position]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    clauses: list[Clause] = []
    joins: set[str] = set()
    i = 0
    while i < len(tokens):
        if clauses:
            if tokens[i][0] == "word" and tokens[i][1].upper() in ("AND", "OR"):
                joins.add(tokens[i][1].upper())
                i += 1
            else:
                joins.add("AND")  # a space between clauses
        negated = i < len(tokens) and tokens[i][0] == "neg"
        i += negated
        if i + 2 >= len(tokens):
            raise _bad("a clause needs a field, an operator and a value")
        kind, field = tokens[i]
        key = ""
        if kind == "metadata":
            key, field = _unquote(field[len("metadata[") : -1]), "metadata"
        elif kind != "word":
            raise _bad(f"expected a field name, found {field!r}")
        op_kind, op = tokens[i + 1]
        if op_kind != "op":
            raise _bad(f"expected an operator after {field!r}")
        value_kind, raw = tokens[i + 2]
        value: str | None
        if value_kind == "quoted":
            value, quoted = _unquote(raw), True
        elif value_kind == "word":
            value, quoted = (None if raw == "null" else raw), False
        else:
            raise _bad(f"expected a value after {field}{op}")
        clauses.append(Clause(field, key, op, value, quoted, negated))
        i += 3
    if not clauses:
        raise _bad("the query is empty")
    if len(joins) > 1:
        raise _bad("AND and OR cannot be combined in one query")
    if len(clauses) > MAX_CLAUSES:
        raise _bad(f"a query has at most {MAX_CLAUSES} clauses")
    return clauses, joins.pop() if joins else "AND"


def _field(obj: dict[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def predicate(clause: Clause, resource: str) -> Callable[[dict[str, Any]], bool]:
    kind, fields, anchor = RESOURCES[resource]
    if clause.field not in fields:
        raise invalid(
            "query",
            f"Field `{clause.field}` is an unsupported search field for resource `{resource}`. See "
            f"https://stripe.com/docs/search#{anchor} for a list of supported fields.",
        )
    if clause.field == "metadata" and not clause.key:
        raise _bad("metadata needs a key: metadata['key']")
    numeric = clause.field in NUMERIC
    if clause.op in (">", "<", ">=", "<=") and not numeric:
        raise _bad(f"`{clause.op}` compares numbers; `{clause.field}` is not one")
    if clause.op == "~" and numeric:
        raise _bad(f"a substring search (~) takes text; `{clause.field}` is a number")
    if numeric and clause.value is not None and not re.fullmatch(r"-?\d+", clause.value):
        raise _bad(f"`{clause.field}` takes a whole number, not {clause.value!r}")
    if not numeric and clause.value is not None and not clause.quoted:
        raise _bad(f"the value for `{clause.field}` must be quoted")
    if clause.op == "~" and (clause.value is None or len(clause.value) < 3):
        raise _bad("a substring search (~) needs at least 3 characters")

    def read(obj: dict[str, Any]) -> Any:
        if clause.field == "metadata":
            return (obj.get("metadata") or {}).get(clause.key)
        return _field(obj, clause.field)

    def test(obj: dict[str, Any]) -> bool:
        value = read(obj)
        if clause.value is None:
            return value is None
        if value is None:
            return False
        if numeric:
            number, bound = int(value), int(clause.value)
            return {
                ":": number == bound,
                ">": number > bound,
                "<": number < bound,
                ">=": number >= bound,
                "<=": number <= bound,
            }[clause.op]
        if clause.op == "~":
            return clause.value.casefold() in _text(value).casefold()
        return _text(value).casefold() == clause.value.casefold()

    if clause.negated:
        return lambda obj: not test(obj)
    return test


def _page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"page:{offset}".encode()).decode().rstrip("=")


def _offset(ctx: Ctx) -> int:
    token = ctx.str_param("page")
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        label, _, number = text.partition(":")
        if label != "page" or not number.isdigit():
            raise ValueError(text)
    except ValueError:
        raise invalid("page", "Invalid page: use the next_page of a previous search result.") from None
    return int(number)


def install(emu: StripeEmulator) -> None:
    def handler(resource: str) -> Callable[[Ctx], dict[str, Any]]:
        kind = RESOURCES[resource][0]

        def search(ctx: Ctx) -> dict[str, Any]:
            query = ctx.str_param("query", need=True) or ""
            clauses, join = parse(query)
            tests = [predicate(c, resource) for c in clauses]
            combine = all if join == "AND" else any
            found = emu.find(ctx.account, kind, lambda obj: combine(t(obj) for t in tests))
            limit = ctx.int_param("limit")
            limit = 10 if limit is None else limit
            if not 1 <= limit <= 100:
                raise invalid("limit", "This value must be between 1 and 100.", code="parameter_invalid_integer")
            start = _offset(ctx)
            page = found[start : start + limit]
            more = start + limit < len(found)
            result: dict[str, Any] = {
                "object": "search_result",
                "data": page,
                "has_more": more,
                "next_page": _page(start + limit) if more else None,
                "url": f"/v1/{resource}/search",
            }
            expand = ctx.params.get("expand")
            if isinstance(expand, list) and "total_count" in expand:
                result["total_count"] = len(found)
                ctx.params["expand"] = [e for e in expand if e != "total_count"]
            return result

        return search

    for resource in RESOURCES:
        emu.api.add("GET", f"/v1/{resource}/search", handler(resource))
