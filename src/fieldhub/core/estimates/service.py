"""Estimates: the only writer of the estimates and estimate_lines tables, scoped to one tenant."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.estimates.models import Estimate, EstimateLine, EstimateStatus
from fieldhub.core.estimates.schemas import HEADER_FIELDS, EstimateIn
from fieldhub.core.events import record_event
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.money import ZERO, format_money, to_money
from fieldhub.core.paging import Page, paginate
from fieldhub.core.validation import MAX_AMOUNT, parse

NUMBER_PREFIX = "EST-"
FIRST_NUMBER = 1001
# Which status each action needs, and what it leads to.
TRANSITIONS: dict[str, tuple[set[EstimateStatus], EstimateStatus]] = {
    "sent": ({EstimateStatus.DRAFT}, EstimateStatus.SENT),
    "approved": ({EstimateStatus.SENT}, EstimateStatus.APPROVED),
    "declined": ({EstimateStatus.SENT}, EstimateStatus.DECLINED),
}
EDITABLE = {EstimateStatus.DRAFT, EstimateStatus.SENT}


@dataclass(frozen=True)
class Totals:
    amounts: list[Decimal]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


def compute_totals(lines: Sequence[tuple[Decimal, Decimal, bool]], rate_percent: Decimal | None) -> Totals:
    """(quantity, unit price, taxable) per line → amounts and totals.

    Rounding, stated: each line amount is rounded half-up to cents; tax is computed once on the sum of
    the taxable line amounts and rounded half-up to cents (not per line, which would drift by pennies).
    """
    with localcontext() as exact:
        # Wide enough that no product is rounded before the one stated rounding.
        exact.prec = 60
        amounts = [to_money(quantity * price) for quantity, price, _ in lines]
        subtotal = sum(amounts, ZERO)
        taxable = sum((a for a, (_, _, tx) in zip(amounts, lines, strict=True) if tx), ZERO)
        tax = to_money(taxable * rate_percent / Decimal(100)) if rate_percent else ZERO
    return Totals(amounts=amounts, subtotal=subtotal, tax_total=tax, total=subtotal + tax)


async def _emit(session: AsyncSession, estimate: Estimate, kind: str) -> None:
    data = {"number": estimate.number, "status": str(estimate.status), "total": str(estimate.total)}
    await record_event(session, "estimate", estimate, kind, data)


async def _today(session: AsyncSession, tenant_id: int) -> date:
    tz = await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    return datetime.now(ZoneInfo(tz or "UTC")).date()


async def _lock_tenant(session: AsyncSession, tenant_id: int) -> None:
    # Writing the row's own value takes a row lock on PostgreSQL and the write lock on SQLite, held until
    # commit: two estimates created at once for one business get their numbers one after the other.
    await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(updated_at=Tenant.updated_at))


async def _next_number(session: AsyncSession, tenant_id: int) -> str:
    """One more than the largest EST- number so far. Call with the tenant locked."""
    numbers = await session.scalars(
        select(Estimate.number).where(Estimate.tenant_id == tenant_id, Estimate.number.startswith(NUMBER_PREFIX))
    )
    used = [int(m.group(1)) for n in numbers if (m := re.fullmatch(rf"{NUMBER_PREFIX}(\d+)", n))]
    return f"{NUMBER_PREFIX}{max(used, default=FIRST_NUMBER - 1) + 1}"


async def _resolve(session: AsyncSession, tenant_id: int, values: EstimateIn) -> tuple[TaxRate | None, list[dict]]:
    """Check every reference belongs to this tenant; fill lines from their items. Errors name the field."""
    errors: dict[str, str] = {}
    customer = await session.scalar(
        select(Customer).where(Customer.id == values.customer_id, Customer.tenant_id == tenant_id)
    )
    if customer is None:
        errors["customer_id"] = "Choose a customer from the list."
    rate = None
    if values.tax_rate_id is not None:
        rate = await session.scalar(
            select(TaxRate).where(TaxRate.id == values.tax_rate_id, TaxRate.tenant_id == tenant_id)
        )
        if rate is None:
            errors["tax_rate_id"] = "Choose a tax rate from the list."
    if values.issue_date and values.expires_on and values.expires_on < values.issue_date:
        errors["expires_on"] = "Can't expire before it is issued."
    item_ids = {line.item_id for line in values.lines if line.item_id is not None}
    items = {
        i.id: i for i in await session.scalars(select(Item).where(Item.tenant_id == tenant_id, Item.id.in_(item_ids)))
    }
    lines = []
    figures: list[tuple[Decimal, Decimal, bool]] = []
    for n, line in enumerate(values.lines):
        item = items.get(line.item_id) if line.item_id is not None else None
        if line.item_id is not None and item is None:
            errors[f"lines.{n}.item_id"] = "Choose an item from the list."
            continue
        price = line.unit_price if line.unit_price is not None else (item.unit_price if item else None)
        if price is None:
            errors[f"lines.{n}.unit_price"] = "Enter a price for a line without an item."
            continue
        taxable = line.taxable if line.taxable is not None else bool(item and item.taxable)
        figures.append((line.quantity, price, taxable))
        lines.append(
            {
                "item_id": line.item_id,
                "description": line.description or (item.name if item else ""),
                "quantity": line.quantity,
                "unit_price": price,
                "taxable": taxable,
            }
        )
    if errors:
        raise ValidationFailed(errors)
    totals = compute_totals(figures, rate.rate if rate else None)
    if totals.total > MAX_AMOUNT:
        # Each amount was in bounds, but quantity × price over the lines can still pass what the columns hold.
        raise ValidationFailed.one("lines", f"The estimate comes to more than {format_money(MAX_AMOUNT)}.")
    return rate, lines


def _apply(estimate: Estimate, values: EstimateIn, rate: TaxRate | None, lines: list[dict]) -> None:
    totals = compute_totals(
        [(ln["quantity"], ln["unit_price"], ln["taxable"]) for ln in lines], rate.rate if rate else None
    )
    estimate.customer_id = values.customer_id
    assert values.issue_date is not None  # filled by the caller before _apply
    estimate.issue_date = values.issue_date
    estimate.expires_on = values.expires_on
    estimate.tax_rate_id = values.tax_rate_id
    estimate.memo = values.memo
    estimate.notes = values.notes
    estimate.lines = [
        EstimateLine(position=n, amount=amount, **ln)
        for n, (ln, amount) in enumerate(zip(lines, totals.amounts, strict=True))
    ]
    estimate.subtotal = totals.subtotal
    estimate.tax_total = totals.tax_total
    estimate.total = totals.total


async def create_estimate(session: AsyncSession, tenant_id: int, data: EstimateIn | Mapping[str, Any]) -> Estimate:
    values = parse(EstimateIn, data)
    rate, lines = await _resolve(session, tenant_id, values)
    if values.issue_date is None:
        values.issue_date = await _today(session, tenant_id)
    await _lock_tenant(session, tenant_id)
    estimate = Estimate(
        tenant_id=tenant_id, version=1, number=await _next_number(session, tenant_id), status=EstimateStatus.DRAFT
    )
    _apply(estimate, values, rate, lines)
    session.add(estimate)
    await session.flush()
    await _emit(session, estimate, "created")
    return estimate


async def get_estimate(session: AsyncSession, tenant_id: int, estimate_id: int) -> Estimate:
    estimate = await session.scalar(select(Estimate).where(Estimate.id == estimate_id, Estimate.tenant_id == tenant_id))
    if estimate is None:
        raise NotFound("estimate", estimate_id)
    return estimate


def current_values(estimate: Estimate) -> dict[str, Any]:
    """The estimate as an EstimateIn-shaped dict: what an edit form starts from and an update merges over."""
    return {
        **{f: getattr(estimate, f) for f in HEADER_FIELDS},
        "lines": [
            {
                "item_id": ln.item_id,
                "description": ln.description,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
                "taxable": ln.taxable,
            }
            for ln in estimate.lines
        ],
    }


async def update_estimate(
    session: AsyncSession, tenant_id: int, estimate_id: int, data: EstimateIn | Mapping[str, Any]
) -> Estimate:
    """Fields left out keep their value; `lines`, when given, replaces every line."""
    estimate = await get_estimate(session, tenant_id, estimate_id)
    if estimate.status not in EDITABLE:
        raise ValidationFailed.one("status", f"An {estimate.status} estimate can't be changed.")
    given = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)
    values = parse(EstimateIn, {**current_values(estimate), **given})
    rate, lines = await _resolve(session, tenant_id, values)
    if values.issue_date is None:
        values.issue_date = estimate.issue_date
    proposed = {**{f: getattr(values, f) for f in HEADER_FIELDS}, "lines": lines}
    if proposed == current_values(estimate):
        # Nothing changed: keep the version, so sync has nothing to do.
        return estimate
    _apply(estimate, values, rate, lines)
    estimate.version += 1
    await session.flush()
    await _emit(session, estimate, "updated")
    return estimate


async def _transition(session: AsyncSession, tenant_id: int, estimate_id: int, kind: str) -> Estimate:
    estimate = await get_estimate(session, tenant_id, estimate_id)
    allowed, target = TRANSITIONS[kind]
    if estimate.status not in allowed:
        need = " or ".join(sorted(str(s) for s in allowed))
        raise ValidationFailed.one("status", f"Only a {need} estimate can be {kind}; this one is {estimate.status}.")
    estimate.status = target
    estimate.version += 1
    await session.flush()
    await _emit(session, estimate, kind)
    return estimate


async def send_estimate(session: AsyncSession, tenant_id: int, estimate_id: int) -> Estimate:
    return await _transition(session, tenant_id, estimate_id, "sent")


async def approve_estimate(session: AsyncSession, tenant_id: int, estimate_id: int) -> Estimate:
    return await _transition(session, tenant_id, estimate_id, "approved")


async def decline_estimate(session: AsyncSession, tenant_id: int, estimate_id: int) -> Estimate:
    return await _transition(session, tenant_id, estimate_id, "declined")


async def list_estimates(
    session: AsyncSession,
    tenant_id: int,
    *,
    q: str = "",
    status: EstimateStatus | None = None,
    customer_id: int | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Estimate]:
    query = select(Estimate).join(Estimate.customer).where(Estimate.tenant_id == tenant_id)
    q = q.strip()[:200]
    if q:
        query = query.where(
            or_(Estimate.number.icontains(q, autoescape=True), Customer.display_name.icontains(q, autoescape=True))
        )
    if status is not None:
        query = query.where(Estimate.status == status)
    if customer_id is not None:
        query = query.where(Estimate.customer_id == customer_id)
    return await paginate(session, query.order_by(Estimate.id.desc()), page, per_page)


async def estimate_pdf(session: AsyncSession, tenant_id: int, estimate_id: int) -> tuple[str, bytes]:
    """The estimate as a PDF (core/estimates/pdf.py) and its file name."""
    from fieldhub.core.estimates.pdf import EstimateDocument, render_estimate_pdf

    estimate = await get_estimate(session, tenant_id, estimate_id)
    tenant = await session.get_one(Tenant, tenant_id)
    label = "Tax"
    if estimate.tax_rate_id is not None:
        rate = await session.get(TaxRate, estimate.tax_rate_id)
        if rate is not None:
            label = f"{rate.name} ({rate.rate.normalize():f} %)"
    pdf = render_estimate_pdf(EstimateDocument(estimate=estimate, tenant=tenant, tax_label=label))
    return f"Estimate {estimate.number}.pdf", pdf
