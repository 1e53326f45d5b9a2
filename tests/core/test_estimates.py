"""Estimates: totals and their rounding, numbering per business, status moves, tenancy, events."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import EstimateStatus
from fieldhub.core.events import DomainEventRow
from fieldhub.core.items.service import create_item, create_tax_rate

D = Decimal


def test_totals_round_half_up_once_on_the_taxable_sum():
    # 3 × 3.335 = 10.005 → 10.01 (half up); tax 8.25 % of the taxable 10.01 = 0.825825 → 0.83.
    t = estimates.compute_totals([(D("3"), D("3.335"), True), (D("1"), D("5.00"), False)], D("8.25"))
    assert t.amounts == [D("10.01"), D("5.00")]
    assert (t.subtotal, t.tax_total, t.total) == (D("15.01"), D("0.83"), D("15.84"))


def test_totals_half_cent_goes_up_not_to_even():
    # Banker's rounding would give 0.12; the stated rule is half up.
    t = estimates.compute_totals([(D("1"), D("1.25"), True)], D("10"))
    assert t.tax_total == D("0.13")


def test_no_rate_no_tax():
    t = estimates.compute_totals([(D("2"), D("10.00"), True)], None)
    assert (t.subtotal, t.tax_total, t.total) == (D("20.00"), D("0.00"), D("20.00"))


@pytest.fixture
async def setup(session, biz, other_biz):
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Ada Lovelace"})
    theirs = await create_customer(session, other_biz.tenant.id, {"display_name": "Not yours"})
    filter_item = await create_item(
        session, biz.tenant.id, {"name": "Water filter", "unit_price": "49.99", "taxable": True, "kind": "product"}
    )
    labour = await create_item(session, biz.tenant.id, {"name": "Labour (hour)", "unit_price": "95.00"})
    rate = await create_tax_rate(session, biz.tenant.id, {"name": "State", "rate": "8.25"})
    their_item = await create_item(session, other_biz.tenant.id, {"name": "Theirs", "unit_price": "1.00"})
    await session.commit()
    return {
        "customer": customer,
        "theirs": theirs,
        "filter": filter_item,
        "labour": labour,
        "rate": rate,
        "their_item": their_item,
    }


def _estimate(setup, **over):
    data = {
        "customer_id": setup["customer"].id,
        "tax_rate_id": setup["rate"].id,
        "lines": [
            {"item_id": setup["filter"].id, "quantity": "2"},
            {"item_id": setup["labour"].id, "quantity": "1.5"},
        ],
    }
    return {**data, **over}


async def test_create_fills_lines_from_items_and_totals(session, biz, setup):
    est = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    await session.commit()
    assert est.number == "EST-1001"
    assert est.status == EstimateStatus.DRAFT and est.version == 1
    assert [ln.description for ln in est.lines] == ["Water filter", "Labour (hour)"]
    assert [ln.amount for ln in est.lines] == [D("99.98"), D("142.50")]
    assert [ln.taxable for ln in est.lines] == [True, False]
    # Tax on the filter only: 99.98 × 8.25 % = 8.24835 → 8.25.
    assert (est.subtotal, est.tax_total, est.total) == (D("242.48"), D("8.25"), D("250.73"))
    assert est.issue_date is not None
    events = (await session.scalars(select(DomainEventRow).where(DomainEventRow.entity == "estimate"))).all()
    assert [(e.record_id, e.version, e.kind) for e in events] == [(est.id, 1, "created")]


async def test_numbers_count_up_per_business(session, biz, other_biz, setup):
    a1 = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    a2 = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    b1 = await estimates.create_estimate(
        session,
        other_biz.tenant.id,
        {
            "customer_id": setup["theirs"].id,
            "lines": [{"description": "Call-out", "quantity": "1", "unit_price": "80"}],
        },
    )
    assert (a1.number, a2.number, b1.number) == ("EST-1001", "EST-1002", "EST-1001")


async def test_validation_names_each_field_and_writes_nothing(session, biz, setup):
    bad = _estimate(
        setup,
        customer_id=setup["theirs"].id,
        lines=[
            {"item_id": setup["their_item"].id, "quantity": "1"},
            {"description": "Mystery work", "quantity": "1"},
        ],
    )
    with pytest.raises(ValidationFailed) as exc:
        await estimates.create_estimate(session, biz.tenant.id, bad)
    assert set(exc.value.errors) == {"customer_id", "lines.0.item_id", "lines.1.unit_price"}

    with pytest.raises(ValidationFailed) as exc:
        await estimates.create_estimate(
            session, biz.tenant.id, _estimate(setup, lines=[{"item_id": setup["labour"].id, "quantity": "0"}])
        )
    assert "lines.0.quantity" in exc.value.errors

    with pytest.raises(ValidationFailed) as exc:
        await estimates.create_estimate(session, biz.tenant.id, _estimate(setup, lines=[]))
    assert "lines" in exc.value.errors

    with pytest.raises(ValidationFailed) as exc:
        await estimates.create_estimate(
            session, biz.tenant.id, _estimate(setup, issue_date="2026-03-10", expires_on="2026-03-01")
        )
    assert "expires_on" in exc.value.errors
    page = await estimates.list_estimates(session, biz.tenant.id)
    assert page.total == 0


async def test_update_replaces_lines_and_bumps_version(session, biz, setup):
    est = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    await session.commit()
    same = await estimates.update_estimate(session, biz.tenant.id, est.id, {"memo": ""})
    assert same.version == 1  # nothing changed, nothing to sync
    est = await estimates.update_estimate(
        session,
        biz.tenant.id,
        est.id,
        {
            "memo": "Valid 30 days",
            "tax_rate_id": None,
            "lines": [{"description": "Flat fee", "quantity": "1", "unit_price": "300"}],
        },
    )
    await session.commit()
    assert est.version == 2 and est.memo == "Valid 30 days"
    assert [(ln.description, ln.amount) for ln in est.lines] == [("Flat fee", D("300.00"))]
    assert (est.subtotal, est.tax_total, est.total) == (D("300.00"), D("0.00"), D("300.00"))
    kinds = (
        await session.scalars(
            select(DomainEventRow.kind)
            .where(DomainEventRow.entity == "estimate", DomainEventRow.record_id == est.id)
            .order_by(DomainEventRow.id)
        )
    ).all()
    assert kinds == ["created", "updated"]


async def test_status_moves(session, biz, setup):
    est = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    with pytest.raises(ValidationFailed) as exc:
        await estimates.approve_estimate(session, biz.tenant.id, est.id)
    assert "status" in exc.value.errors
    est = await estimates.send_estimate(session, biz.tenant.id, est.id)
    assert est.status == EstimateStatus.SENT and est.version == 2
    est = await estimates.approve_estimate(session, biz.tenant.id, est.id)
    assert est.status == EstimateStatus.APPROVED and est.version == 3
    with pytest.raises(ValidationFailed):
        await estimates.decline_estimate(session, biz.tenant.id, est.id)
    with pytest.raises(ValidationFailed):
        await estimates.update_estimate(session, biz.tenant.id, est.id, {"memo": "too late"})

    other = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    await estimates.send_estimate(session, biz.tenant.id, other.id)
    other = await estimates.decline_estimate(session, biz.tenant.id, other.id)
    assert other.status == EstimateStatus.DECLINED
    await session.commit()
    kinds = (
        await session.scalars(
            select(DomainEventRow.kind)
            .where(DomainEventRow.entity == "estimate", DomainEventRow.record_id == est.id)
            .order_by(DomainEventRow.id)
        )
    ).all()
    assert kinds == ["created", "sent", "approved"]


async def test_another_business_cannot_see_or_touch(session, biz, other_biz, setup):
    est = await estimates.create_estimate(session, biz.tenant.id, _estimate(setup))
    await session.commit()
    for call in (estimates.get_estimate, estimates.send_estimate, estimates.approve_estimate):
        with pytest.raises(NotFound):
            await call(session, other_biz.tenant.id, est.id)
    with pytest.raises(NotFound):
        await estimates.update_estimate(session, other_biz.tenant.id, est.id, {"memo": "x"})
    assert (await estimates.list_estimates(session, other_biz.tenant.id)).total == 0


async def test_concurrent_creates_get_distinct_numbers(sessionmaker, biz, setup):
    async def one() -> str:
        async with sessionmaker() as s:
            est = await estimates.create_estimate(s, biz.tenant.id, _estimate(setup))
            await asyncio.sleep(0.05)  # widen the window between numbering and commit
            await s.commit()
            return est.number

    numbers = await asyncio.gather(*(one() for _ in range(4)))
    assert sorted(numbers) == ["EST-1001", "EST-1002", "EST-1003", "EST-1004"]
