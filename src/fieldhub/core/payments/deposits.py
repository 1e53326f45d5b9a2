"""Bank deposits: the only writer of deposits and deposit_lines; one deposit per (source, source id), never twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.errors import ValidationFailed
from fieldhub.core.events import DomainEvent, emit
from fieldhub.core.money import ZERO
from fieldhub.core.payments.models import Deposit, DepositLine, DepositLineKind


@dataclass(frozen=True)
class DepositLineIn:
    kind: DepositLineKind
    amount: Decimal  # signed: what this movement adds to the deposit
    payment_id: int | None = None
    refund_id: int | None = None
    source_id: str = ""
    description: str = ""


async def find_deposit(session: AsyncSession, tenant_id: int, source: str, source_id: str) -> Deposit | None:
    return await session.scalar(
        select(Deposit).where(Deposit.tenant_id == tenant_id, Deposit.source == source, Deposit.source_id == source_id)
    )


async def record_deposit(
    session: AsyncSession,
    tenant_id: int,
    *,
    source: str,
    source_id: str,
    net: Decimal,
    arrival_date: date,
    lines: Sequence[DepositLineIn],
    currency: str = "USD",
) -> Deposit:
    """Record what landed in the bank and what it is made of; an already recorded (source, id) is returned as is.

    The lines must sum to `net` exactly: a deposit that doesn't add up would put a wrong number in the
    books, so it is refused rather than patched with a balancing line.
    """
    existing = await find_deposit(session, tenant_id, source, source_id)
    if existing is not None:
        return existing
    total = sum((line.amount for line in lines), ZERO)
    if total != net:
        raise ValidationFailed.one("lines", f"The deposit's lines add up to {total}, not to the {net} that arrived.")
    gross = sum((ln.amount for ln in lines if ln.kind == DepositLineKind.PAYMENT), ZERO)
    fees = -sum((ln.amount for ln in lines if ln.kind == DepositLineKind.FEE), ZERO)
    refunds = -sum((ln.amount for ln in lines if ln.kind == DepositLineKind.REFUND), ZERO)
    deposit = Deposit(
        tenant_id=tenant_id,
        version=1,
        source=source,
        source_id=source_id,
        currency=currency.upper(),
        gross=gross,
        fees=fees,
        refunds=refunds,
        adjustments=net - gross + fees + refunds,
        net=net,
        arrival_date=arrival_date,
        lines=[
            DepositLine(
                position=i,
                kind=ln.kind,
                amount=ln.amount,
                payment_id=ln.payment_id,
                refund_id=ln.refund_id,
                source_id=ln.source_id,
                description=ln.description[:300],
            )
            for i, ln in enumerate(lines)
        ],
    )
    session.add(deposit)
    await session.flush()
    await emit(
        session,
        DomainEvent(
            tenant_id=tenant_id,
            entity="deposit",
            record_id=deposit.id,
            version=deposit.version,
            kind="created",
            data={"net": str(net), "arrival_date": arrival_date.isoformat(), "source": source, "status": "paid"},
        ),
    )
    return deposit


async def list_deposits(session: AsyncSession, tenant_id: int) -> list[Deposit]:
    rows = await session.scalars(
        select(Deposit).where(Deposit.tenant_id == tenant_id).order_by(Deposit.arrival_date.desc(), Deposit.id.desc())
    )
    return list(rows)
