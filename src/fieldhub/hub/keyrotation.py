"""Re-seal every stored secret with the ring's current key, online: small batches, compare-and-set per value."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fieldhub.hub.connections import service
from fieldhub.hub.connections.models import Connection, OAuthState
from fieldhub.hub.oauth.flow import verifier_aad
from fieldhub.hub.vault import DecryptError, Vault
from fieldhub.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SealedTable:
    """A table holding sealed columns, and how to rebuild the associated data its writers used."""

    model: type[Any]
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]  # what aad() reads besides the sealed values
    aad: Callable[[Any, str], dict[str, Any]]
    # A connection whose token won't open is paused for Reconnect, as when a worker meets it.
    pauses_connection: bool = False


SEALED = (
    SealedTable(Connection, service.SECRET_FIELDS, ("tenant_id",), service.secret_aad, pauses_connection=True),
    SealedTable(OAuthState, ("code_verifier",), ("tenant_id", "state_hash"), lambda row, _col: verifier_aad(row)),
)


@dataclass
class Failure:
    table: str
    row_id: int
    field: str
    reason: str


@dataclass
class RotationReport:
    total: int = 0
    rotated: int = 0
    current: int = 0
    # Rewritten by someone else (a token refresh) between our read and our write: already on the current key.
    changed_meanwhile: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def done(self) -> int:
        return self.rotated + self.current + self.changed_meanwhile + self.failed


Progress = Callable[[RotationReport], None]
BatchHook = Callable[[str, list[int]], Awaitable[None]]


async def count_sealed(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        total = 0
        for table in SEALED:
            for col in table.columns:
                total += await session.scalar(select(func.count(getattr(table.model, col)))) or 0
        return total


async def rotate_keys(
    sessionmaker: async_sessionmaker[AsyncSession],
    vault: Vault,
    *,
    batch_size: int = 200,
    progress: Progress | None = None,
    after_read: BatchHook | None = None,
) -> RotationReport:
    """Re-seal every value not on `vault.current_kid`. Safe to run while the service runs, and to re-run.

    `after_read(table, ids)` runs between reading a batch and writing it (tests use it to race a refresh).
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    report = RotationReport(total=await count_sealed(sessionmaker))
    for table in SEALED:
        model = table.model
        last_id = 0
        while True:
            # Each batch is its own short transaction: rows stay locked only for the batch's compare-and-sets.
            async with sessionmaker() as session, session.begin():
                selected = [model.id, *(getattr(model, c) for c in table.key_columns + table.columns)]
                rows = (
                    await session.execute(
                        select(*selected)
                        .where(model.id > last_id, or_(*(getattr(model, c).is_not(None) for c in table.columns)))
                        .order_by(model.id)
                        .limit(batch_size)
                    )
                ).all()
                if not rows:
                    break
                last_id = rows[-1].id
                if after_read is not None:
                    await after_read(model.__tablename__, [r.id for r in rows])
                for row in rows:
                    await _rotate_row(session, vault, table, row, report)
                    if progress is not None:
                        progress(report)
    log.info(
        "keys.rotated",
        kid=vault.current_kid,
        rotated=report.rotated,
        current=report.current,
        changed_meanwhile=report.changed_meanwhile,
        failed=report.failed,
    )
    return report


async def _rotate_row(
    session: AsyncSession, vault: Vault, table: SealedTable, row: Any, report: RotationReport
) -> None:
    model = table.model
    for col in table.columns:
        old = getattr(row, col)
        if old is None:
            continue
        try:
            new = vault.rotate_value(old, **table.aad(row, col))
        except DecryptError as error:
            report.failures.append(Failure(model.__tablename__, row.id, col, str(error)))
            await _unreadable(session, table, row.id, col, error)
            continue
        if new == old:
            report.current += 1
            continue
        column = getattr(model, col)
        result = await session.execute(
            update(model)
            .where(model.id == row.id, column == old)
            .values({col: new})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            report.rotated += 1
        else:
            # A refresh or a disconnect wrote this value after we read it; what it wrote is current, leave it.
            report.changed_meanwhile += 1


async def _unreadable(session: AsyncSession, table: SealedTable, row_id: int, col: str, error: DecryptError) -> None:
    log.error("keys.rotate.unreadable", table=table.model.__tablename__, row_id=row_id, field=col, error=str(error))
    if not table.pauses_connection:
        return
    conn = await session.get(table.model, row_id)
    if conn is not None:
        await service.unreadable_secret(session, conn, error)
        await session.flush()
