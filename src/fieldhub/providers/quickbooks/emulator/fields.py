"""Request bodies read as QBO reads them: typed by Intuit's XSD (xsd_fields.json), "" and null taken as absent.

QBO deserialises JSON into its XSD-generated classes, so what it stores and answers is typed by the
schema whatever the client sent: an id sent as a number comes back a string, an amount sent as a
string comes back a number, an empty string or null is no value at all (its default applies: today
for TxnDate, the terms for DueDate), and a property its class does not have is refused with 2010.
The table is generated from the XSDs by `xsd.py` (python -m fieldhub.providers.quickbooks.emulator.xsd).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fieldhub.providers.quickbooks.emulator.errors import QBOFault, parse_time

TABLE_FILE = Path(__file__).with_name("xsd_fields.json")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:Z|[+-]\d{2}:\d{2})?")
_ABSENT = object()


@functools.cache
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE_FILE.read_text())
    return data


def entity_type(entity: str) -> dict[str, Any]:
    tables = table()
    return tables["types"][tables["roots"][entity]]


def _invalid(detail: str) -> QBOFault:
    return QBOFault("2010", "Request has invalid or unsupported property", f"Property Name:{detail}")


def _unknown(key: str, type_name: str) -> QBOFault:
    # The wording of QBO's JSON reader (Jackson) for a property its class lacks.
    return _invalid(
        f'Unrecognized field "{key}" (class com.intuit.schema.finance.v3.{type_name.split(".")[0]}), '
        "not marked as ignorable specified is unsupported or invalid"
    )


def _bad_value(path: str, value: Any, kind: str) -> QBOFault:
    return _invalid(
        f"Can not construct instance of {kind} for {path} from {value!r} specified is unsupported or invalid"
    )


def _text(value: Decimal | int | float) -> str:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(value)


def _simple(kind: str, value: Any, path: str) -> Any:
    if isinstance(value, dict | list):
        raise _bad_value(path, value, kind)
    if kind == "any":
        return value
    if kind == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else _text(value)
    if kind.startswith("enum:"):
        allowed = table()["enums"][kind[5:]]
        text = value if isinstance(value, str) else str(value)
        if text not in allowed:
            raise _bad_value(path, value, kind[5:])
        return text
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad_value(path, value, "boolean")
    if kind in ("decimal", "int"):
        if isinstance(value, bool):
            raise _bad_value(path, value, kind)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise _bad_value(path, value, kind) from None
        if not number.is_finite():
            raise _bad_value(path, value, kind)
        if kind == "decimal":
            return number
        if number != number.to_integral_value():
            raise _bad_value(path, value, kind)
        return int(number)
    if kind == "date":
        text = str(value).strip()
        if not _DATE.fullmatch(text):
            raise _bad_value(path, value, "date")
        try:
            date.fromisoformat(text[:10])
        except ValueError:
            raise _bad_value(path, value, "date") from None
        return text
    if kind == "datetime":
        text = str(value).strip()
        if parse_time(text) is None:
            raise _bad_value(path, value, "dateTime")
        return text
    return value


def _value(kind: str, value: Any, path: str) -> Any:
    if value is None or value == "" or value == []:
        return _ABSENT
    if kind.startswith("@"):
        return _complex(kind[1:], value, path)
    return _simple(kind, value, path)


def _complex(type_name: str, value: Any, path: str) -> Any:
    entry = table()["types"][type_name]
    if not isinstance(value, dict):
        raise _bad_value(path, value, type_name)
    attrs = entry.get("attrs", {})
    children = entry.get("children", {})
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key == "value" and "value" in entry:
            kind = entry["value"]
        elif key in attrs:
            kind = attrs[key]
        elif key in children:
            kind = children[key][0]
        else:
            raise _unknown(key, type_name)
        if isinstance(item, list):
            typed: Any = [t for t in (_value(kind, one, where) for one in item) if t is not _ABSENT] or _ABSENT
        else:
            typed = _value(kind, item, where)
        if typed is not _ABSENT:
            out[key] = typed
    if "value" in entry and "value" not in out:
        return _ABSENT  # a reference without an id refers to nothing
    return out


def normalise(entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as QBO reads a request for `entity`: typed per the XSD, "" / null / [] left out, unknown
    properties refused (2010)."""
    typed = _complex(table()["roots"][entity], body, "")
    return typed if isinstance(typed, dict) else {}


def property_path(entity: str, dotted: str) -> str | None:
    """The XSD's spelling of a property a query names (`metadata.lastupdatedtime` ->
    `MetaData.LastUpdatedTime`), or None when the entity has no such property."""
    tables = table()
    entry = entity_type(entity)
    parts: list[str] = []
    for index, part in enumerate(dotted.split(".")):
        names = {**entry.get("children", {}), **{a: [k] for a, k in entry.get("attrs", {}).items()}}
        if "value" in entry:
            names["value"] = [entry["value"]]
        key = next((k for k in names if k.lower() == part.lower()), None)
        if key is None:
            return None
        parts.append(key)
        kind = names[key][0]
        if index < len(dotted.split(".")) - 1:
            if not kind.startswith("@"):
                return None
            entry = tables["types"][kind[1:]]
    return ".".join(parts)
