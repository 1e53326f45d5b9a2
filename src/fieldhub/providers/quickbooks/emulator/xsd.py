"""Validate QuickBooks JSON (requests and replies) against Intuit's published XSDs (facts §0.1).

QBO's JSON is its XML schema written as objects: elements are Capitalised keys, attributes are the
lower-case ones (`domain`, `sparse`, `status`, `time`, a Fault's `type`, an Error's `code`...), and a
reference `{"value": "7", "name": "x"}` is an element whose text is the value. JSON has no order and
the XSD uses sequences, so encoding goes through xmlschema's UnorderedConverter; `lax` validation
returns every problem instead of stopping at the first. The XSD marks nearly every field optional:
this checks names, types and enumerations, not QBO's business rules.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlschema

NAMESPACE = "http://schema.intuit.com/finance/v3"
ROOT_XSD = "IntuitRestServiceDef.xsd"
ENVELOPES = ("Fault", "QueryResponse", "BatchItemResponse", "CDCResponse")


def find_specs_dir(start: Path | None = None) -> Path | None:
    """The folder holding Intuit's XSDs: $FIELDHUB_QBO_XSD_DIR, else the nearest `shared/specs/qbo` or
    `specs/qbo` above `start` (the steering repository sits beside the code checkout)."""
    override = os.environ.get("FIELDHUB_QBO_XSD_DIR")
    if override:
        path = Path(override)
        return path if (path / ROOT_XSD).is_file() else None
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        for candidate in (folder / "shared" / "specs" / "qbo", folder / "specs" / "qbo"):
            if (candidate / ROOT_XSD).is_file():
                return candidate
    return None


@lru_cache(maxsize=4)
def load_schema(spec_dir: Path) -> xmlschema.XMLSchema:
    # Building the schema takes seconds; every validation reuses it.
    return xmlschema.XMLSchema(str(spec_dir / ROOT_XSD))


def to_xsd_data(value: Any) -> Any:
    """QBO JSON -> the dict shape xmlschema encodes: attributes as `@key`, reference values as `$`."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "value":
                out["$"] = to_xsd_data(item)
            elif key[:1].islower():
                out["@" + key] = to_xsd_data(item)
            else:
                out[key] = to_xsd_data(item)
        return out
    if isinstance(value, list):
        return [to_xsd_data(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal | int | float):
        return str(value)
    return value


def validate(data: dict[str, Any], element: str, spec_dir: Path | None = None) -> list[str]:
    """Problems found encoding `data` as the XSD's global `element` (e.g. "Invoice", "IntuitBatchRequest")."""
    folder = spec_dir or find_specs_dir()
    if folder is None:
        raise FileNotFoundError("Intuit's XSDs (shared/specs/qbo) were not found; set FIELDHUB_QBO_XSD_DIR")
    schema = load_schema(folder)
    if element not in schema.elements:
        return [f"{element} is not a global element of the QBO schema"]
    result = schema.elements[element].encode(
        to_xsd_data(data),
        converter=xmlschema.UnorderedConverter,
        namespaces={"": NAMESPACE},
        validation="lax",
    )
    errors = result[1] if isinstance(result, tuple) else []
    return [f"{element}: {error.reason} (at {error.path or '/'})" for error in errors]


def validate_request(entity: str, body: dict[str, Any], spec_dir: Path | None = None) -> list[str]:
    """A create/update/delete body sent to `POST /{entity}`, or a batch body when entity is "batch"."""
    if entity.lower() == "batch":
        return validate(body, "IntuitBatchRequest", spec_dir)
    return validate(body, entity, spec_dir)


def validate_response(body: dict[str, Any], spec_dir: Path | None = None) -> list[str]:
    """A reply of the data API (`{"Invoice": {...}, "time": ...}`, a QueryResponse, a Fault...): the
    envelope is the XSD's IntuitResponse, whose `time` is an attribute."""
    return validate(body, "IntuitResponse", spec_dir)
