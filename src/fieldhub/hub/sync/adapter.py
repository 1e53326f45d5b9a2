"""The interface the sync engine drives: one adapter per connection, from `providers/<key>/sync.py`.

A provider that exports records ships `sync.py` with `create_adapter(connection, client, settings)`
returning an object that satisfies `Adapter`, and may define `classify(response)` (the ProviderClient
hook that turns its error bodies into the four error kinds). The engine owns everything stateful —
which rows are due, the idempotency key committed before a create, the ledger and history writes —
so an adapter only translates one record into requests and the reply into a `PushResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from fieldhub.hub import registry
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.sync.models import Operation


@dataclass
class PushItem:
    """One ledger row's work, with the local record the engine loaded for it.

    `refs` holds the remote ids of the records this one points at (("customer", 7) -> "58"); the
    engine only hands over an item once every dependency has one. `idempotency_key` is already
    committed to the ledger when the item reaches the adapter. `settling` says a create with this key
    was sent before and its outcome is unknown.
    """

    ledger_id: int
    entity: str
    local_id: int
    operation: Operation
    record: Any
    local_version: int
    remote_id: str | None = None
    remote_version: str | None = None
    idempotency_key: str | None = None
    settling: bool = False
    sent_at: datetime | None = None  # when this create was first sent (for find_existing)
    refs: Mapping[tuple[str, int], str] = field(default_factory=dict)
    # Local records this one needs to be described (an invoice's tax rate, a payment's invoice).
    related: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_create(self) -> bool:
        return self.operation == Operation.UPSERT and not self.remote_id


@dataclass
class PushResult:
    remote_id: str
    remote_version: str | None
    action: str  # created | updated | voided | deleted
    sent: dict[str, Any] | None = None
    received: dict[str, Any] | None = None
    # The provider's last-modified time of the object as this write left it (QBO MetaData.LastUpdatedTime),
    # and the other objects the write changed there at that moment as (entity, remote id): a QBO payment
    # touches the invoices it pays. The ledger keeps both so a webhook echoing them costs no read.
    remote_updated_at: datetime | None = None
    touched: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class Adapter(Protocol):
    # Largest number of records one batch request may carry; 0 when the provider has no batch API.
    batch_size: int

    async def prepare(self) -> None:
        """Check the connection can sync at all (e.g. accounts mapped); raise Rejected to refuse the run."""

    async def push(self, item: PushItem) -> PushResult:
        """Send one record; raise one of the four error kinds when it can't go."""

    async def push_batch(self, items: Sequence[PushItem]) -> list[PushResult | ProviderError]:
        """Send several records in one request: one result or error per item, in order."""

    async def find_existing(self, item: PushItem) -> PushResult | None:
        """An uncertain create: the remote record if it already exists (found by the marker the adapter writes)."""


def create_adapter(connection: Any, client: Any, settings: Any) -> Adapter | None:
    """The provider's adapter for this connection, or None when it ships no `sync.py`."""
    module = registry.import_module(connection.provider, "sync")
    if module is None:
        return None
    adapter: Adapter = module.create_adapter(connection, client, settings)
    return adapter


def classifier(provider: str) -> Any:
    module = registry.import_module(provider, "sync")
    return getattr(module, "classify", None) if module is not None else None
