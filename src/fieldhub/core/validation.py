"""Input parsing for core services: pydantic field types for money and text, errors as ValidationFailed."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, WithJsonSchema
from pydantic import ValidationError as PydanticValidationError

from fieldhub.core.errors import ValidationFailed
from fieldhub.core.money import parse_money

M = TypeVar("M", bound=BaseModel)

# Largest amount a ScaledDecimal column can hold comfortably, far beyond any invoice. It bounds totals too: a
# line's quantity × price, and an invoice's sum of lines, are refused past it rather than overflowing the column.
MAX_AMOUNT = Decimal("999999999999.99")
# Primary keys are INTEGER columns, 32-bit on PostgreSQL: a larger id names no record, and past 2**63 the
# database drivers raise instead of answering "not found". Every id taken as input is bounded by this.
MAX_ID = 2**31 - 1


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _money_text(value: Any) -> Any:
    # What a person types ("$1,234.5") is parsed here; floats are refused: money is never binary.
    if isinstance(value, float):
        raise ValueError('send amounts as strings, like "12.50"')
    if isinstance(value, str):
        return parse_money(value)
    return value


def _number_text(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('send numbers as strings, like "1.5"')
    if isinstance(value, str):
        cleaned = value.strip().replace(",", "")
        if not cleaned:
            raise ValueError("enter a number")
        return cleaned
    return value


def _places(places: int) -> Any:
    # Exact (the constraint already refused extra places): only the scale changes, so a value reads the
    # same before and after a round trip through the database ("7.5" is kept as 7.5000).
    exponent = Decimal(1).scaleb(-places)
    return lambda value: value.quantize(exponent)


def _no_nul(value: str) -> str:
    # PostgreSQL's text can't hold NUL ("\x00"): refused here, not at the INSERT as a 500.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _email(value: str) -> str:
    if not value:
        return ""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError("enter a valid email address, like name@example.com") from exc


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 - reads as a type in schemas
    """A stripped string with the column's limit, so an oversize value is refused, never truncated."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=max_length, min_length=min_length),
        AfterValidator(_no_nul),
    ]


Money = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    Field(ge=0, le=MAX_AMOUNT, max_digits=14, decimal_places=2),
    AfterValidator(_places(2)),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "examples": ["12.50"]}),
]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_number_text),
    Field(ge=0, le=Decimal("99999999"), decimal_places=4),
    AfterValidator(_places(4)),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "examples": ["1.5"]}),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_number_text),
    Field(ge=0, le=100, decimal_places=4),
    AfterValidator(_places(4)),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "examples": ["8.25"]}),
]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
OptionalId = Annotated[Id | None, BeforeValidator(_blank_to_none)]


def id_or_none(text: str) -> int | None:
    """An id typed into a form or query string ("12"), or None when it can't be one (blank, "x", "²", 10**30)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def require_in_schema(*names: str) -> Any:
    """A model's `json_schema_extra` listing fields as required that it takes blank only to refuse them later."""

    def extra(schema: dict[str, Any]) -> None:
        required = schema.setdefault("required", [])
        for name in names:
            schema["properties"][name].pop("default", None)
            if name not in required:
                required.append(name)

    return extra


def message_for(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "Required."
    if kind == "string_too_long":
        return f"Too long: at most {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return "Required." if ctx.get("min_length") == 1 else f"At least {ctx.get('min_length')} characters."
    if kind in ("greater_than_equal", "greater_than"):
        limit = ctx.get("ge", ctx.get("gt"))
        return (
            "Can't be negative."
            if str(limit) in ("0", "0.00") and kind == "greater_than_equal"
            else (f"Must be more than {limit}." if kind == "greater_than" else f"Must be at least {limit}.")
        )
    if kind in ("less_than_equal", "less_than"):
        return f"Must be at most {ctx.get('le', ctx.get('lt'))}."
    if kind == "decimal_max_places":
        return f"At most {ctx.get('decimal_places')} decimal places."
    if kind in ("decimal_parsing", "decimal_type", "decimal_max_digits"):
        return "Enter a number, like 12.50."
    if kind in ("int_parsing", "int_type"):
        return "Choose one from the list."
    if kind.startswith("date"):
        return "Enter a date as YYYY-MM-DD."
    if kind in ("enum", "literal_error"):
        return f"Choose one of: {ctx.get('expected', 'the listed values')}."
    if kind in ("too_short",) and ctx.get("min_length") == 1:
        return "Add at least one."
    if kind == "too_long":
        return f"At most {ctx.get('max_length')} entries."
    message = str(error.get("msg", "Not valid."))
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:].rstrip(".") + "."


def field_errors(exc: PydanticValidationError) -> dict[str, str]:
    """Pydantic errors as {dotted field: plain message}; the offending input is never echoed back."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"]) or "__all__"
        errors.setdefault(loc, message_for(error))
    return errors


def parse(schema: type[M], data: M | Mapping[str, Any]) -> M:
    """Validate `data` (a schema instance, a dict from JSON, or a form) or raise ValidationFailed."""
    if isinstance(data, schema):
        return data
    try:
        return schema.model_validate(dict(data) if not isinstance(data, BaseModel) else data.model_dump())
    except PydanticValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None
