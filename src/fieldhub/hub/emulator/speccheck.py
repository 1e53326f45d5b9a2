"""The spec check: every JSON reply emulators give during a test run, validated against the providers' specs.

With $FIELDHUB_EMULATOR_REPLIES naming a folder (the test suite sets it; a hub subprocess a browser
test starts inherits it), every emulator appends each JSON reply it gives to `<folder>/<pid>.jsonl`.
A line carries the reply's shape: its method, path (ids blanked), status and the structure of its
body, with keys, value types, enum-like words, date formats and string lengths kept and other values
dropped. The body itself is written only the first time a process sees a shape, so a backfill of
thousands of invoices costs a line each, not a copy each.

`check(folder)` then validates one body per distinct shape with the emulator's own
`Emulator.spec_problems` (QBO's XSDs, Stripe's OpenAPI spec...) and counts every reply by its shape.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from fieldhub.hub.emulator.core import Emulator

ENV = "FIELDHUB_EMULATOR_REPLIES"
_WORD = re.compile(r"[A-Za-z][A-Za-z_ ./-]{0,40}")  # enum-like: kept whole, a spec may restrict it
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class SpecMissing(Exception):
    """The provider's spec files are not beside this checkout: its replies cannot be checked here."""


def recording() -> str:
    return os.environ.get(ENV, "")


class _Writer:
    """This process's reply file and the shapes it already wrote a body for."""

    def __init__(self) -> None:
        self.pid = 0
        self.folder = ""
        self.fd = -1
        self.seen: set[str] = set()

    def write(self, folder: str, line: dict[str, Any], shape: str) -> None:
        if self.pid != os.getpid() or self.folder != folder:
            if self.pid == os.getpid():
                os.close(self.fd)  # the test run's folder changed (a test records into its own)
            self.pid, self.folder, self.seen = os.getpid(), folder, set()
            self.fd = os.open(Path(folder) / f"{self.pid}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if shape in self.seen:
            line.pop("b", None)
        self.seen.add(shape)
        os.write(self.fd, (json.dumps(line) + "\n").encode())


_writer = _Writer()


def record(
    key: str, method: str, path: str, status: int, content_type: str, body: bytes, *, oauth: bool = False
) -> None:
    """Note one reply of emulator `key` when the suite is recording (a no-op otherwise). `oauth`: the reply of
    its OAuth server (RFC 6749's bodies, which no API spec or API error body describes)."""
    folder = recording()
    if not folder or "json" not in content_type.lower() or not body:
        return
    text = body.decode("utf-8", "replace")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = text  # not JSON after all: its own shape, and the check reports it
    key_text = f"{key} {method} {_blank_ids(path)} {status} {oauth} {_canonical(_shape(parsed))}"
    shape = hashlib.blake2b(key_text.encode(), digest_size=10).hexdigest()
    line: dict[str, Any] = {"k": key, "m": method, "p": path, "s": status, "h": shape, "b": text}
    if oauth:
        line["o"] = 1
    _writer.write(folder, line, shape)


def _blank_ids(path: str) -> str:
    return "/".join("*" if any(c.isdigit() for c in part) else part for part in path.split("/"))


def _leaf(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return "int-" if value < 0 else "int"
    if isinstance(value, float):
        return "num-" if value < 0 else "num"
    text = str(value)
    if text == "":
        return "''"
    if _WORD.fullmatch(text):
        return "=" + text
    if _DATE.fullmatch(text):
        return "date" if _parses(date.fromisoformat, text) else "date?"
    if _DATETIME.fullmatch(text):
        return "datetime" if _parses(datetime.fromisoformat, text.replace("Z", "+00:00")) else "datetime?"
    if _NUMBER.fullmatch(text):
        return "number-text"
    return f"text{len(text).bit_length()}"


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _shape(value: Any) -> Any:
    """The structure a spec can judge: keys, kinds of values, the distinct shapes of a list's members.

    Nested tuples and frozensets: a list of a thousand alike invoices folds into one member."""
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return frozenset(_shape(v) for v in value)
    return _leaf(value)


def _canonical(shape: Any) -> str:
    """The shape as text that is the same in every process (a frozenset's order is not)."""
    if isinstance(shape, tuple):
        return "{" + ",".join(f"{k!r}:{_canonical(v)}" for k, v in shape) + "}"
    if isinstance(shape, frozenset):
        return "[" + ",".join(sorted(_canonical(v) for v in shape)) + "]"
    return str(shape)


# --- the check -----------------------------------------------------------------------------------
@dataclass
class Tally:
    label: str
    checked: int = 0
    valid: int = 0
    outside: int = 0  # replies the spec does not describe (OAuth endpoints, gateway bodies, pages)
    missing: bool = False  # the spec files were not found
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    tallies: list[Tally]
    shapes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the wall time of a run on a busy machine says little on its own
    unchecked: dict[str, int] = field(default_factory=dict)  # emulators with no spec to check against

    @property
    def ok(self) -> bool:
        return all(t.valid == t.checked for t in self.tallies)

    def lines(self, limit: int = 8) -> list[str]:
        if not self.tallies and not self.unchecked:
            return []
        counts = ", ".join(
            f"{t.label} spec not found ({t.checked} not checked)"
            if t.missing
            else f"{t.label} {t.valid} valid / {t.checked}"
            for t in self.tallies
        )
        out = [f"emulator replies checked against specs: {counts or 'none'}"]
        notes = [
            f"{self.shapes} distinct reply shapes validated in {self.seconds:.1f} s ({self.cpu_seconds:.1f} s CPU)"
        ]
        outside = ", ".join(f"{t.label} {t.outside}" for t in self.tallies if t.outside)
        if outside:
            notes.append(f"not described by the specs (OAuth, gateway errors, pages): {outside}")
        if self.unchecked:
            notes.append("no spec: " + ", ".join(f"{k} {n}" for k, n in sorted(self.unchecked.items())))
        out.append("  (" + "; ".join(notes) + ")")
        problems = [p for t in self.tallies for p in t.problems]
        out += [f"  INVALID {p}" for p in problems[:limit]]
        if len(problems) > limit:
            out.append(f"  ... and {len(problems) - limit} more invalid reply shapes")
        return out


def _lines(folder: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for raw in fh:
                if raw.strip():
                    yield json.loads(raw)


def emulator_classes(keys: Iterable[str]) -> dict[str, type[Emulator]]:
    """The emulator class that answers for each key, found among the providers' emulator packages: one with a
    published spec (`spec_label`), or at least a declared error body (`error_schema`) its error replies meet."""
    keys = set(keys)
    from fieldhub.hub import registry
    from fieldhub.hub.emulator.core import Emulator

    known = {spec.key for spec in registry.all()}
    for key in keys:
        if key in known:
            registry.import_module(key, "emulator")
    found: dict[str, type[Emulator]] = {}
    pending: list[type[Emulator]] = [Emulator]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        checkable = getattr(cls, "spec_label", "") or getattr(cls, "error_schema", None)
        if checkable and cls.key in keys and cls.key not in found:
            found[cls.key] = cls
    return found


def check(folder: Path) -> Report:
    """Validate every recorded reply (one body per shape) and count them per provider."""
    started, cpu = time.monotonic(), time.process_time()
    groups: dict[str, dict[str, Any]] = {}
    for line in _lines(folder):
        group = groups.setdefault(line["h"], {"line": line, "count": 0})
        group["count"] += 1
        if "b" not in group["line"] and "b" in line:
            group["line"] = line
    classes = emulator_classes({g["line"]["k"] for g in groups.values()})
    tallies: dict[str, Tally] = {}
    unchecked: dict[str, int] = {}
    validated = 0
    for group in groups.values():
        line, count = group["line"], group["count"]
        cls = classes.get(line["k"])
        if cls is None:
            unchecked[line["k"]] = unchecked.get(line["k"], 0) + count
            continue
        tally = tallies.setdefault(cls.key, Tally(cls.spec_label or f"{cls.key} errors"))
        if line.get("o"):
            validated += 1  # judged: an OAuth reply, outside what the spec or the API's error body describes
            tally.outside += count
            continue
        if tally.missing:
            tally.checked += count
            continue
        try:
            problems = cls.spec_problems(line["m"], line["p"], line["s"], line.get("b", ""))
        except SpecMissing:
            tally.missing = True
            tally.checked += count
            continue
        validated += 1
        if problems is None:
            tally.outside += count
            continue
        tally.checked += count
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            tally.problems.append(
                f"{tally.label} {line['m']} {line['p']} -> {line['s']}: {problems[0]}{more} "
                f"[{count} {'reply' if count == 1 else 'replies'} of this shape]"
            )
        else:
            tally.valid += count
    return Report(
        sorted(tallies.values(), key=lambda t: t.label),
        shapes=validated,
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time() - cpu,
        unchecked=unchecked,
    )
