"""The provider registry: finds providers/*/provider.toml, validates them, merges family auth, loads once.

There is no list of providers anywhere: a folder under src/fieldhub/providers/ with a provider.toml is a
provider. Folders starting with "_" are not (`_families/` holds shared auth servers).
"""

from __future__ import annotations

import builtins
import importlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from pydantic import ValidationError

import fieldhub.capabilities as capabilities_package
import fieldhub.providers as providers_package
from fieldhub.hub.spec import FamilySpec, ProviderSpec, SettingsCategory, SpecError, tint

PROVIDERS_DIR = Path(providers_package.__file__).parent
CAPABILITIES_DIR = Path(capabilities_package.__file__).parent
FAMILIES_DIR = "_families"
ICON_TINT = 0.15  # the icon box shows the brand colour at this opacity behind the icon


class UnknownProvider(LookupError):
    pass


@dataclass(frozen=True)
class HubCard:
    """One card on the Integrations hub; it may group several providers (Calendar: Google and Outlook)."""

    key: str
    title: str
    description: str
    icon: str
    colour: str
    order: int
    providers: tuple[ProviderSpec, ...]

    @property
    def background(self) -> str:
        return tint(self.colour, ICON_TINT)


@dataclass(frozen=True)
class Registry:
    root: Path
    providers: Mapping[str, ProviderSpec]  # in hub order
    cards: tuple[HubCard, ...]  # in hub order
    families: Mapping[str, FamilySpec]

    def get(self, key: str) -> ProviderSpec:
        try:
            return self.providers[key]
        except KeyError:
            raise UnknownProvider(f"no provider {key!r} (no {self.root.name}/{key}/provider.toml)") from None

    def card(self, key: str) -> HubCard:
        for card in self.cards:
            if card.key == key:
                return card
        raise UnknownProvider(f"no hub card {key!r}")

    def in_settings_category(self, category: SettingsCategory) -> tuple[ProviderSpec, ...]:
        return tuple(p for p in self.providers.values() if p.settings_category == category)


def _where(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def _read_toml(path: Path, root: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{_where(path, root)}: not valid TOML: {e}") from None


def _explain(error: ValidationError, path: Path, root: Path) -> SpecError:
    lines = []
    for e in error.errors():
        where = ".".join(str(part) for part in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return SpecError(f"{_where(path, root)}: " + "; ".join(lines))


def _load_families(root: Path) -> dict[str, tuple[FamilySpec, dict[str, Any]]]:
    found: dict[str, tuple[FamilySpec, dict[str, Any]]] = {}
    folder = root / FAMILIES_DIR
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.toml")):
        raw = _read_toml(path, root)
        try:
            family = FamilySpec.model_validate(raw)
        except ValidationError as e:
            raise _explain(e, path, root) from None
        if family.auth.family is not None:
            raise SpecError(f"{_where(path, root)}: auth.family: a family cannot itself name a family")
        found[path.stem] = (family, raw["auth"])
    return found


def _merge_family(raw: dict[str, Any], families: Mapping[str, tuple[FamilySpec, dict[str, Any]]], where: str) -> None:
    """The family's [auth] is the base; the provider's keys win, and extra_authorize_params merge key by key."""
    auth = raw.get("auth")
    if not isinstance(auth, dict) or not auth.get("family"):
        return
    name = auth["family"]
    if name not in families:
        raise SpecError(f"{where}: auth.family: unknown family {name!r} (no {FAMILIES_DIR}/{name}.toml)")
    merged = dict(families[name][1])
    for field, value in auth.items():
        if field == "extra_authorize_params" and isinstance(value, dict):
            merged[field] = {**merged.get(field, {}), **value}
        else:
            merged[field] = value
    raw["auth"] = merged


def _build_cards(specs: list[ProviderSpec], root: Path) -> tuple[HubCard, ...]:
    grouped: dict[str, list[ProviderSpec]] = {}
    for spec in specs:
        if spec.card is not None:
            grouped.setdefault(spec.card, []).append(spec)
    cards = []
    for key, members in grouped.items():
        members.sort(key=lambda s: (s.hub_order, s.key))
        lead = members[0]
        for other in members[1:]:
            if other.hub_card is not None:
                raise SpecError(
                    f"{root.name}/{other.key}/provider.toml: hub_card: only the card's lead provider "
                    f"({lead.key}, lowest hub_order) may describe card {key!r}"
                )
        over = lead.hub_card
        if len(members) > 1 and (over is None or over.title is None or over.description is None):
            raise SpecError(
                f"{root.name}/{lead.key}/provider.toml: hub_card: card {key!r} groups several providers, "
                "so its lead provider must give [hub_card] title and description"
            )
        cards.append(
            HubCard(
                key=key,
                title=(over and over.title) or lead.name,
                description=(over and over.description) or lead.description,
                icon=(over and over.icon) or lead.icon,
                colour=(over and over.colour) or lead.brand_color,
                order=lead.hub_order,
                providers=tuple(members),
            )
        )
    cards.sort(key=lambda c: (c.order, c.key))
    return tuple(cards)


def provider_folders(root: Path = PROVIDERS_DIR) -> list[Path]:
    """Every provider folder: a directory under root whose name doesn't start with '_' or '.'."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def load(root: Path = PROVIDERS_DIR) -> Registry:
    """Read and validate every provider under root; raises SpecError naming the file and field."""
    families = _load_families(root)
    specs: list[ProviderSpec] = []
    for folder in provider_folders(root):
        path = folder / "provider.toml"
        if not path.is_file():
            raise SpecError(f"{_where(folder, root)}: a provider folder needs a provider.toml")
        raw = _read_toml(path, root)
        _merge_family(raw, families, _where(path, root))
        try:
            spec = ProviderSpec.model_validate(raw)
        except ValidationError as e:
            raise _explain(e, path, root) from None
        if spec.key != folder.name:
            raise SpecError(f"{_where(path, root)}: key: {spec.key!r} must equal the folder name {folder.name!r}")
        specs.append(spec)
    specs.sort(key=lambda s: (s.hub_order, s.key))
    return Registry(
        root=root,
        providers=MappingProxyType({s.key: s for s in specs}),
        cards=_build_cards(specs, root),
        families=MappingProxyType({name: fam for name, (fam, _) in families.items()}),
    )


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The installed providers, read once per process."""
    return load()


def get(key: str) -> ProviderSpec:
    return registry().get(key)


def all() -> tuple[ProviderSpec, ...]:  # noqa: A001 - the registry's natural verb
    return builtins.tuple(registry().providers.values())


def cards() -> tuple[HubCard, ...]:
    return registry().cards


def import_module(key: str, name: str) -> ModuleType | None:
    """A provider's optional module by file name (hooks, mapping, webhooks, emulator...), or None if absent."""
    if not name.isidentifier():
        raise ValueError(f"not a module name: {name!r}")
    spec = get(key)
    folder = registry().root / spec.key
    if not ((folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()):
        return None
    return importlib.import_module(f"{providers_package.__name__}.{spec.key}.{name}")


def providers_of(capability: str) -> tuple[ProviderSpec, ...]:
    """The providers of one kind (their toml's `category`), in hub order."""
    return builtins.tuple(p for p in all() if p.category == capability)


def capability_names() -> list[str]:
    """Every capability package under src/fieldhub/capabilities/ (a folder with an __init__.py), by name."""
    return sorted(
        folder.name
        for folder in CAPABILITIES_DIR.iterdir()
        if folder.is_dir() and not folder.name.startswith("_") and (folder / "__init__.py").is_file()
    )


def capability_module(capability: str, name: str) -> ModuleType | None:
    """A capability's optional module by file name (routes, tasks, ...), or None if absent. Found by folder,
    so hub/ reaches a capability's routes and periodic tasks without importing it by name."""
    if not (capability.isidentifier() and name.isidentifier()):
        raise ValueError(f"not a module name: {capability!r}.{name!r}")
    folder = CAPABILITIES_DIR / capability
    if not ((folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()):
        return None
    return importlib.import_module(f"{capabilities_package.__name__}.{capability}.{name}")


def capability_listeners() -> list[Any]:
    """Each capability's domain-event listener (`capabilities/<kind>/listeners.py`: `on_domain_event`), found by
    folder: subscribed at start by the app and by `fieldhub worker`, beside the hub's own."""
    found = []
    for capability in capability_names():
        module = capability_module(capability, "listeners")
        if module is not None and hasattr(module, "on_domain_event"):
            found.append(module.on_domain_event)
    return found
