"""What the sync pages show, in words: entity cards, history rows (idle runs folded), why a record waits.

Shared by every provider's sync dashboard (templates/sync/): the figures come from hub/sync/status, measured;
this module only words and groups them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fieldhub.hub.sync.engine import ORDER
from fieldhub.hub.sync.models import LedgerRow, RunStatus, SyncRun, SyncRunEntity
from fieldhub.hub.sync.status import EntityStatus, Wait, Waiting

SAME_MOMENT = timedelta(minutes=1)
TRIGGERS = {
    "backfill": "backfill",
    "retry": "retry",
    "webhook": "change in the provider",
    "schedule": "catch-up",
    "resume": "resume after a restart",
}


def plural(entity: str, n: int = 2) -> str:
    words = entity.replace("_", " ")
    if n == 1:
        return words
    return words[:-1] + "ies" if words.endswith("y") and words[-2:-1] not in "aeiou" else words + "s"


def entity_label(entity: str) -> str:
    """'invoice' -> 'Invoices': an entity card's title."""
    return plural(entity).capitalize()


# ----------------------------------------------------------------------------- entity cards


@dataclass(frozen=True)
class EntityCard:
    key: str
    label: str
    tone: str  # the badge's colour, from the ledger's state now
    badge: str
    last_sync_at: datetime | None  # the newest run that covered this entity
    created: int
    updated: int
    failed: int
    counted_at: datetime | None  # the run the counts are from, when it is not the last sync
    notes: tuple[str, ...]  # what else that run did to this entity (matched, voided) and what ran it
    synced: int


def entity_card(status: EntityStatus) -> EntityCard:
    """One entity's card: its ledger state now, and its own counts in the newest run that did something to it."""
    runs = [r for r in (status.last_run, status.changed_in) if r is not None]
    last = max(runs, key=lambda r: (r.started_at, r.id), default=None)
    changes = status.changes
    if status.failed:
        tone, badge = "red", f"{status.failed:,} failed"
    elif status.pending:
        tone, badge = "yellow", f"{status.pending:,} pending"
    elif status.synced:
        tone, badge = "green", "In step"
    else:
        tone, badge = "grey", "Nothing yet"
    notes: list[str] = []
    if changes is not None:
        if changes.linked:
            notes.append(f"{changes.linked:,} matched to records already there")
        if changes.deleted:
            notes.append(f"{changes.deleted:,} voided or deleted")
    changed_in = status.changed_in
    if changed_in is not None and changed_in.trigger in TRIGGERS:
        notes.append(f"by {TRIGGERS[changed_in.trigger]}")
    # Said only when the counts are from an earlier run than the last sync shown (a minute or more before it).
    counted_at = None
    if changed_in is not None and last is not None and last.started_at - changed_in.started_at >= SAME_MOMENT:
        counted_at = changed_in.started_at
    return EntityCard(
        key=status.entity,
        label=entity_label(status.entity),
        tone=tone,
        badge=badge,
        last_sync_at=last.started_at if last is not None else None,
        created=changes.created if changes else 0,
        updated=changes.updated if changes else 0,
        failed=changes.failed if changes else 0,
        counted_at=counted_at,
        notes=tuple(notes),
        synced=status.synced,
    )


# ----------------------------------------------------------------------------- history


@dataclass
class HistoryRow:
    run: SyncRun
    parts: list[SyncRunEntity]
    kind = "run"

    @property
    def idle(self) -> bool:
        """A run that found nothing to do and said nothing: folded with its neighbours."""
        r = self.run
        return (
            r.status == RunStatus.SUCCESS
            and not (r.created or r.updated or r.deleted or r.failed)
            and not r.errors
            and not any(p.linked for p in self.parts)
        )

    @property
    def records(self) -> str:
        """Which records the run touched, and how many of each."""
        if self.parts:
            parts = sorted(
                self.parts, key=lambda p: (ORDER.index(p.entity) if p.entity in ORDER else len(ORDER), p.entity)
            )
            totals = [(p.entity, p.created + p.updated + p.deleted + p.failed + p.linked) for p in parts]
            return ", ".join(f"{n:,} {plural(entity, n)}" for entity, n in totals)
        r = self.run
        if r.entity:
            return entity_label(r.entity)
        if r.created or r.updated or r.deleted or r.failed:
            return "All"  # from before runs were counted per entity
        return "None"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [e if isinstance(e, dict) else {"reason": str(e)} for e in (self.run.errors or [])]

    @property
    def message_kind(self) -> str:
        """A run that succeeded carries notes (a change left alone on purpose), never errors."""
        return "note" if self.run.status == RunStatus.SUCCESS else "error"


@dataclass
class Fold:
    """Consecutive runs that had nothing to do, shown as one row."""

    rows: list[HistoryRow] = field(default_factory=list)
    kind = "fold"

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def newest(self) -> datetime:
        return self.rows[0].run.started_at

    @property
    def oldest(self) -> datetime:
        return self.rows[-1].run.started_at

    def span(self, tz: str) -> str:
        """When its runs happened: 'Dec 7, 9:00 AM–10:05 AM' within a day, else both dates."""
        zone = ZoneInfo(tz)
        old, new = self.oldest.astimezone(zone), self.newest.astimezone(zone)
        if self.count == 1 or f"{old:%b %-d %H:%M}" == f"{new:%b %-d %H:%M}":
            return f"{new:%b %-d, %-I:%M %p}"
        if old.date() == new.date():
            return f"{old:%b %-d, %-I:%M %p}–{new:%-I:%M %p}"
        return f"{old:%b %-d, %-I:%M %p} – {new:%b %-d, %-I:%M %p}"


def history_rows(runs: list[SyncRun], parts: dict[int, list[SyncRunEntity]], limit: int | None = None) -> list[Any]:
    """Runs newest first as table rows, each stretch of idle runs folded into one; at most `limit` rows."""
    out: list[HistoryRow | Fold] = []
    for run in runs:
        row = HistoryRow(run, parts.get(run.id, []))
        if row.idle:
            if out and isinstance(out[-1], Fold):
                out[-1].rows.append(row)
            else:
                out.append(Fold([row]))
        else:
            out.append(row)
    return out[:limit] if limit is not None else out


# ----------------------------------------------------------------------------- why a record waits


def _when(moment: datetime | None, tz: str, now: datetime) -> str:
    if moment is None:
        return ""
    local, today = moment.astimezone(ZoneInfo(tz)), now.astimezone(ZoneInfo(tz))
    return f"{local:%-I:%M %p}" if local.date() == today.date() else f"{local:%b %-d, %-I:%M %p}"


def waiting_words(waiting: Waiting, provider: str, labels: dict[int, str], tz: str, now: datetime) -> str:
    """A pending record's reason to wait, in plain words; `labels` names ledger rows (its dependencies)."""
    until = _when(waiting.until, tz, now)
    w = waiting.wait
    if w is Wait.RECONNECT:
        return f"Needs reconnect: {provider} stopped accepting fieldhub's access. Syncing resumes after Reconnect."
    if w is Wait.INACTIVE:
        return "The connection is not active: nothing is sent."
    if w is Wait.MAPPING:
        return "Waits for the field mapping: nothing is sent until the accounts are chosen."
    if w is Wait.SENDING:
        return f"Sent at {until}; confirming that {provider} has it (it is never created twice)."
    if w is Wait.DEPENDENCY:
        parts = []
        for row, entity, local_id in waiting.on:
            name = labels.get(row.id) if row is not None else None
            what = f"its {plural(entity, 1)} “{name}”" if name else f"its {plural(entity, 1)} #{local_id}"
            parts.append(_dependency(what, row))
        return "Waiting on " + "; and on ".join(parts) + (f" Next look at {until}." if until else "")
    if w is Wait.BACKOFF:
        detail = waiting.detail.rstrip(".")
        return f"Backing off after an error{': ' + detail if detail else ''}. Next try at {until}."
    if w is Wait.RATE_LIMIT:
        return f"{provider} asked fieldhub to slow down (its rate limit). Next try at {until}."
    if w is Wait.SCHEDULED:
        return f"Next try at {until}."
    if w is Wait.AUTO_SYNC_OFF:
        return "Auto-Sync is off: it goes with the next Sync Now."
    return "Due now: it goes out with the next run, in seconds."


def _dependency(what: str, row: LedgerRow | None) -> str:
    if row is not None and row.state == "failed":
        reason = (row.error_reason or "it was refused").rstrip(".")
        return f"{what}, which failed to sync: {reason}. Fix that first."
    return f"{what}, which has to sync first."
