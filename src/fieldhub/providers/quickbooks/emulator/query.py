"""The QuickBooks query language as integrations use it: SELECT */fields/COUNT(*) ... WHERE ... ORDERBY ... paging.

Every property a statement names (selected, filtered on, ordered by) must be one of the entity's in
Intuit's schema, else QBO answers 400 code 4001 "QueryValidationError: property 'X' is not queryable".
A field list (`SELECT DisplayName, Id FROM Customer`) answers those fields only, marked `sparse`;
`SELECT *, Sku FROM Item` (python-quickbooks' Item.all()) answers every field.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldhub.providers.quickbooks.emulator.errors import QBOFault, invalid_query, parse_time, qbo_time
from fieldhub.providers.quickbooks.emulator.fields import property_path
from fieldhub.providers.quickbooks.emulator.store import ENTITIES, LISTS, Company

MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.|'')*')|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),*])"
    r"|(?P<number>-?\d+(?:\.\d+)?(?![\w.]))|(?P<word>[A-Za-z_][\w.]*))"
)


@dataclass
class Condition:
    field: str
    op: str
    values: list[Any]


@dataclass
class Query:
    entity: str
    count: bool = False
    fields: list[str] | None = None  # a projection; None answers every field
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start: int = 1
    max_results: int = DEFAULT_RESULTS


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise invalid_query(f'Encountered "{text[pos : pos + 10]}" at position {pos + 1}.')
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = value[1:-1].replace("\\'", "'").replace("''", "'")
        out.append((kind, value))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def next(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() in words:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise invalid_query(f'Expected {word} but found "{self.peek()[1]}".')

    def literal(self) -> Any:
        kind, value = self.next()
        if kind == "string":
            return value
        if kind == "number":
            return Decimal(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid_query(f'Expected a value but found "{value}".')

    def integer(self, word: str) -> int:
        kind, value = self.next()
        if kind != "number" or "." in value:
            raise invalid_query(f'{word} needs a whole number, found "{value}".')
        return int(value)

    def selection(self) -> tuple[bool, bool, list[str]]:
        """What follows SELECT: (COUNT(*)?, `*` among them?, the fields named)."""
        if self.keyword("COUNT"):
            if [self.next()[1] for _ in range(3)] != ["(", "*", ")"]:
                raise invalid_query("Only COUNT(*) is supported.")
            return True, False, []
        star = False
        named: list[str] = []
        while True:
            kind, value = self.next()
            if (kind, value) == ("punct", "*") and not star:
                star = True
            elif kind == "word" and value.upper() != "FROM":
                named.append(value)
            else:
                raise invalid_query(f'Encountered "{value}" in the select list.')
            if self.peek() != ("punct", ","):
                return False, star, named
            self.next()

    def parse(self) -> Query:
        self.expect("SELECT")
        count, star, named = self.selection()
        self.expect("FROM")
        kind, name = self.next()
        entity = ENTITIES.get(name.lower()) if kind == "word" else None
        if entity is None:
            raise QBOFault(
                "4000", "Error parsing query", f"QueryParserError: Invalid entity name {name!r} in the query."
            )
        query = Query(entity, count=count)
        selected = [_property(entity, field_name) for field_name in named]
        if selected and not star:
            query.fields = selected
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while self.keyword("AND"):
                query.where.append(self.condition())
            if self.peek()[1].upper() == "OR":
                raise invalid_query("OR is not supported in QuickBooks queries.")
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self.keyword("BY")):
            while True:
                kind, name = self.next()
                if kind != "word":
                    raise invalid_query(f'Expected a field after ORDERBY, found "{name}".')
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                query.order.append((_property(query.entity, name), descending))
                if self.peek() != ("punct", ","):
                    break
                self.next()
        if self.keyword("STARTPOSITION"):
            query.start = self.integer("STARTPOSITION")
        if self.keyword("MAXRESULTS"):
            query.max_results = self.integer("MAXRESULTS")
        if self.peek()[0] != "end":
            raise invalid_query(f'Unexpected "{self.peek()[1]}".')
        for condition in query.where:
            condition.field = _property(query.entity, condition.field)
        if query.start < 1:
            raise QBOFault("4001", "Invalid query", "QueryValidationError: STARTPOSITION must be 1 or more.")
        if query.max_results < 0 or query.max_results > MAX_RESULTS:
            raise QBOFault(
                "4001",
                "Invalid query",
                f"QueryValidationError: value {query.max_results} is too large. Max allowed value is {MAX_RESULTS}.",
            )
        return query

    def condition(self) -> Condition:
        kind, name = self.next()
        if kind != "word":
            raise invalid_query(f'Expected a field name, found "{name}".')
        kind, op = self.peek()
        if kind == "op":
            self.next()
            op = "!=" if op == "<>" else op
            return Condition(name, op, [self.literal()])
        if self.keyword("IN"):
            if self.next() != ("punct", "("):
                raise invalid_query("IN needs a parenthesised list.")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.next()
                values.append(self.literal())
            if self.next() != ("punct", ")"):
                raise invalid_query("IN list is not closed.")
            return Condition(name, "IN", values)
        if self.keyword("LIKE"):
            return Condition(name, "LIKE", [self.literal()])
        raise invalid_query(f'Unsupported operator "{op}" after {name}.')


def _property(entity: str, name: str) -> str:
    known = property_path(entity, name)
    if known is None:
        raise QBOFault("4001", "Invalid query", f"QueryValidationError: property '{name}' is not queryable")
    return known


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise QBOFault(
            "4000", "Error parsing query", "QueryParserError: the query is empty", element="query", status=400
        )
    return _Parser(text).parse()


def _lookup(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        key = next((k for k in value if k.lower() == part.lower()), None)
        if key is None:
            return None
        value = value[key]
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _comparable(field_name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    lowered = field_name.lower()
    if lowered.endswith("time") or lowered.endswith("date"):
        moment = parse_time(str(value))
        if moment is not None:
            return moment
    if isinstance(value, Decimal | int):
        return Decimal(value)
    text = str(value)
    try:
        if lowered == "id" or lowered.endswith("ref") or lowered.endswith(".id"):
            return Decimal(text)
    except InvalidOperation:
        pass
    return text.casefold()


def _matches(obj: dict[str, Any], cond: Condition) -> bool:
    actual = _comparable(cond.field, _lookup(obj, cond.field))
    wanted = [_comparable(cond.field, v) for v in cond.values]
    if actual is None:
        return False
    if isinstance(actual, Decimal):
        try:
            wanted = [w if isinstance(w, Decimal) else Decimal(str(w)) for w in wanted]
        except InvalidOperation:
            return False
    if cond.op == "IN":
        return actual in wanted
    if cond.op == "LIKE":
        pattern = "^" + ".*".join(re.escape(part) for part in str(wanted[0]).split("%")) + "$"
        return re.match(pattern, str(actual), re.DOTALL) is not None
    target = wanted[0]
    try:
        return {
            "=": actual == target,
            "!=": actual != target,
            "<": actual < target,
            ">": actual > target,
            "<=": actual <= target,
            ">=": actual >= target,
        }[cond.op]
    except TypeError:
        return False


def _sort_key(obj: dict[str, Any], field_name: str) -> tuple[int, Any]:
    value = _comparable(field_name, _lookup(obj, field_name))
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, Decimal | float):
        return (1, value)
    return (2, value)


def select(company: Company, query: Query) -> list[dict[str, Any]]:
    rows = list(company.objects.get(query.entity, {}).values())
    conditions = list(query.where)
    # Name lists answer with active records only unless the query asks about Active itself.
    if query.entity in LISTS and not any(c.field.lower() == "active" for c in conditions):
        conditions.append(Condition("Active", "=", [True]))
    rows = [row for row in rows if all(_matches(row, c) for c in conditions)]
    rows.sort(key=lambda row: int(row["Id"]) if str(row["Id"]).isdigit() else 0)
    for field_name, descending in reversed(query.order):
        rows.sort(key=functools.partial(_sort_key, field_name=field_name), reverse=descending)
    return rows


def run(company: Company, text: str) -> dict[str, Any]:
    """The QueryResponse object for one statement."""
    query = parse(text)
    rows = select(company, query)
    if query.count:
        return {"totalCount": len(rows)}
    page = rows[query.start - 1 : query.start - 1 + query.max_results]
    if not page:
        return {}
    if query.fields is not None:
        page = [_project(row, query.fields) for row in page]
    return {query.entity: page, "startPosition": query.start, "maxResults": len(page)}


def _project(row: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """The row cut to the selected properties (a dotted one keeps its parents): a partial, "sparse" object."""
    out: dict[str, Any] = {"domain": row.get("domain", "QBO"), "sparse": True}
    for path in paths:
        *parents, last = path.split(".")
        source: Any = row
        target = out
        for part in parents:
            source = source.get(part) if isinstance(source, dict) else None
            target = target.setdefault(part, {})
        if isinstance(source, dict) and last in source:
            target[last] = copy.deepcopy(source[last])
    return out


CDC_LOOKBACK = 30 * 86400
CDC_MAX = 1000


def changes_since(company: Company, entities: list[str], since: float) -> list[dict[str, Any]]:
    """The CDCResponse's QueryResponse list: changed objects (deleted ones as stubs), oldest change first,
    at most 1000 across all entities, so a full page means "ask again from the last time seen"."""
    found: list[tuple[float, str, dict[str, Any]]] = []
    for entity in entities:
        for object_id, obj in company.objects.get(entity, {}).items():
            stamp = company.stamps.get((entity, object_id), 0.0)
            if stamp >= since:
                found.append((stamp, entity, obj))
        for object_id, stamp in company.tombstones.get(entity, {}).items():
            if stamp >= since:
                stub = {
                    "domain": "QBO",
                    "status": "Deleted",
                    "Id": object_id,
                    "MetaData": {"LastUpdatedTime": qbo_time(stamp)},
                }
                found.append((stamp, entity, stub))
    found.sort(key=lambda row: row[0])
    grouped: dict[str, list[dict[str, Any]]] = {entity: [] for entity in entities}
    for _, entity, obj in found[:CDC_MAX]:
        grouped[entity].append(obj)
    responses = []
    for entity in entities:
        rows = grouped[entity]
        if rows:
            responses.append({entity: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)})
        else:
            responses.append({})
    return responses
