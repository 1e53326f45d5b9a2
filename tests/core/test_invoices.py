"""Invoice service: totals, numbering, status rules, payments and refunds, tenancy, events."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.conftest import Business

from fieldhub.core.customers.service import create_customer, deactivate_customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import DomainEventRow
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.service import create_item, create_tax_rate
from fieldhub.core.payments.models import Payment

D = Decimal


async def _setup(session: AsyncSession, biz: Business):
    tid = biz.tenant.id
    customer = await create_customer(session, tid, {"display_name": "Ada Lovelace", "email": "ada@example.com"})
    labor = await create_item(session, tid, {"name": "Labor", "unit_price": "95.00", "taxable": False})
    part = await create_item(session, tid, {"name": "Filter", "unit_price": "19.99", "taxable": True})
    rate = await create_tax_rate(session, tid, {"name": "State", "rate": "8.25"})
    await session.commit()
    return customer, labor, part, rate


async def _invoice(session, biz, customer, lines, **kw):
    invoice = await invoices.create_invoice(session, biz.tenant.id, {"customer_id": customer.id, "lines": lines, **kw})
    await session.commit()
    return invoice


async def test_totals_with_line_and_invoice_discount_and_pro_rata_tax(session, biz):
    customer, labor, part, rate = await _setup(session, biz)
    invoice = await _invoice(
        session,
        biz,
        customer,
        [
            {"item_id": labor.id, "quantity": "2"},  # 190.00, not taxable
            {"item_id": part.id, "quantity": "3", "discount_amount": "4.97"},  # 59.97 - 4.97 = 55.00, taxable
        ],
        discount_amount="24.50",
        tax_rate_id=rate.id,
    )
    assert [line.amount for line in invoice.lines] == [D("190.00"), D("55.00")]
    assert invoice.subtotal == D("245.00")
    # taxable share after the pro-rata discount: 55 × (245 − 24.50) / 245 = 49.50; × 8.25 % = 4.08375 → 4.08
    assert invoice.tax_total == D("4.08")
    assert invoice.total == D("245.00") - D("24.50") + D("4.08")
    assert invoice.balance == invoice.total
    assert invoice.number == "INV-1001"
    assert invoice.status == InvoiceStatus.DRAFT
    assert invoice.version == 1
    assert invoice.lines[0].description == "Labor"


async def test_half_cent_rounds_up(session, biz):
    customer, *_ = await _setup(session, biz)
    invoice = await _invoice(session, biz, customer, [{"description": "x", "quantity": "0.5", "unit_price": "0.25"}])
    assert invoice.lines[0].amount == D("0.13")  # 0.125 half-up


async def test_numbers_increment_per_tenant(session, biz, other_biz):
    customer, *_ = await _setup(session, biz)
    other = await create_customer(session, other_biz.tenant.id, {"display_name": "Other"})
    line = [{"description": "Work", "unit_price": "10"}]
    a1 = await _invoice(session, biz, customer, line)
    a2 = await _invoice(session, biz, customer, line)
    b1 = await _invoice(session, other_biz, other, line)
    assert (a1.number, a2.number, b1.number) == ("INV-1001", "INV-1002", "INV-1001")


async def test_concurrent_creates_get_distinct_numbers(sessionmaker, biz):
    async with sessionmaker() as s:
        customer = await create_customer(s, biz.tenant.id, {"display_name": "C"})
        await s.commit()

    async def one() -> str:
        async with sessionmaker() as s:
            inv = await invoices.create_invoice(
                s, biz.tenant.id, {"customer_id": customer.id, "lines": [{"description": "w", "unit_price": "1"}]}
            )
            await asyncio.sleep(0.01)  # hold the transaction open while the others wait
            await s.commit()
            return inv.number

    numbers = await asyncio.gather(*(one() for _ in range(6)))
    assert sorted(numbers) == [f"INV-{1001 + i}" for i in range(6)]


async def test_validation_collects_field_errors_and_writes_nothing(session, biz, other_biz):
    customer, *_ = await _setup(session, biz)
    foreign = await create_customer(session, other_biz.tenant.id, {"display_name": "Not yours"})
    await session.commit()
    with pytest.raises(ValidationFailed) as exc:
        await invoices.create_invoice(
            session,
            biz.tenant.id,
            {"customer_id": foreign.id, "lines": [{"description": "x", "quantity": "-1", "unit_price": "5"}]},
        )
    assert exc.value.errors["lines.0.quantity"] == "Can't be negative."
    with pytest.raises(ValidationFailed) as exc:
        await invoices.create_invoice(
            session, biz.tenant.id, {"customer_id": foreign.id, "lines": [{"description": "x", "unit_price": "5"}]}
        )
    assert "customer_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        await invoices.create_invoice(
            session,
            biz.tenant.id,
            {"customer_id": customer.id, "discount_amount": "6", "lines": [{"description": "x", "unit_price": "5"}]},
        )
    assert "discount_amount" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        await invoices.create_invoice(
            session,
            biz.tenant.id,
            {"customer_id": customer.id, "lines": [{"description": "x", "unit_price": "5", "discount_amount": "6"}]},
        )
    assert "lines.0.discount_amount" in exc.value.errors
    await session.commit()
    assert (await session.scalars(select(Invoice))).all() == []


async def test_inactive_customer_refused(session, biz):
    customer, *_ = await _setup(session, biz)
    await deactivate_customer(session, biz.tenant.id, customer.id)
    with pytest.raises(ValidationFailed) as exc:
        await _invoice(session, biz, customer, [{"description": "x", "unit_price": "1"}])
    assert "inactive" in exc.value.errors["customer_id"]


async def test_payment_lifecycle_and_refund(session, biz):
    customer, labor, *_ = await _setup(session, biz)
    invoice = await _invoice(session, biz, customer, [{"item_id": labor.id}])
    tid = biz.tenant.id
    with pytest.raises(ValidationFailed) as exc:
        await invoices.record_payment(session, tid, invoice.id, {"amount": "10"})
    assert "draft" in exc.value.errors["status"]
    await invoices.send_invoice(session, tid, invoice.id)
    assert invoice.status == InvoiceStatus.SENT and invoice.sent_at is not None
    with pytest.raises(ValidationFailed) as exc:
        await invoices.record_payment(session, tid, invoice.id, {"amount": "95.01"})
    assert "balance" in exc.value.errors["amount"]
    p1 = await invoices.record_payment(session, tid, invoice.id, {"amount": "40", "method": "cash"})
    assert (invoice.status, invoice.amount_paid, invoice.balance) == (
        InvoiceStatus.PARTIALLY_PAID,
        D("40.00"),
        D("55.00"),
    )
    with pytest.raises(ValidationFailed):
        await invoices.update_invoice(session, tid, invoice.id, {"memo": "changed"})
    await invoices.record_payment(session, tid, invoice.id, {"amount": "55"})
    assert (invoice.status, invoice.balance) == (InvoiceStatus.PAID, D("0.00"))
    with pytest.raises(ValidationFailed):
        await invoices.void_invoice(session, tid, invoice.id)

    await invoices.refund_payment(session, tid, p1.id, {"amount": "15", "reason": "goodwill"})
    assert (invoice.status, invoice.amount_paid, invoice.balance) == (
        InvoiceStatus.PARTIALLY_PAID,
        D("80.00"),
        D("15.00"),
    )
    with pytest.raises(ValidationFailed) as exc:
        await invoices.refund_payment(session, tid, p1.id, {"amount": "25.01"})
    assert "$25.00" in exc.value.errors["amount"]
    await session.commit()

    events = (
        await session.scalars(
            select(DomainEventRow).where(DomainEventRow.entity == "invoice").order_by(DomainEventRow.id)
        )
    ).all()
    assert [(e.kind, e.version) for e in events] == [
        ("created", 1),
        ("sent", 2),
        ("partially_paid", 3),
        ("paid", 4),
        ("refunded", 5),
    ]
    payment_events = (await session.scalars(select(DomainEventRow).where(DomainEventRow.entity == "payment"))).all()
    assert all(e.data["invoice_id"] == invoice.id for e in payment_events) and len(payment_events) == 2


async def test_void_rules(session, biz):
    customer, labor, *_ = await _setup(session, biz)
    tid = biz.tenant.id
    invoice = await _invoice(session, biz, customer, [{"item_id": labor.id}], status="OPEN")
    payment = await invoices.record_payment(session, tid, invoice.id, {"amount": "95"})
    with pytest.raises(ValidationFailed) as exc:
        await invoices.void_invoice(session, tid, invoice.id)
    assert "refund" in exc.value.errors["status"]
    await invoices.refund_payment(session, tid, payment.id, {"amount": "95"})
    assert invoice.status == InvoiceStatus.OPEN  # never sent
    await invoices.void_invoice(session, tid, invoice.id)
    assert (invoice.status, invoice.balance, invoice.total) == (InvoiceStatus.VOID, D("0.00"), D("95.00"))
    for action in (
        invoices.void_invoice(session, tid, invoice.id),
        invoices.send_invoice(session, tid, invoice.id),
        invoices.record_payment(session, tid, invoice.id, {"amount": "1"}),
        invoices.update_invoice(session, tid, invoice.id, {"memo": "x"}),
    ):
        with pytest.raises(ValidationFailed):
            await action


async def test_update_replaces_lines_and_bumps_version(session, biz):
    customer, labor, part, rate = await _setup(session, biz)
    tid = biz.tenant.id
    invoice = await _invoice(session, biz, customer, [{"item_id": labor.id}])
    same = await invoices.update_invoice(session, tid, invoice.id, {"memo": ""})
    assert same.version == 1  # nothing changed, nothing written
    await invoices.update_invoice(
        session, tid, invoice.id, {"tax_rate_id": rate.id, "lines": [{"item_id": part.id, "quantity": "10"}]}
    )
    await session.commit()
    assert invoice.version == 2
    assert [line.description for line in invoice.lines] == ["Filter"]
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (D("199.90"), D("16.49"), D("216.39"))
    await invoices.update_invoice(session, tid, invoice.id, {"memo": "Thanks!"})
    assert invoice.version == 3 and invoice.lines[0].description == "Filter"


async def test_other_tenant_is_not_found(session, biz, other_biz):
    customer, labor, *_ = await _setup(session, biz)
    invoice = await _invoice(session, biz, customer, [{"item_id": labor.id}], status="OPEN")
    payment = await invoices.record_payment(session, biz.tenant.id, invoice.id, {"amount": "5"})
    await session.commit()
    tid = other_biz.tenant.id
    for call in (
        invoices.get_invoice(session, tid, invoice.id),
        invoices.update_invoice(session, tid, invoice.id, {"memo": "x"}),
        invoices.send_invoice(session, tid, invoice.id),
        invoices.void_invoice(session, tid, invoice.id),
        invoices.record_payment(session, tid, invoice.id, {"amount": "1"}),
        invoices.refund_payment(session, tid, payment.id, {"amount": "1"}),
    ):
        with pytest.raises(NotFound):
            await call
    assert len((await session.scalars(select(Payment))).all()) == 1
