"""What each provider really does today, read from the code in its folder: pages and `fieldhub check` ask here.

A provider.toml says what a provider is meant to keep in step (`[entities.*]` and their direction). Whether it
does is a matter of code, found where the hub calls it: records go out through an export adapter (`sync.py`
defining `create_adapter`, which the engine drives, with the entities it sends in `EXPORTS`), and come in
through a poll (`inbound.py`'s `poll`, run by the dispatcher) or a webhook handler (`webhooks.py`'s `handle`,
run from the inbox), with the entities they bring in in `IMPORTS`. A declared direction with no such code is
coming, not working: the toml marks it `planned = true` (no ledger work is collected for it), `fieldhub check`
holds the mark and the code to each other both ways, and no page shows a sync dashboard or a run for it.
There is no list of what works: a flag turns true when the code that does the work is added to the folder.

A capability that is not a sync (e-signatures: an estimate sent for signature) is done by the provider module
named after its kind (`providers/<key>/esign.py`), which says in `DOES` what it does, in words for the pages.

The code is read (its top-level names), not imported, so `fieldhub check` can ask the same of any tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from fieldhub.hub import registry
from fieldhub.hub.spec import AuthMode, Direction, ProviderSpec

Way = Literal["export", "import"]

# What moves records, by way: the module the hub calls, the function it calls there, and the module-level
# tuple naming the entities it handles (a literal, or built from a dict's keys such as REMOTE).
EXPORTERS = (("sync", "create_adapter", "EXPORTS"),)
IMPORTERS = (("webhooks", "handle", "IMPORTS"), ("inbound", "poll", "IMPORTS"))
# How a connection's health is checked when no sync traffic proves it (hub/connections/probe.py): the
# provider's own hook, the cheap call its toml declares ([health]), or, for an API key, the hook that
# verified the key at connect.
HEALTH_HOOK = ("hooks", "check_health")
KEY_HOOK = ("hooks", "verify_key")
# Names listed on a hub card before "and N more".
CARD_NAMES = 3


def plural(entity: str) -> str:
    """An entity key as the records a business owner thinks of: tax_rate -> "Tax rates", review_reply -> "Review
    replies"."""
    words = entity.replace("_", " ")
    if words.endswith("y") and words[-2:-1] not in "aeiou":
        return words[:-1].capitalize() + "ies"
    return words.capitalize() + ("es" if words.endswith(("s", "x")) else "s")


def _listed(names: list[str], limit: int | None = None) -> str:
    """ "a, b and c" (lower case after the first word's own case), cut to `limit` names and "N more"."""
    shown = names if limit is None or len(names) <= limit + 1 else names[:limit] + [f"{len(names) - limit} more"]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


@cache
def _parsed(path: Path, stamp: tuple[int, int]) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError:
        return None  # `fieldhub check` reports it (check_provider_imports)


def module_tree(folder: Path, name: str) -> ast.Module | None:
    """A provider module's syntax tree (a .py file or a package), or None if it is missing or does not parse.

    Read again when the file changes (its size and mtime are part of the cache key): `fieldhub check` and the
    tests ask about trees they write."""
    for path in (folder / f"{name}.py", folder / name / "__init__.py"):
        if path.is_file():
            info = path.stat()
            return _parsed(path, (info.st_mtime_ns, info.st_size))
    return None


def top_level(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level names: functions and classes, and the value of each plain assignment."""
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


def names_in(node: ast.AST | None, scope: dict[str, ast.AST], depth: int = 0) -> set[str] | None:
    """The strings a module-level collection holds, read without importing it; None if it can't be read."""
    if node is None or depth > 5:
        return None
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return set(values) if len(values) == len(node.elts) else None
    if isinstance(node, ast.Dict):
        keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        return set(keys) if len(keys) == len(node.keys) else None
    if isinstance(node, ast.Name):
        return names_in(scope.get(node.id), scope, depth + 1)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("tuple", "frozenset", "set", "list")
        and len(node.args) == 1
    ):
        return names_in(node.args[0], scope, depth + 1)
    return None


def defines(folder: Path, module: str, function: str) -> bool:
    """Whether the provider folder's `module` defines `function` at its top level."""
    tree = module_tree(folder, module)
    return tree is not None and isinstance(top_level(tree).get(function), ast.FunctionDef | ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Handled:
    """The entities a provider's code moves one way, and what is wrong with how it says so ((module, message))."""

    entities: frozenset[str]
    problems: tuple[tuple[str, str], ...] = ()


def handled(folder: Path, hooks: tuple[tuple[str, str, str], ...]) -> Handled:
    """The entities named in EXPORTS (or IMPORTS) beside the function the hub calls, across the given modules."""
    entities: set[str] = set()
    problems: list[tuple[str, str]] = []
    for module, function, declared in hooks:
        tree = module_tree(folder, module)
        if tree is None:
            continue
        scope = top_level(tree)
        if declared not in scope:
            continue
        names = names_in(scope[declared], scope)
        if names is None:
            problems.append((module, f"{declared} must be a tuple of entity names (or a dict's keys)"))
        elif not isinstance(scope.get(function), ast.FunctionDef | ast.AsyncFunctionDef):
            problems.append((module, f"names {declared} but has no {function}() for the hub to call"))
        else:
            entities |= names
    return Handled(frozenset(entities), tuple(problems))


@dataclass(frozen=True)
class Flow:
    """One way one kind of record travels: declared in the toml, live when the code for it is in the folder."""

    entity: str
    remote: str
    way: Way
    live: bool

    @property
    def label(self) -> str:
        return plural(self.entity)


@dataclass(frozen=True)
class Features:
    spec: ProviderSpec
    flows: tuple[Flow, ...]
    checks_health: bool
    does: tuple[str, ...] = ()  # what its capability module does (its DOES), beside any sync

    @property
    def live(self) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if f.live)

    @property
    def coming(self) -> tuple[Flow, ...]:
        return tuple(f for f in self.flows if not f.live)

    @property
    def sends(self) -> tuple[str, ...]:
        """Entities the export adapter really sends, in toml order."""
        return tuple(f.entity for f in self.live if f.way == "export")

    @property
    def receives(self) -> tuple[str, ...]:
        return tuple(f.entity for f in self.live if f.way == "import")

    @property
    def syncs(self) -> bool:
        """Records go out through the engine: the sync dashboard, Auto-Sync and the run history mean something."""
        return bool(self.sends)

    def exports(self, entity: str) -> bool:
        return entity in self.sends

    @staticmethod
    def names(flows: tuple[Flow, ...]) -> list[str]:
        """The kinds of records some flows carry, lower case, each once, in order."""
        seen: list[str] = []
        for flow in flows:
            if flow.label.lower() not in seen:
                seen.append(flow.label.lower())
        return seen

    def flow_words(self, flow: Flow) -> str:
        """ "Reviews from Google Business Profile", "Jobs to Google Calendar"."""
        return f"{flow.label} {'to' if flow.way == 'export' else 'from'} {self.spec.name}"

    def lines(self, flows: tuple[Flow, ...]) -> list[tuple[str, str]]:
        """(entity, words) per kind of record among `flows`: a two-way one is one line ("Customers both ways with
        Xero"), a one-way one says which way."""
        ways: dict[str, list[Flow]] = {}
        for flow in flows:
            ways.setdefault(flow.entity, []).append(flow)
        return [
            (
                entity,
                f"{group[0].label} both ways with {self.spec.name}" if len(group) > 1 else self.flow_words(group[0]),
            )
            for entity, group in ways.items()
        ]

    @property
    def coming_note(self) -> str:
        """What is declared but not built, as a clause: "syncing reviews and review replies arrives in a coming
        release" (empty when everything declared works)."""
        names = self.names(self.coming)
        return f"syncing {_listed(names, CARD_NAMES)} arrives in a coming release" if names else ""

    @property
    def now_line(self) -> str:
        """What works today, in a few words for the hub card."""
        names = self.names(self.live)
        if names:
            return f"Syncs {_listed(names, CARD_NAMES)}."
        if self.does:
            return self.does[0] + "."
        checked = " and key checks" if self.spec.auth.mode is AuthMode.API_KEY else " and health checks"
        return "Connect" + (checked if self.checks_health else "") + "."


def _flows(spec: ProviderSpec, folder: Path) -> tuple[Flow, ...]:
    sends = handled(folder, EXPORTERS).entities
    brings = handled(folder, IMPORTERS).entities
    flows = []
    for name, entity in spec.entities.items():
        if entity.direction in (Direction.EXPORT, Direction.BOTH):
            flows.append(Flow(name, entity.remote, "export", name in sends))
        if entity.direction in (Direction.IMPORT, Direction.BOTH):
            flows.append(Flow(name, entity.remote, "import", name in brings))
    return tuple(flows)


def _checks_health(spec: ProviderSpec, folder: Path) -> bool:
    if defines(folder, *HEALTH_HOOK):
        return True
    if spec.auth.mode is AuthMode.OAUTH2:
        return spec.health is not None
    if spec.auth.mode is AuthMode.API_KEY:
        return spec.health is not None or defines(folder, *KEY_HOOK)
    return False


def _does(spec: ProviderSpec, folder: Path) -> tuple[str, ...]:
    """The DOES of the provider's capability module (`<category>.py`), when it defines functions to call."""
    tree = module_tree(folder, str(spec.category))
    if tree is None:
        return ()
    scope = top_level(tree)
    node = scope.get("DOES")
    if not isinstance(node, ast.Tuple | ast.List):
        return ()
    if not any(isinstance(v, ast.FunctionDef | ast.AsyncFunctionDef) for v in scope.values()):
        return ()
    return tuple(e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))


def of_spec(spec: ProviderSpec, root: Path) -> Features:
    """A provider's features from its spec and the code in `root`/<key>/ (any tree: `fieldhub check` passes its own)."""
    folder = root / spec.key
    return Features(spec, _flows(spec, folder), _checks_health(spec, folder), _does(spec, folder))


@cache
def get(key: str) -> Features:
    """The installed provider's features, read once per process."""
    reg = registry.registry()
    return of_spec(reg.get(key), reg.root)


def card_now_line(card: registry.HubCard) -> str:
    """What a hub card's providers do today, in one short line ("Works now: …"; "Coming: …" when nothing syncs yet).

    A grouped card (Calendar, Accounting) folds its providers': what any of them syncs, else what all can do.
    """
    found = [get(p.key) for p in card.providers]
    live = Features.names(tuple(flow for f in found for flow in f.live))
    syncing = [f for f in found if f.live]
    if live and len(syncing) < len(found):
        # Some of the card's providers sync, others not yet: name which, so no provider is credited with another's
        # sync ("Works now: Xero syncs customers, … Coming: FreshBooks and Wave.").
        who = _listed([f.spec.name for f in syncing])
        rest = _listed([f.spec.name for f in found if not f.live])
        verb = "syncs" if len(syncing) == 1 else "sync"
        return f"Works now: {who} {verb} {_listed(live, CARD_NAMES)}. Coming: {rest}."
    if live:
        return f"Works now: syncs {_listed(live, CARD_NAMES)}."
    does = [f.does[0] for f in found if f.does]
    if does and len(does) == len(found) and len(set(does)) == 1:
        return f"Works now: {does[0][0].lower()}{does[0][1:]}."
    lines = {f.now_line for f in found}
    line = lines.pop() if len(lines) == 1 else "Connect and health checks."
    coming = Features.names(tuple(flow for f in found for flow in f.coming))
    return f"Works now: {line[0].lower()}{line[1:]}" + (f" Coming: {_listed(coming, CARD_NAMES)}." if coming else "")
