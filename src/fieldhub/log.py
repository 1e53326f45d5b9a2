"""structlog set-up: dotted event names, JSON or console output, secrets redacted before anything prints."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from fieldhub import exactjson

# Field names whose values are secrets wherever they appear in a log event.
SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|cookie|signature|code_verifier|refresh|access)",
    re.I,
)
REDACTED = "[redacted]"
# Credentials written inline in free text ("Authorization: Bearer abc…" in an exception message).
_INLINE_CREDENTIAL = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I)
# Every decrypted token is registered, and access tokens rotate hourly: keep the newest ones only, so
# scrubbing stays one regex pass instead of a scan that grows for as long as the process lives.
MAX_REGISTERED = 5000
SHORTEST_SECRET = 8  # shorter values are not registered, and an inline credential is longer: no scrub needed
_registered: dict[str, None] = {}
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None
_json_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Any log field that contains this exact value is redacted from then on (token values, keys)."""
    global _pattern, _json_pattern
    if not value or len(value) < SHORTEST_SECRET:
        return
    with _lock:
        if value in _registered:
            return
        _registered[value] = None
        while len(_registered) > MAX_REGISTERED:
            del _registered[next(iter(_registered))]
        _pattern = _json_pattern = None


def _secret_pattern(*, as_json: bool = False) -> re.Pattern[str] | None:
    """One regex over every registered secret, or over each as it reads inside a JSON string."""
    global _pattern, _json_pattern
    with _lock:
        if _pattern is None and _registered:
            # Longest first, so a secret that contains another is removed whole.
            alternatives = sorted(_registered, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(a) for a in alternatives))
            written = sorted((exactjson.text(a)[1:-1] for a in _registered), key=len, reverse=True)
            _json_pattern = re.compile("|".join(re.escape(a) for a in written))
        return _json_pattern if as_json else _pattern


def scrub_text(text: str) -> str:
    """`text` with every registered secret and inline bearer/basic credential replaced by [redacted]."""
    return _scrub_with(_secret_pattern(), text)


def scrub_json(text: str) -> str:
    """`text`, JSON written with ensure_ascii=False, with every registered secret and inline credential
    replaced by [redacted]: each secret is matched as JSON writes it (a quote or backslash in one is
    escaped there), in keys and values alike."""
    return _scrub_with(_secret_pattern(as_json=True), text)


def _scrub_with(pattern: re.Pattern[str] | None, text: str) -> str:
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    lowered = text.lower()  # a case-insensitive regex tries every position; two substring tests don't
    if "bearer" in lowered or "basic" in lowered:
        text = _INLINE_CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return _scrub(value.decode("utf-8", "replace"))
    # Any mapping, not only dict: httpx.Headers and friends carry Authorization too.
    if isinstance(value, Mapping):
        return {k: (REDACTED if SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if type(value) is tuple:
        return tuple(_scrub(v) for v in value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
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
    # procrastinate logs every job start and end at INFO: a worker's sweep alone is three lines a second.
    # Its warnings and errors show; all of it at DEBUG.
    numeric = logging.getLevelName(level.upper())
    logging.getLogger("procrastinate").setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
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
