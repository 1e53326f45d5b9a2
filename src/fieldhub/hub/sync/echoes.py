"""Echoes: notifications of fieldhub's own writes, told apart from the ledger alone, before anything is read.

A provider notifies every change to an object, fieldhub's own included: each invoice the engine creates in
QuickBooks comes back as a webhook ("Invoice 145 was created") a second later, and each payment it creates as
an Update of the invoice it pays. A notification carries only ids and a time, so telling the echo from a
bookkeeper's edit used to cost a read of the object, from the same per-company budget (QBO: 500 requests a
minute) the backlog's batches need, and under the connection's lease: after a crash with a backlog of 1,500
records, the echoes of the catch-up's own creates took most of its five minutes (issue 14 item 5).

The ledger knows what fieldhub wrote: each row keeps the object's remote id, its version (QBO's SyncToken) and
when the provider last changed it by fieldhub's hand (`remote_updated_at`: the write's reply, or a side effect
the adapter names, such as a payment touching its invoice). A notice about that object is an echo when

- it carries a version, and that is the version fieldhub wrote; or
- its time is older than what fieldhub wrote (the write that followed supersedes it: fieldhub owns those
  fields, and a customer's newest edit wins); or
- its time is the same second, it carries no version (webhooks: their time has whole seconds only) and it
  is not a void (fieldhub's write in that second was a create or an update: a void there is someone else's).

Deletes and merges are never echoes here (they cost no read anyway). A bookkeeper's edit within the very
second of fieldhub's write is dropped from the webhook, and the change-data catch-up, whose objects carry
their version, brings it: the catch-up is the net under every webhook.

A notice about an object the ledger does not know yet may still be ours: a create sent and not yet confirmed
(its key is committed before it goes, its reply lost to a crash). `screen` calls such a notice `uncertain`
while the connection has unconfirmed creates of that entity sent before the notice's time; the caller leaves
it for later (the inbox's sweep), by when the engine has settled the creates and the notice is an echo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub.sync.models import LedgerRow, LedgerState

NEVER_ECHOES = ("delete", "merge")
# A void within the second of fieldhub's last write is read: it takes an amount out of the books, and fieldhub
# voids rarely (a create or an update in that second is the echo; a payment's Update of its invoice too).
ONLY_OLDER = ("void",)
# Our clock (when a create was sent) against the provider's (when it says the object changed).
CLOCK_SKEW = timedelta(seconds=5)
_LEDGER = cast(Table, LedgerRow.__table__)


@dataclass(frozen=True)
class Notice:
    """One change a provider notified, in the ledger's words."""

    entity: str  # the ledger's entity (customer, invoice, payment)
    remote_id: str
    operation: str = ""  # the provider's word: Create, Update, Void, Delete, Merge
    version: str | None = None  # the object's version when the notice carries it (a CDC object's SyncToken)
    at: datetime | None = None  # when the provider says the object changed (aware)


@dataclass
class Screened:
    echoes: list[Notice] = field(default_factory=list)  # drop: fieldhub's own writes
    uncertain: list[Notice] = field(default_factory=list)  # maybe ours: a create not yet confirmed
    rest: list[Notice] = field(default_factory=list)  # not known to be ours (uncertain ones included)


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def is_echo(notice: Notice, version: str | None, updated_at: datetime | None) -> bool:
    """Whether `notice` is about a change no newer than the one the ledger's row says fieldhub made."""
    if notice.operation.lower() in NEVER_ECHOES:
        return False
    if notice.version is not None and version is not None and notice.version == version:
        return True
    if notice.at is None or updated_at is None:
        return False
    theirs, ours = _second(notice.at), _second(updated_at)
    same_second = notice.version is None and notice.operation.lower() not in ONLY_OLDER
    return theirs < ours or (theirs == ours and same_second)


async def screen(session: AsyncSession, connection_id: int, notices: list[Notice]) -> Screened:
    """Sort one connection's notices into echoes, uncertain ones and the rest: two indexed queries, no request."""
    found = Screened()
    if not notices:
        return found
    known: dict[tuple[str, str], list[tuple[str | None, datetime | None]]] = {}
    ids = sorted({n.remote_id for n in notices})
    entities = sorted({n.entity for n in notices})
    for start in range(0, len(ids), 500):
        found_rows = await session.execute(
            select(_LEDGER.c.entity, _LEDGER.c.remote_id, _LEDGER.c.remote_version, _LEDGER.c.remote_updated_at).where(
                _LEDGER.c.connection_id == connection_id,
                _LEDGER.c.entity.in_(entities),
                _LEDGER.c.remote_id.in_(ids[start : start + 500]),
            )
        )
        for entity, remote_id, version, updated_at in found_rows:
            known.setdefault((entity, remote_id), []).append((version, updated_at))
    unknown = [n for n in notices if (n.entity, n.remote_id) not in known]
    in_flight: dict[str, datetime] = {}
    if unknown:
        # Served by ix_sync_ledger_due (connection, state, ...): a create in flight is a pending row with a key.
        in_flight = {
            str(entity): sent
            for entity, sent in await session.execute(
                select(_LEDGER.c.entity, func.min(_LEDGER.c.sent_at))
                .where(
                    _LEDGER.c.connection_id == connection_id,
                    _LEDGER.c.state == LedgerState.PENDING,
                    _LEDGER.c.entity.in_(sorted({n.entity for n in unknown})),
                    _LEDGER.c.idempotency_key.is_not(None),
                    _LEDGER.c.remote_id.is_(None),
                )
                .group_by(_LEDGER.c.entity)
            )
            if sent is not None
        }
    for notice in notices:
        rows = known.get((notice.entity, notice.remote_id))
        if rows and any(is_echo(notice, version, at) for version, at in rows):
            found.echoes.append(notice)
            continue
        found.rest.append(notice)
        sent = in_flight.get(notice.entity)
        if rows is None and sent is not None and (notice.at is None or sent <= notice.at + CLOCK_SKEW):
            found.uncertain.append(notice)
    return found
