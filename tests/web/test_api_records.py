"""/api/v1 records: token auth, money as strings, 422 with field errors, 404 across tenants, OpenAPI."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import Business

from fieldhub.core.accounts.service import create_api_token
from fieldhub.core.customers.models import Customer


@pytest.fixture
async def api(app, session, biz: Business):
    token = await create_api_token(session, biz.owner, "tests")
    await session.commit()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


@pytest.fixture
async def other_api(app, session, other_biz: Business):
    token = await create_api_token(session, other_biz.owner, "tests")
    await session.commit()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def test_token_required(app, biz):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        assert (await c.get("/api/v1/customers")).status_code == 401
        r = await c.get("/api/v1/customers", headers={"Authorization": "Bearer fhp_wrong"})
        assert r.status_code == 401


async def test_invoice_flow_money_as_strings(api):
    customer = (await api.post("/customers", json={"display_name": "Ada", "email": "ada@example.com"})).json()
    item = (await api.post("/items", json={"name": "Labor", "unit_price": "80.00", "taxable": True})).json()
    assert item["unit_price"] == "80.00"
    rate = (await api.post("/tax-rates", json={"name": "State", "rate": "7.5"})).json()
    assert rate["rate"] == "7.5000"
    r = await api.post(
        "/invoices",
        json={
            "customer_id": customer["id"],
            "tax_rate_id": rate["id"],
            "lines": [{"item_id": item["id"], "quantity": "1.5"}, {"description": "Trip", "unit_price": "25"}],
        },
    )
    assert r.status_code == 201, r.text
    inv = r.json()
    assert (inv["subtotal"], inv["tax_total"], inv["total"], inv["status"]) == ("145.00", "9.00", "154.00", "DRAFT")
    assert (await api.post(f"/invoices/{inv['id']}/payments", json={"amount": "10"})).status_code == 422
    assert (await api.post(f"/invoices/{inv['id']}/send")).json()["status"] == "SENT"
    pay = await api.post(f"/invoices/{inv['id']}/payments", json={"amount": "100.00", "method": "ach"})
    assert pay.status_code == 201 and pay.json()["amount"] == "100.00"
    inv = (await api.get(f"/invoices/{inv['id']}")).json()
    assert (inv["status"], inv["balance"]) == ("PARTIALLY_PAID", "54.00")
    refund = await api.post(f"/payments/{pay.json()['id']}/refunds", json={"amount": "100.00"})
    assert refund.status_code == 201
    assert (await api.post(f"/invoices/{inv['id']}/void")).json()["status"] == "VOID"
    assert (await api.get("/refunds")).json()["total"] == 1
    assert (await api.get("/invoices", params={"status": "VOID"})).json()["total"] == 1


async def test_patch_changes_only_given_fields(api):
    c = (await api.post("/customers", json={"display_name": "Ada", "phone": "555"})).json()
    r = await api.patch(f"/customers/{c['id']}", json={"company": "Engines Ltd"})
    assert r.status_code == 200
    assert (r.json()["phone"], r.json()["company"], r.json()["version"]) == ("555", "Engines Ltd", 2)


async def test_422_with_field_errors_and_nothing_written(api, session):
    r = await api.post("/customers", json={"display_name": "x", "email": "not-an-email", "notes": "n" * 1_000_001})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert "email" in errors and errors["notes"].startswith("Too long")
    assert "nnnn" not in r.text  # the input is never echoed
    r = await api.post("/invoices", json={"customer_id": 999, "lines": [{"description": "x", "unit_price": "1"}]})
    assert r.status_code == 422 and "customer_id" in r.json()["errors"]
    r = await api.post("/invoices", json={"customer_id": 1, "lines": [{"description": "x", "quantity": "-1"}]})
    assert r.status_code == 422 and r.json()["errors"]["lines.0.quantity"] == "Can't be negative."
    r = await api.post("/items", json={"name": "x", "unit_price": 12.5})
    assert r.status_code == 422 and "strings" in r.json()["errors"]["unit_price"]
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_other_tenant_gets_404_everywhere(api, other_api):
    c = (await api.post("/customers", json={"display_name": "Mine"})).json()
    i = (await api.post("/items", json={"name": "Mine", "unit_price": "5"})).json()
    t = (await api.post("/tax-rates", json={"name": "Mine", "rate": "5"})).json()
    inv = (
        await api.post("/invoices", json={"customer_id": c["id"], "status": "OPEN", "lines": [{"item_id": i["id"]}]})
    ).json()
    pay = (await api.post(f"/invoices/{inv['id']}/payments", json={"amount": "1"})).json()
    ref = (await api.post(f"/payments/{pay['id']}/refunds", json={"amount": "1"})).json()
    for method, url, body in [
        ("GET", f"/customers/{c['id']}", None),
        ("PATCH", f"/customers/{c['id']}", {"display_name": "Stolen"}),
        ("GET", f"/items/{i['id']}", None),
        ("PATCH", f"/items/{i['id']}", {"name": "Stolen"}),
        ("GET", f"/tax-rates/{t['id']}", None),
        ("PATCH", f"/tax-rates/{t['id']}", {"name": "Stolen"}),
        ("GET", f"/invoices/{inv['id']}", None),
        ("PATCH", f"/invoices/{inv['id']}", {"memo": "Stolen"}),
        ("POST", f"/invoices/{inv['id']}/send", None),
        ("POST", f"/invoices/{inv['id']}/void", None),
        ("GET", f"/invoices/{inv['id']}/payments", None),
        ("POST", f"/invoices/{inv['id']}/payments", {"amount": "1"}),
        ("GET", f"/payments/{pay['id']}", None),
        ("POST", f"/payments/{pay['id']}/refunds", {"amount": "1"}),
        ("GET", f"/refunds/{ref['id']}", None),
    ]:
        r = await other_api.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.text)
    assert (await other_api.get("/customers")).json()["total"] == 0
    assert (await other_api.get("/invoices")).json()["total"] == 0
    assert (await api.get(f"/customers/{c['id']}")).json()["display_name"] == "Mine"


async def test_openapi_documents_records_with_string_money(api):
    spec = (await api.get("http://testserver/api/openapi.json")).json()
    assert "/api/v1/invoices/{invoice_id}/payments" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert schemas["InvoiceOut"]["properties"]["total"]["type"] == "string"
    assert schemas["PaymentOut"]["properties"]["amount"]["type"] == "string"
