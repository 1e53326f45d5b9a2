"""Customer, item and tax-rate services: validation, versions and events, tenancy, search."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fieldhub.core.customers import service as customers
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import DomainEventRow
from fieldhub.core.items import service as items


async def test_customer_versions_and_events(session, biz):
    tid = biz.tenant.id
    c = await customers.create_customer(session, tid, {"display_name": "  Ada  ", "email": "ADA@Example.com"})
    assert (c.display_name, c.version) == ("Ada", 1)
    await customers.update_customer(session, tid, c.id, {"phone": "555-0100"})
    await customers.update_customer(session, tid, c.id, {"phone": "555-0100"})  # no change, no write
    await customers.deactivate_customer(session, tid, c.id)
    await session.commit()
    assert (c.phone, c.active, c.version) == ("555-0100", False, 3)
    events = (await session.scalars(select(DomainEventRow).order_by(DomainEventRow.id))).all()
    assert [(e.entity, e.kind, e.version) for e in events] == [
        ("customer", "created", 1),
        ("customer", "updated", 2),
        ("customer", "deactivated", 3),
    ]
    assert events[1].data["changed"] == ["phone"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"display_name": ""}, "display_name"),
        ({"display_name": "A", "email": "no-at-sign"}, "email"),
        ({"display_name": "A", "phone": "1" * 41}, "phone"),
        ({"display_name": "A", "notes": "x" * 10_000_000}, "notes"),
        ({"display_name": "A", "billing_country": "U1"}, "billing_country"),
    ],
)
async def test_customer_validation(session, biz, data, field):
    with pytest.raises(ValidationFailed) as exc:
        await customers.create_customer(session, biz.tenant.id, data)
    assert field in exc.value.errors
    assert len(exc.value.errors[field]) < 200


async def test_update_validates_the_whole_and_changes_nothing_on_error(session, biz):
    c = await customers.create_customer(session, biz.tenant.id, {"display_name": "Ada"})
    with pytest.raises(ValidationFailed):
        await customers.update_customer(session, biz.tenant.id, c.id, {"display_name": "B", "email": "bad@"})
    assert (c.display_name, c.version) == ("Ada", 1)


async def test_tenancy_and_search(session, biz, other_biz):
    mine = await customers.create_customer(session, biz.tenant.id, {"display_name": "100% Plumbing"})
    await customers.create_customer(session, biz.tenant.id, {"display_name": "Other Co", "email": "x@plumb.example"})
    theirs = await customers.create_customer(session, other_biz.tenant.id, {"display_name": "Plumbing B"})
    with pytest.raises(NotFound):
        await customers.get_customer(session, biz.tenant.id, theirs.id)
    with pytest.raises(NotFound):
        await customers.update_customer(session, biz.tenant.id, theirs.id, {"display_name": "x"})
    page = await customers.list_customers(session, biz.tenant.id, q="plumb")
    assert page.total == 2 and theirs.id not in [c.id for c in page.items]
    assert [c.id for c in (await customers.list_customers(session, biz.tenant.id, q="100%")).items] == [mine.id]
    assert (await customers.list_customers(session, biz.tenant.id, q="0_")).total == 0


async def test_items_and_tax_rates(session, biz, other_biz):
    tid = biz.tenant.id
    item = await items.create_item(session, tid, {"name": "Filter", "unit_price": "19.99", "kind": "product"})
    await items.update_item(session, tid, item.id, {"unit_price": "21"})
    assert (str(item.unit_price), item.version) == ("21.00", 2)
    with pytest.raises(ValidationFailed) as exc:
        await items.create_item(session, tid, {"name": "x", "unit_price": "1.999"})
    assert "unit_price" in exc.value.errors
    rate = await items.create_tax_rate(session, tid, {"name": "State", "rate": "8.25"})
    with pytest.raises(ValidationFailed):
        await items.create_tax_rate(session, tid, {"name": "Bad", "rate": "101"})
    with pytest.raises(NotFound):
        await items.get_tax_rate(session, other_biz.tenant.id, rate.id)
    with pytest.raises(NotFound):
        await items.get_item(session, other_biz.tenant.id, item.id)
    await session.commit()
    kinds = [(e.entity, e.kind) for e in (await session.scalars(select(DomainEventRow))).all()]
    assert kinds == [("item", "created"), ("item", "updated"), ("tax_rate", "created")]
