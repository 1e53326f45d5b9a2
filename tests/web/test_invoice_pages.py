"""Invoice pages: create with lines, field errors beside the field, send, pay, refund, void."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import func, select
from tests.conftest import Browser, Business

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.invoices.service import create_invoice
from fieldhub.core.items.service import create_item, create_tax_rate
from fieldhub.core.payments.models import Payment, Refund
from fieldhub.web.errors import NOT_FOUND


async def _records(session, biz: Business):
    tid = biz.tenant.id
    customer = await create_customer(session, tid, {"display_name": "Grace Hopper"})
    item = await create_item(session, tid, {"name": "Tune-up", "unit_price": "120.00", "taxable": True})
    rate = await create_tax_rate(session, tid, {"name": "City", "rate": "10"})
    await session.commit()
    return customer, item, rate


def _lines(*rows: dict) -> dict:
    data = {"line_count": str(len(rows))}
    for i, row in enumerate(rows):
        for k, v in row.items():
            data[f"lines-{i}-{k}"] = v
    return data


async def _count(session, model) -> int:
    return await session.scalar(select(func.count()).select_from(model))


async def test_new_invoice_form_renders_with_blank_lines(owner: Browser, session, biz):
    await _records(session, biz)
    r = await owner.get("/invoices/new")
    assert r.status_code == 200
    assert 'name="lines-2-description"' in r.text
    assert "Grace Hopper" in r.text and "Tune-up" in r.text


async def test_create_send_pay_refund_void_through_pages(owner: Browser, session, biz):
    customer, item, rate = await _records(session, biz)
    data = {
        "customer_id": str(customer.id),
        "tax_rate_id": str(rate.id),
        "status": "DRAFT",
        **_lines({"item_id": str(item.id), "quantity": "2"}, {"description": "", "unit_price": ""}),
    }
    r = await owner.submit("/invoices/new", data)
    assert r.status_code == 303, r.text
    url = r.headers["location"].split("?")[0]
    page = await owner.get(url)
    assert "INV-1001" in page.text and "$264.00" in page.text  # 240 + 10 % tax

    assert (await owner.submit(url + "/send")).status_code == 303
    r = await owner.submit(url + "/payments", {"amount": "300", "method": "card"})
    assert r.status_code == 400
    assert re.search(r'class="field invalid">\s*<label for="f-amount"', r.text)
    assert "more than the balance due" in r.text
    assert await _count(session, Payment) == 0

    r = await owner.submit(url + "/payments", {"amount": "264.00", "method": "check", "reference": "1042"})
    assert r.status_code == 303
    page = await owner.get(url)
    assert "Paid" in page.text
    payment = await session.scalar(select(Payment))
    r = await owner.submit(f"{url}/payments/{payment.id}/refund", {"amount": "264", "reason": "dispute"})
    assert r.status_code == 303
    assert await _count(session, Refund) == 1
    r = await owner.submit(url + "/void")
    assert r.status_code == 303
    session.expire_all()
    invoice = await session.scalar(select(Invoice))
    assert invoice.status == InvoiceStatus.VOID and invoice.balance == Decimal("0.00")


async def test_form_errors_beside_fields_and_nothing_saved(owner: Browser, session, biz, other_biz):
    customer, item, _ = await _records(session, biz)
    foreign = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    await session.commit()
    cases = [
        (
            {"customer_id": str(customer.id), **_lines({"description": "Work", "quantity": "-2", "unit_price": "5"})},
            "lines-0-quantity",
            "Can&#39;t be negative.",
        ),
        (
            {"customer_id": str(foreign.id), **_lines({"description": "Work", "unit_price": "5"})},
            "customer_id",
            "that one doesn&#39;t exist",
        ),
        (
            {"customer_id": "", **_lines({"description": "Work", "unit_price": "5"})},
            "customer_id",
            "Choose a customer.",
        ),
        (
            {
                "customer_id": str(customer.id),
                "memo": "x" * 10_000_000,
                **_lines({"description": "W", "unit_price": "5"}),
            },
            "memo",
            "Too long: at most 4000 characters.",
        ),
        (
            {"customer_id": str(customer.id), **_lines({"description": "Work", "unit_price": "abc"})},
            "lines-0-unit_price",
            "Not an amount",
        ),
    ]
    for data, field, message in cases:
        r = await owner.submit("/invoices/new", data)
        assert r.status_code == 400, field
        assert f'id="e-{field}"' in r.text, field
        assert message in r.text, (field, r.text[:2000])
        assert len(r.text) < 1_000_000  # a 10 MB field is not echoed back whole
    assert await _count(session, Invoice) == 0


async def test_add_line_keeps_entered_values(owner: Browser, session, biz):
    customer, *_ = await _records(session, biz)
    r = await owner.submit(
        "/invoices/new", {"customer_id": str(customer.id), "add_line": "1", **_lines({"description": "Kept"})}
    )
    assert r.status_code == 200
    assert 'value="Kept"' in r.text and 'name="lines-1-description"' in r.text
    assert await _count(session, Invoice) == 0


async def test_list_filters_by_status(owner: Browser, session, biz):
    r = await owner.get("/invoices")
    assert "No invoices yet" in r.text
    customer, item, _ = await _records(session, biz)
    await owner.submit("/invoices/new", {"customer_id": str(customer.id), **_lines({"item_id": str(item.id)})})
    r = await owner.get("/invoices?status=PAID")
    assert "No invoices match" in r.text
    r = await owner.get("/invoices?status=DRAFT")
    assert "INV-1001" in r.text and "badge grey" in r.text


async def test_issue14_item6_print_of_unknown_or_other_tenants_invoice_is_404(owner: Browser, session, biz, other_biz):
    """GET /invoices/{id}/print let NotFound through as a 500 (its router had no PageRoute); now the 404 page."""
    customer = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    item = await create_item(session, other_biz.tenant.id, {"name": "Their work", "unit_price": "5"})
    lines = [{"item_id": item.id}]
    theirs = await create_invoice(session, other_biz.tenant.id, {"customer_id": customer.id, "lines": lines})
    await session.commit()
    for url in (f"/invoices/{theirs.id}/print", "/invoices/999999/print"):
        r = await owner.get(url)
        assert r.status_code == 404, (url, r.text[:200])
        assert "Not found" in r.text and "Their work" not in r.text
    r = await owner.get("/invoices/999999/print", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND}


async def test_issue14_item6_huge_int_on_pages_is_4xx(owner: Browser, session, biz):
    """Pages took the same unbounded ints (page numbers, path ids, a tech filter, a form's connection id)."""
    customer, item, _ = await _records(session, biz)
    huge = str(2**64)
    for url in (f"/customers?page={huge}", f"/invoices?page={huge}", f"/invoices/{huge}", f"/customers/{huge}/edit"):
        r = await owner.get(url)
        assert r.status_code == 422, (url, r.status_code)
        assert "Check the form" in r.text and biz.owner.name in r.text  # the page still knows who is signed in
    assert (await owner.get(f"/schedule?tech={huge}")).status_code == 200
    data = {"customer_id": str(customer.id), "status": "OPEN", **_lines({"item_id": str(item.id)})}
    url = (await owner.submit("/invoices/new", data)).headers["location"].split("?")[0]
    r = await owner.submit(f"{url}/resync", {"connection_id": huge})
    assert r.status_code == 400, r.text[:300]
    bad = {"customer_id": huge, **_lines({"item_id": huge})}
    r = await owner.submit("/invoices/new", bad)
    assert r.status_code == 400 and await _count(session, Invoice) == 1
