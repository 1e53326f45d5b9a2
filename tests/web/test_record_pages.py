"""Customer and item pages, and tenancy: another business's records are 404 through every page."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from tests.conftest import Browser

from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item, create_tax_rate


def _invalid(html: str, field: str) -> bool:
    """The field's wrapper is marked invalid and its message sits right inside it."""
    return bool(re.search(rf'<div class="field invalid">\s*<label for="f-{field}"', html)) and f'id="e-{field}"' in html


async def test_customer_create_search_edit_deactivate(owner: Browser, session):
    r = await owner.get("/customers")
    assert "No customers yet" in r.text
    r = await owner.submit("/customers/new", {"display_name": "Ada Lovelace", "email": "ada@example.com"})
    assert r.status_code == 303
    url = r.headers["location"].split("?")[0]
    assert "Ada Lovelace" in (await owner.get(url)).text
    assert "Ada Lovelace" in (await owner.get("/customers?q=LOVE")).text
    assert "No customers match" in (await owner.get("/customers?q=%25")).text  # wildcards are literal
    r = await owner.submit(url + "/edit", {"display_name": "Ada King", "email": "ada@example.com"})
    assert r.status_code == 303
    assert (await owner.submit(url + "/deactivate")).status_code == 303
    assert "Ada King" not in (await owner.get("/customers")).text
    assert "Ada King" in (await owner.get("/customers?show=inactive")).text
    customer = await session.scalar(select(Customer))
    assert (customer.display_name, customer.active, customer.version) == ("Ada King", False, 3)


async def test_customer_pagination(owner: Browser, session, biz):
    for n in range(30):
        await create_customer(session, biz.tenant.id, {"display_name": f"Customer {n:02d}"})
    await session.commit()
    r = await owner.get("/customers")
    assert "Customer 24" in r.text and "Customer 25" not in r.text and "Page 1 of 2" in r.text
    r = await owner.get("/customers?page=2")
    assert "Customer 29" in r.text and "Customer 00" not in r.text


async def test_customer_form_errors_beside_fields_nothing_changed(owner: Browser, session, biz):
    for data, field, message in [
        ({"display_name": "A", "email": "not-an-email"}, "email", "Enter a valid email address"),
        ({"display_name": ""}, "display_name", "Required."),
        ({"display_name": "A", "billing_city": "c" * 10_000_000}, "billing_city", "Too long: at most 100 characters."),
    ]:
        r = await owner.submit("/customers/new", data)
        assert r.status_code == 400
        assert _invalid(r.text, field), field
        assert message in r.text
        if field == "email":
            assert 'value="not-an-email"' in r.text  # the entered value is kept
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0

    customer = await create_customer(session, biz.tenant.id, {"display_name": "Kept", "email": "k@example.com"})
    await session.commit()
    r = await owner.submit(f"/customers/{customer.id}/edit", {"display_name": "Changed", "email": "bad@"})
    assert r.status_code == 400 and _invalid(r.text, "email")
    session.expire_all()
    customer = await session.scalar(select(Customer))
    assert (customer.display_name, customer.version) == ("Kept", 1)


async def test_items_and_tax_rates_pages(owner: Browser, session):
    r = await owner.submit(
        "/items/new", {"name": "Filter", "unit_price": "$1,019.5", "taxable": "true", "active": "true"}
    )
    assert r.status_code == 303
    page = await owner.get(r.headers["location"])
    assert "$1,019.50" in page.text
    r = await owner.submit("/items/new", {"name": "Bad", "unit_price": "-3"})
    assert r.status_code == 400 and _invalid(r.text, "unit_price")
    assert await session.scalar(select(func.count()).select_from(Item)) == 1
    r = await owner.submit("/items/tax-rates", {"name": "County", "rate": "8.25", "active": "true"})
    assert r.status_code == 303
    assert "8.25 %" in (await owner.get("/items/tax-rates")).text
    r = await owner.submit("/items/tax-rates", {"name": "Silly", "rate": "180"})
    assert r.status_code == 400 and _invalid(r.text, "rate")


async def test_other_business_records_are_404_on_every_page(client: Browser, session, biz, other_biz):
    tid = other_biz.tenant.id
    customer = await create_customer(session, tid, {"display_name": "Theirs"})
    item = await create_item(session, tid, {"name": "Theirs", "unit_price": "5"})
    rate = await create_tax_rate(session, tid, {"name": "Theirs", "rate": "5"})
    invoice = await invoices.create_invoice(
        session, tid, {"customer_id": customer.id, "status": "OPEN", "lines": [{"item_id": item.id}]}
    )
    payment = await invoices.record_payment(session, tid, invoice.id, {"amount": "2"})
    await session.commit()
    await client.login(biz.owner.email)
    gets = [
        f"/customers/{customer.id}",
        f"/customers/{customer.id}/edit",
        f"/items/{item.id}",
        f"/items/{item.id}/edit",
        f"/items/tax-rates/{rate.id}/edit",
        f"/invoices/{invoice.id}",
        f"/invoices/{invoice.id}/edit",
    ]
    for url in gets:
        r = await client.get(url)
        assert r.status_code == 404, url
        assert "Not found" in r.text
    posts = [
        (f"/customers/{customer.id}/edit", {"display_name": "Stolen"}),
        (f"/customers/{customer.id}/deactivate", {}),
        (f"/items/{item.id}/edit", {"name": "Stolen", "unit_price": "1"}),
        (f"/items/tax-rates/{rate.id}/edit", {"name": "Stolen", "rate": "1"}),
        (f"/invoices/{invoice.id}/edit", {"memo": "Stolen"}),
        (f"/invoices/{invoice.id}/send", {}),
        (f"/invoices/{invoice.id}/void", {}),
        (f"/invoices/{invoice.id}/payments", {"amount": "1"}),
        (f"/invoices/{invoice.id}/payments/{payment.id}/refund", {"amount": "1"}),
    ]
    for url, data in posts:
        r = await client.submit(url, data)
        assert r.status_code == 404, url
    session.expire_all()
    theirs = await session.scalar(select(Customer).where(Customer.tenant_id == tid))
    assert (theirs.display_name, theirs.active, theirs.version) == ("Theirs", True, 1)
    assert "Theirs" not in (await client.get("/customers?show=all")).text
    assert "Theirs" not in (await client.get("/invoices")).text
