"""A run's counts, kept per entity as they are measured: the run row's totals and its sync_run_entities rows.

Every writer of sync runs (the export engine, a provider's inbound catch-up, a backfill) counts each
record's outcome here under the record's own entity, so an entity card on the sync page shows what
happened to its records, never the whole run's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub.sync.models import SyncRun, SyncRunEntity

KINDS = ("created", "updated", "deleted", "failed", "linked")
# What a record's outcome is counted as: a void or a delete takes the amount out of the books.
ACTION_KINDS = {"created": "created", "updated": "updated", "voided": "deleted", "deleted": "deleted"}


def kind_of(action: str) -> str:
    """The count an outcome's action goes to (anything else an adapter reports changed the record)."""
    return ACTION_KINDS.get(action, "updated")


@dataclass
class EntityCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    linked: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.deleted + self.failed + self.linked


class RunCounts:
    """Counts by entity and kind for one run, and the rows that keep them once `write` has run."""

    def __init__(self) -> None:
        self.entities: dict[str, EntityCounts] = {}
        self._rows: dict[str, SyncRunEntity] = {}

    def add(self, entity: str, kind: str, n: int = 1) -> None:
        counts = self.entities.get(entity)
        if counts is None:
            counts = self.entities[entity] = EntityCounts()
        setattr(counts, kind, getattr(counts, kind) + n)

    def total(self, kind: str) -> int:
        return sum(getattr(c, kind) for c in self.entities.values())

    @property
    def created(self) -> int:
        return self.total("created")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def deleted(self) -> int:
        return self.total("deleted")

    @property
    def failed(self) -> int:
        return self.total("failed")

    @property
    def changed(self) -> int:
        """Records that landed: created, updated or deleted."""
        return self.created + self.updated + self.deleted

    def snapshot(self) -> dict[str, EntityCounts]:
        return {entity: replace(counts) for entity, counts in self.entities.items()}

    def restore(self, snapshot: dict[str, EntityCounts]) -> None:
        """Back to a snapshot: what a rolled-back savepoint undid is not counted."""
        self.entities = {entity: replace(counts) for entity, counts in snapshot.items()}

    def write(self, session: AsyncSession, run: SyncRun) -> None:
        """The run's totals and one row per entity it did something to, brought up to date (the caller
        commits). Called again for a run still going, it updates the same rows."""
        run.created, run.updated, run.deleted, run.failed = self.created, self.updated, self.deleted, self.failed
        for entity, counts in self.entities.items():
            row = self._rows.get(entity)
            if row is None:
                if not counts.total:
                    continue
                row = self._rows[entity] = SyncRunEntity(run_id=run.id, entity=entity, connection_id=run.connection_id)
                session.add(row)
            for f in fields(EntityCounts):
                setattr(row, f.name, getattr(counts, f.name))
