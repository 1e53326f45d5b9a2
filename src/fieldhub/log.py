"""structlog set-up: dotted event names, JSON or console output, secrets redacted before anything prints."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

# Field names whose values are secrets wherever they appear in a log event.
SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|cookie|signature|code_verifier|refresh|access)",
    re.I,
)
_registered: set[str] = set()
REDACTED = "[redacted]"


def register_secret(value: str | None) -> None:
    """Any log field that contains this exact value is redacted from then on (token values, keys)."""
    if value and len(value) >= 8:
        _registered.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _registered:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key == "event":
            event[key] = _scrub(event[key])
        elif SECRET_KEYS.search(key) and key not in {"refresh_count"}:
            event[key] = REDACTED
        else:
            event[key] = _scrub(event[key])
    return event


def configure(level: str = "INFO", json: bool = False) -> None:
    logging.basicConfig(format="%(message)s", level=level.upper())
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "fieldhub") -> Any:
    return structlog.get_logger(name)
