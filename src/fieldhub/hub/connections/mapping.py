"""Connection setup a provider may ask for before syncing: its account mapping and the customer sync direction.

A provider opts in with `providers/<key>/accounts.py` defining MAPPING_FIELDS and `list_accounts(env, conn)`.
Until the mapping is saved in connection.settings["account_mapping"], syncing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.spec import Direction
from fieldhub.hub.sync.status import synced_count

MAPPING_KEY = "account_mapping"
DIRECTION_KEY = "customer_direction"
ONE_WAY, TWO_WAY = "one_way", "two_way"
DIRECTIONS = (ONE_WAY, TWO_WAY)
# Records whose remote copy names accounts: remapping leaves the ones already synced where they are.
POSTED_ENTITIES = ("invoice", "payment", "deposit", "refund")


@dataclass(frozen=True)
class MappingField:
    key: str
    label: str
    help: str
    account_types: tuple[str, ...]
    # Words in an account's name that make it the likely choice, suggested while nothing is saved.
    suggest: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappedAccount:
    id: str
    name: str
    type: str
    number: str = ""

    @property
    def label(self) -> str:
        return f"{self.number} · {self.name}" if self.number else self.name


class MappingRequired(Exception):
    """Syncing is refused until the account mapping is saved."""

    def __init__(self, link: str) -> None:
        super().__init__("Choose which accounts to use before syncing.")
        self.link = link


def accounts_module(provider: str) -> ModuleType | None:
    module = registry.import_module(provider, "accounts")
    return module if module is not None and hasattr(module, "MAPPING_FIELDS") else None


async def live_accounts(env: Any, conn: Connection) -> list[Any]:
    """The provider's chart of accounts, read live (empty for a provider without account mapping)."""
    module = accounts_module(conn.provider)
    return [] if module is None else list(await module.list_accounts(env, conn))


def mapping_fields(provider: str) -> tuple[MappingField, ...]:
    module = accounts_module(provider)
    return tuple(module.MAPPING_FIELDS) if module else ()


def saved_mapping(conn: Connection) -> dict[str, str]:
    return dict((conn.settings or {}).get(MAPPING_KEY) or {})


def mapping_complete(conn: Connection) -> bool:
    """True when the provider needs no mapping, or every field of it is saved."""
    fields = mapping_fields(conn.provider)
    saved = saved_mapping(conn)
    return all(saved.get(f.key) for f in fields)


def mapping_link(conn: Connection) -> str:
    return f"/settings/integrations/{registry.get(conn.provider).card or conn.provider}/{conn.id}/mapping"


def require_mapping(conn: Connection) -> None:
    if not mapping_complete(conn):
        raise MappingRequired(mapping_link(conn))


def choices(fields: tuple[MappingField, ...], accounts: list[MappedAccount]) -> dict[str, list[MappedAccount]]:
    """For each field, only the accounts of the types it may land in."""
    return {f.key: [a for a in accounts if a.type in f.account_types] for f in fields}


def with_suggestions(
    fields: tuple[MappingField, ...], allowed: dict[str, list[MappedAccount]], chosen: dict[str, str]
) -> dict[str, str]:
    """`chosen`, plus for each field left empty the first allowed account whose name has one of its words."""
    result = dict(chosen)
    for f in fields:
        if result.get(f.key) or not f.suggest:
            continue
        for word in f.suggest:
            match = next((a for a in allowed.get(f.key, []) if word in a.name.lower()), None)
            if match is not None:
                result[f.key] = match.id
                break
    return result


class MappingInvalid(ValueError):
    pass


async def remap_impact(session: AsyncSession, conn: Connection, new: dict[str, str]) -> int:
    """How many synced records keep the old accounts if `new` replaces a different saved mapping (0: no change)."""
    old = saved_mapping(conn)
    # Choosing an account for a field that had none (one added later) moves nothing already synced.
    if not any(old.get(key) and old[key] != value for key, value in new.items()):
        return 0
    return await synced_count(session, conn.id, POSTED_ENTITIES)


def save_mapping(
    conn: Connection, fields: tuple[MappingField, ...], accounts: list[MappedAccount], chosen: dict[str, str]
) -> dict[str, str]:
    """Check every choice against the live chart (right type, still active) and store it on the connection."""
    allowed = choices(fields, accounts)
    mapping: dict[str, str] = {}
    for f in fields:
        value = (chosen.get(f.key) or "").strip()
        if not value:
            raise MappingInvalid(f"Choose an account for {f.label}.")
        if value not in {a.id for a in allowed[f.key]}:
            raise MappingInvalid(f"{f.label} must be an active {' or '.join(f.account_types)} account.")
        mapping[f.key] = value
    # A new dict: JSON columns only notice reassignment.
    conn.settings = {**(conn.settings or {}), MAPPING_KEY: mapping}
    return mapping


def offers_direction(conn: Connection) -> bool:
    """The customer direction is a choice only where the provider can sync customers both ways."""
    entity = registry.get(conn.provider).entities.get("customer")
    return entity is not None and entity.direction is Direction.BOTH


def customer_direction(conn: Connection) -> str:
    value = (conn.settings or {}).get(DIRECTION_KEY)
    return value if value in DIRECTIONS else ONE_WAY


def save_direction(conn: Connection, direction: str) -> None:
    if direction not in DIRECTIONS:
        raise MappingInvalid("Choose one-way or two-way.")
    conn.settings = {**(conn.settings or {}), DIRECTION_KEY: direction}
