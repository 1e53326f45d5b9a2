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


# ---------------------------------------------------------------- issue 14 item 6: malformed input is a 4xx

HUGE = str(2**64 + 7)  # past 2**63: SQLite's driver raised OverflowError, PostgreSQL "bigint out of range"


def _refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "Some fields are not valid." and field in r.json()["errors"], r.text


async def _records(api) -> dict:
    customer = (await api.post("/customers", json={"display_name": "Ada"})).json()
    item = (await api.post("/items", json={"name": "Labor", "unit_price": "80.00"})).json()
    rate = (await api.post("/tax-rates", json={"name": "State", "rate": "7.5"})).json()
    invoice = await api.post(
        "/invoices", json={"customer_id": customer["id"], "status": "OPEN", "lines": [{"item_id": item["id"]}]}
    )
    estimate = await api.post(
        "/estimates", json={"customer_id": customer["id"], "lines": [{"item_id": item["id"], "quantity": "1"}]}
    )
    job = await api.post(
        "/jobs",
        json={
            "customer_id": customer["id"],
            "title": "Fix",
            "scheduled_start": "2026-03-02T09:00:00+00:00",
            "scheduled_end": "2026-03-02T10:00:00+00:00",
        },
    )
    draft = await api.post("/invoices", json={"customer_id": customer["id"], "lines": [{"item_id": item["id"]}]})
    payment = await api.post(f"/invoices/{invoice.json()['id']}/payments", json={"amount": "10.00"})
    return {
        "draft": draft.json(),
        "customer": customer,
        "item": item,
        "rate": rate,
        "invoice": invoice.json(),
        "estimate": estimate.json(),
        "job": job.json(),
        "payment": payment.json(),
    }


async def test_issue14_item6_huge_int_id_is_4xx(api):
    """Integers past 2**63 in path ids, filters, `page` and body ids answered 500; each is a 422 naming the field."""
    for url, path_id in [
        ("/customers", "customer_id"),
        ("/items", "item_id"),
        ("/tax-rates", "tax_rate_id"),
        ("/invoices", "invoice_id"),
        ("/payments", "payment_id"),
        ("/refunds", "refund_id"),
        ("/estimates", "estimate_id"),
        ("/jobs", "job_id"),
        ("/time-blocks", "block_id"),
    ]:
        _refused(await api.get(f"{url}/{HUGE}"), path_id)
        _refused(await api.get(url, params={"page": HUGE}), "page")
    _refused(await api.get(f"/invoices/{HUGE}/payments"), "invoice_id")
    for url, param in [
        ("/invoices", "customer_id"),
        ("/payments", "invoice_id"),
        ("/refunds", "payment_id"),
        ("/estimates", "customer_id"),
        ("/jobs", "technician_id"),
        ("/time-blocks", "user_id"),
    ]:
        _refused(await api.get(url, params={param: HUGE}), param)
    _refused(await api.patch(f"/customers/{HUGE}", json={"display_name": "x"}), "customer_id")
    _refused(await api.post(f"/invoices/{HUGE}/send"), "invoice_id")
    _refused(await api.delete(f"/time-blocks/{HUGE}"), "block_id")
    records = await _records(api)
    line = {"description": "x", "unit_price": "1"}
    _refused(await api.post("/invoices", json={"customer_id": int(HUGE), "lines": [line]}), "customer_id")
    _refused(await api.post("/invoices", json={"customer_id": 1, "lines": [{"item_id": int(HUGE)}]}), "lines.0.item_id")
    _refused(await api.post("/estimates", json={"customer_id": int(HUGE), "lines": [line]}), "customer_id")
    job_url = f"/jobs/{records['job']['id']}"
    _refused(await api.put(f"{job_url}/technicians", json={"technician_ids": [int(HUGE)]}), "technician_ids.0")
    _refused(await api.patch(job_url, json={"customer_id": int(HUGE)}), "customer_id")
    # In range but no such record: still the plain 404, as before.
    assert (await api.get("/customers/2147483647")).status_code == 404


async def test_issue14_item6_patch_null_for_required_field_is_4xx(api):
    """Explicit null on PATCH for a field the record can't be without answered 500 (a constraint applied to None)
    or passed as "nullable" in the spec; now 422, the record unchanged, and the spec no longer offers null."""
    records = await _records(api)
    refused = {
        f"/customers/{records['customer']['id']}": ["display_name", "active"],
        f"/items/{records['item']['id']}": ["name", "unit_price", "taxable"],
        f"/tax-rates/{records['rate']['id']}": ["name", "rate"],
        f"/invoices/{records['draft']['id']}": ["customer_id", "lines", "memo"],
        f"/estimates/{records['estimate']['id']}": ["customer_id", "lines", "notes"],
        f"/jobs/{records['job']['id']}": ["customer_id", "title", "scheduled_start"],
    }
    for url, fields in refused.items():
        before = (await api.get(url)).json()
        for field in fields:
            _refused(await api.patch(url, json={field: None}), field)
        assert (await api.get(url)).json() == before
    # Null where the record takes it still clears the field.
    invoice = f"/invoices/{records['draft']['id']}"
    assert (await api.patch(invoice, json={"due_date": "2027-01-01"})).json()["due_date"] == "2027-01-01"
    assert (await api.patch(invoice, json={"due_date": None})).json()["due_date"] is None
    spec = (await api.get("http://testserver/api/openapi.json")).json()["components"]["schemas"]
    for name, fields in [
        ("CustomerPatch", ["display_name"]),
        ("ItemPatch", ["name", "unit_price"]),
        ("TaxRatePatch", ["rate"]),
        ("InvoicePatch", ["customer_id", "lines"]),
        ("EstimatePatch", ["customer_id", "lines"]),
        ("JobPatch", ["title", "scheduled_start"]),
    ]:
        for field in fields:
            assert "null" not in str(spec[name]["properties"][field]), (name, field)
    assert "null" in str(spec["InvoicePatch"]["properties"]["due_date"])


async def test_issue14_item6_huge_amount_is_4xx(api, session):
    """Amounts of 40+ digits raised decimal.InvalidOperation (500); quantity × price past what the columns hold
    overflowed the insert. Each is a 422 now, and nothing is written."""
    records = await _records(api)
    forty = "1" * 40
    for url, body, field in [
        ("/items", {"name": "x", "unit_price": forty}, "unit_price"),
        ("/items", {"name": "x", "unit_price": f"{forty}.00"}, "unit_price"),
        ("/items", {"name": "x", "unit_price": "1e40"}, "unit_price"),
        ("/tax-rates", {"name": "x", "rate": forty}, "rate"),
        ("/tax-rates", {"name": "x", "rate": "0." + "0" * 39 + "1"}, "rate"),
        ("/invoices", {"customer_id": 1, "lines": [{"description": "x", "unit_price": forty}]}, "lines.0.unit_price"),
        ("/invoices", {"customer_id": 1, "lines": [{"description": "x", "quantity": forty}]}, "lines.0.quantity"),
        ("/invoices", {"customer_id": 1, "discount_amount": forty, "lines": [{"item_id": 1}]}, "discount_amount"),
        ("/estimates", {"customer_id": 1, "lines": [{"description": "x", "unit_price": forty}]}, "lines.0.unit_price"),
        (f"/invoices/{records['invoice']['id']}/payments", {"amount": forty}, "amount"),
        (f"/payments/{records['payment']['id']}/refunds", {"amount": forty}, "amount"),
        (f"/invoices/{records['draft']['id']}", {"discount_amount": forty}, "discount_amount"),
    ]:
        method = api.patch if url.startswith("/invoices/") and url.count("/") == 2 else api.post
        _refused(await method(url, json=body), field)
    # Every figure in bounds, the product not: 99,999,999 × $999,999,999,999.99 is past any column.
    big_line = {"description": "x", "quantity": "99999999", "unit_price": "999999999999.99"}
    for url in ("/invoices", "/estimates"):
        _refused(await api.post(url, json={"customer_id": records["customer"]["id"], "lines": [big_line]}), "lines")
    counts = [(await api.get(url)).json()["total"] for url in ("/items", "/tax-rates", "/invoices", "/estimates")]
    assert counts == [1, 1, 2, 1]
    assert (await api.get("/refunds")).json()["total"] == 0


async def test_issue14_item6_nul_in_text_is_4xx(api):
    """PostgreSQL's text can't hold NUL: "\\u0000" in a JSON field, or %00 in a search, failed the query (500)."""
    _refused(await api.post("/customers", json={"display_name": "a\x00b"}), "display_name")
    _refused(await api.post("/items", json={"name": "x", "description": "\x00"}), "description")
    for url in ("/customers?q=a%00b", "/invoices?q=%00", "/customers/1%00"):
        r = await api.get(url)
        assert r.status_code == 400 and "NUL" in r.json()["detail"], (url, r.text)
    assert (await api.get("/customers")).json()["total"] == 0
