"""Validate QuickBooks JSON (requests and replies) against Intuit's published XSDs (facts §0.1).

QBO's JSON is its XML schema written as objects: elements are Capitalised keys, attributes are the
lower-case ones (`domain`, `sparse`, `status`, `time`, a Fault's `type`, an Error's `code`...), and a
reference `{"value": "7", "name": "x"}` is an element whose text is the value. JSON has no order and
the XSD uses sequences, so encoding goes through xmlschema's UnorderedConverter; `lax` validation
returns every problem instead of stopping at the first. The XSD marks nearly every field optional:
this checks names, types and enumerations, not QBO's business rules.

`field_table()` condenses the entities' types into `xsd_fields.json`, which the emulator reads at run
time (`fields.py`) so that it types what it stores as the XSD does without loading the XSDs (seconds)
or needing them beside the checkout; a test keeps the file equal to what the XSDs give.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlschema

NAMESPACE = "http://schema.intuit.com/finance/v3"
ROOT_XSD = "IntuitRestServiceDef.xsd"
ENVELOPES = ("Fault", "QueryResponse", "BatchItemResponse", "CDCResponse")
# The entities the emulator stores (store.ENTITIES), whose fields `xsd_fields.json` describes.
TABLE_ROOTS = (
    "Account",
    "CompanyInfo",
    "Customer",
    "Deposit",
    "Employee",
    "Invoice",
    "Item",
    "Payment",
    "RefundReceipt",
    "TaxAgency",
    "TaxCode",
    "TaxRate",
    "Term",
    "Vendor",
)
_INTEGERS = {
    "integer",
    "int",
    "long",
    "short",
    "byte",
    "positiveInteger",
    "nonNegativeInteger",
    "negativeInteger",
    "nonPositiveInteger",
    "unsignedInt",
    "unsignedLong",
    "unsignedShort",
    "unsignedByte",
}
_PRIMITIVES = {
    "decimal": "decimal",
    "float": "decimal",
    "double": "decimal",
    "boolean": "boolean",
    "date": "date",
    "dateTime": "datetime",
}


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
    # Built once a process, every validation reuses it. Intuit's files are taken as they are: checking them
    # against the XSD meta-schema too ("strict") costs seconds and changes nothing in how documents validate.
    return xmlschema.XMLSchema(str(spec_dir / ROOT_XSD), validation="skip")


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


def field_table(spec_dir: Path | None = None) -> dict[str, Any]:
    """Every element and attribute of the stored entities' types, as the JSON the emulator reads.

    `types[T]` has `children` (element name -> [kind, many]), `attrs` (lower-case JSON keys) and, for
    simple content such as ReferenceType, `value`. A kind is `@Type` (another complex type), `any`,
    `enum:Name` (values in `enums`) or a simple kind: string, int, decimal, boolean, date, datetime.
    """
    folder = spec_dir or find_specs_dir()
    if folder is None:
        raise FileNotFoundError("Intuit's XSDs (shared/specs/qbo) were not found; set FIELDHUB_QBO_XSD_DIR")
    schema = load_schema(folder)
    types: dict[str, dict[str, Any]] = {}
    enums: dict[str, list[str]] = {}

    def simple(xsd_type: Any) -> str:
        values = getattr(xsd_type, "enumeration", None)
        if values:
            enums[xsd_type.local_name] = [str(v) for v in values]
            return "enum:" + xsd_type.local_name
        names = []
        base = xsd_type
        while base is not None:
            names.append(base.local_name)
            base = getattr(base, "base_type", None)
        if _INTEGERS.intersection(n for n in names if n):
            return "int"
        primitive = getattr(xsd_type, "primitive_type", None)
        return _PRIMITIVES.get(primitive.local_name if primitive is not None else "", "string")

    def visit(xsd_type: Any, hint: str) -> str:
        name = xsd_type.local_name or hint
        if name in types:
            return name
        entry: dict[str, Any] = {}
        types[name] = entry
        attrs = {key: simple(attr.type) for key, attr in xsd_type.attributes.items() if key}
        if attrs:
            entry["attrs"] = attrs
        if xsd_type.has_simple_content():
            entry["value"] = simple(xsd_type.content)
            return name
        children: dict[str, list[Any]] = {}
        for element in xsd_type.content.iter_elements():
            many = element.max_occurs is None or element.max_occurs > 1
            if element.type.is_simple():
                kind = simple(element.type)
            elif element.type.local_name in ("anyType", "IntuitAnyType"):
                kind = "any"
            else:
                kind = "@" + visit(element.type, f"{name}.{element.local_name}")
            children[element.local_name] = [kind, many]
        entry["children"] = children
        return name

    roots = {root: visit(schema.elements[root].type, root) for root in TABLE_ROOTS}
    return {"roots": roots, "types": types, "enums": enums}


def write_field_table(path: Path, spec_dir: Path | None = None) -> None:
    path.write_text(json.dumps(field_table(spec_dir), sort_keys=True, indent=1) + "\n")


if __name__ == "__main__":  # python -m fieldhub.providers.quickbooks.emulator.xsd: regenerate xsd_fields.json
    write_field_table(Path(__file__).with_name("xsd_fields.json"))
