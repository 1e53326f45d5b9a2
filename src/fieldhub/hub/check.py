"""`fieldhub check`: every provider keeps the folder contract, and shared code names no provider.

Like Home Assistant's hassfest: the reason many providers still look alike is a tool that says so.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fieldhub.hub import features
from fieldhub.hub import registry as registry_module
from fieldhub.hub.spec import AuthMode, Direction, ProviderSpec, SpecError

SRC_ROOT = Path(__file__).resolve().parents[1]  # src/fieldhub
REQUIRED_FILES = ("provider.toml", "__init__.py", "README.md")
README_SECTIONS = ("Register", "Limits", "Quirks")
CALLBACK_PATH = "/oauth/callback"
TEXT_SUFFIXES = {".html", ".js", ".css", ".jinja", ".txt"}
_WORD = re.compile(r"[A-Za-z0-9_]+")
# What implements a declared direction (the module the hub calls, its function, the tuple of entities beside it).
EXPORTERS, IMPORTERS = features.EXPORTERS, features.IMPORTERS


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    where: str
    message: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    providers: int = 0
    cards: int = 0
    files_scanned: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding("warning", where, message))


def _named_keys(text: str, keys: frozenset[str]) -> set[str]:
    """Provider keys appearing in text as a whole word or a whole _-separated part of one."""
    found: set[str] = set()
    for word in _WORD.findall(text):
        padded = f"_{word}_"
        found.update(k for k in keys if f"_{k}_" in padded)
    return found


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _names_in(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """(line, kind, text) for every identifier and non-docstring string literal in a module."""
    docstrings = _docstring_nodes(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield line, "string literal", node.value
        elif isinstance(node, ast.Name):
            yield line, "identifier", node.id
        elif isinstance(node, ast.Attribute):
            yield line, "identifier", node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, "identifier", node.name
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            yield line, "identifier", node.arg
        elif isinstance(node, ast.alias):
            yield line, "import", node.name + (f" as {node.asname}" if node.asname else "")
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, "import", node.module


def _rel(path: Path, src_root: Path) -> str:
    return str(path.relative_to(src_root.parent))


def _shared_files(src_root: Path) -> Iterator[Path]:
    """Every source file outside the provider folders (vendored static files excepted)."""
    providers_dir = src_root / "providers"
    for path in sorted(src_root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or "vendor" in path.relative_to(src_root).parts:
            continue
        if path.is_relative_to(providers_dir) and path.parent != providers_dir:
            continue  # inside a provider folder or _families/
        if path.suffix == ".py" or path.suffix in TEXT_SUFFIXES:
            yield path


def check_shared_code(src_root: Path, keys: frozenset[str], report: Report) -> None:
    for path in _shared_files(src_root):
        report.files_scanned += 1
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".py":
            try:
                tree = ast.parse(text, filename=str(path))
            except SyntaxError as e:
                report.error(_rel(path, src_root), f"does not parse: {e.msg} (line {e.lineno})")
                continue
            hits: Iterable[tuple[int, str, str]] = _names_in(tree)
        else:
            hits = ((n, "text", line) for n, line in enumerate(text.splitlines(), 1))
        for line, kind, value in hits:
            for key in sorted(_named_keys(value, keys)):
                report.error(
                    f"{_rel(path, src_root)}:{line}",
                    f"shared code names provider {key!r} ({kind}); providers are folders: "
                    "move this into providers/" + key + "/ or make it data in provider.toml",
                )


def _module_of(path: Path, src_root: Path) -> list[str]:
    rel = path.relative_to(src_root.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def check_provider_imports(src_root: Path, keys: frozenset[str], report: Report) -> None:
    package = [src_root.name, "providers"]
    for key in sorted(keys):
        folder = src_root / "providers" / key
        for path in sorted(folder.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as e:
                report.error(_rel(path, src_root), f"does not parse: {e.msg} (line {e.lineno})")
                continue
            here = _module_of(path, src_root)
            is_package = path.name == "__init__.py"
            for node in ast.walk(tree):
                targets: list[list[str]] = []
                if isinstance(node, ast.Import):
                    targets = [a.name.split(".") for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = here if is_package else here[:-1]
                        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    else:
                        base = []
                    module = base + (node.module.split(".") if node.module else [])
                    targets = [module + [a.name] for a in node.names]
                elif (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.startswith(".".join(package) + ".")
                ):
                    targets = [node.value.split(".")]
                for target in targets:
                    if target[:2] == package and len(target) > 2 and target[2] in keys and target[2] != key:
                        report.error(
                            f"{_rel(path, src_root)}:{getattr(node, 'lineno', 0)}",
                            f"provider {key!r} imports provider {target[2]!r}; share through hub/ or _families/",
                        )


def check_folders(src_root: Path, require_emulators: bool, report: Report) -> list[Path]:
    folders = registry_module.provider_folders(src_root / "providers")
    for folder in folders:
        where = _rel(folder, src_root)
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                report.error(where, f"missing {name}")
        if not (folder / "emulator" / "__init__.py").is_file():
            message = "missing emulator/ package (the provider's local stand-in)"
            if require_emulators:
                report.error(where, message)
            else:
                report.warn(where, message + "; required with --require-emulators")
        readme = folder / "README.md"
        if readme.is_file():
            lines = readme.read_text(encoding="utf-8").splitlines()
            headings = [ln[3:].strip() for ln in lines if ln.startswith("## ")]
            for section in README_SECTIONS:
                if not any(h.startswith(section) for h in headings):
                    report.error(_rel(readme, src_root), f"needs a '## {section}…' section")
    return folders


def check_specs(src_root: Path, report: Report) -> registry_module.Registry | None:
    try:
        reg = registry_module.load(src_root / "providers")
    except SpecError as e:
        report.error("provider.toml", str(e))
        return None
    report.providers = len(reg.providers)
    report.cards = len(reg.cards)
    icons_dir = src_root / "web" / "static" / "vendor" / "lucide"
    for spec in reg.providers.values():
        folder = src_root / "providers" / spec.key
        if not (icons_dir / f"{spec.icon}.svg").is_file():
            where = _rel(folder / "provider.toml", src_root)
            report.error(where, f"icon {spec.icon!r} is not vendored in {icons_dir.name}/")
        readme = folder / "README.md"
        if spec.auth.mode is AuthMode.OAUTH2 and readme.is_file() and CALLBACK_PATH not in readme.read_text("utf-8"):
            message = f"an OAuth provider's README must give the callback URL ({CALLBACK_PATH})"
            report.error(_rel(readme, src_root), message)
    for card in reg.cards:
        if not (icons_dir / f"{card.icon}.svg").is_file():
            report.error(f"card {card.key}", f"icon {card.icon!r} is not vendored in {icons_dir.name}/")
    return reg


def _implemented(folder: Path, where: str, modules: tuple[tuple[str, str, str], ...], report: Report) -> set[str]:
    """The entities a provider's modules handle (EXPORTS or IMPORTS beside the function the hub calls), as the
    pages read them (hub/features.py)."""
    found = features.handled(folder, modules)
    for module, message in found.problems:
        report.error(f"{where}/{module}.py", message)
    return set(found.entities)


def check_implementations(src_root: Path, reg: registry_module.Registry, report: Report) -> None:
    """Every direction a provider.toml declares (and does not mark planned) is built: a provider can't claim
    records it doesn't move. An export needs sync.py's create_adapter with the entity in EXPORTS; an import
    needs webhooks.py's handle or inbound.py's poll with the entity in IMPORTS."""
    for spec in reg.providers.values():
        folder = src_root / "providers" / spec.key
        where = _rel(folder, src_root)
        exports = _implemented(folder, where, EXPORTERS, report)
        imports = _implemented(folder, where, IMPORTERS, report)
        for name, entity in spec.entities.items():
            if entity.planned:
                # The pages read the code and the ledger the mark: they must agree, or "coming" would be wrong.
                if all(name in built for _, built, _ in _ways(spec, name, exports, imports)):
                    report.error(
                        f"{where}/provider.toml",
                        f"[entities.{name}] is marked planned = true but its code is there: drop planned",
                    )
                continue
            for way, built, how in _ways(spec, name, exports, imports):
                if name not in built:
                    report.error(
                        f"{where}/provider.toml",
                        f"[entities.{name}] declares direction = {entity.direction.value!r} but nothing {way} "
                        f"{name} records: {how}, or mark it planned = true",
                    )


def _ways(spec: ProviderSpec, name: str, exports: set[str], imports: set[str]) -> Iterator[tuple[str, set[str], str]]:
    direction = spec.entities[name].direction
    if direction in (Direction.EXPORT, Direction.BOTH):
        yield "sends", exports, f"add {name!r} to EXPORTS in sync.py beside create_adapter"
    if direction in (Direction.IMPORT, Direction.BOTH):
        yield "brings in", imports, f"add {name!r} to IMPORTS in webhooks.py (handle) or inbound.py (poll)"


def check_health_calls(src_root: Path, reg: registry_module.Registry, report: Report) -> None:
    """Every provider that signs in says how its health is checked when no sync traffic proves the grant (a
    toml [health] cheap call, hooks.check_health, or an API key's hooks.verify_key): without one, a grant
    revoked at the provider would read Connected and Excellent for ever (hub/connections/probe.py)."""
    for spec in reg.providers.values():
        if spec.auth.mode is AuthMode.NONE or features.of_spec(spec, src_root / "providers").checks_health:
            continue
        report.error(
            f"{_rel(src_root / 'providers' / spec.key, src_root)}/provider.toml",
            "declares no health check: add [health] url = a cheap authenticated call (userinfo, /me), "
            "or hooks.check_health",
        )


def run(src_root: Path = SRC_ROOT, require_emulators: bool = False) -> Report:
    report = Report()
    folders = check_folders(src_root, require_emulators, report)
    reg = check_specs(src_root, report)
    if reg is not None:
        check_implementations(src_root, reg, report)
        check_health_calls(src_root, reg, report)
    # Folder names are the keys, so the code rules hold even when a toml is broken.
    keys = frozenset(f.name for f in folders)
    check_shared_code(src_root, keys, report)
    check_provider_imports(src_root, keys, report)
    return report


def print_report(report: Report, console: object | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    out = console if isinstance(console, Console) else Console()
    if report.findings:
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("", no_wrap=True)
        table.add_column("where", style="cyan", overflow="fold")
        table.add_column("problem", overflow="fold")
        for f in sorted(report.findings, key=lambda f: (f.level != "error", f.where)):
            table.add_row("[red]error[/red]" if f.level == "error" else "[yellow]warning[/yellow]", f.where, f.message)
        out.print(table)
    summary = (
        f"{report.providers} providers, {report.cards} hub cards, {report.files_scanned} shared files scanned: "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
    )
    out.print(f"[green]✓ {summary}[/green]" if report.ok else f"[red]✗ {summary}[/red]")
