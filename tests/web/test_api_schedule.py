"""JSON API for estimates, jobs and time blocks: token auth, money as strings, 422 per field, 404 across tenants."""

from __future__ import annotations

import pytest

from fieldhub.core.accounts import service as accounts
from fieldhub.core.customers.service import create_customer
from fieldhub.core.items.service import create_item


@pytest.fixture
async def api(app, session, biz, other_biz, make_client):
    token = await accounts.create_api_token(session, biz.owner)
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Ada"})
    item = await create_item(session, biz.tenant.id, {"name": "Valve", "unit_price": "10.00", "taxable": True})
    theirs = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    other_token = await accounts.create_api_token(session, other_biz.owner)
    await session.commit()
    async with make_client() as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c, {"customer": customer, "item": item, "theirs": theirs, "other_token": other_token}


async def test_needs_a_token(client):
    assert (await client.get("/api/v1/jobs")).status_code == 401


async def test_estimates(api):
    c, rec = api
    r = await c.post(
        "/api/v1/estimates",
        json={
            "customer_id": rec["customer"].id,
            "lines": [
                {"item_id": rec["item"].id, "quantity": "3"},
                {"description": "Labour", "quantity": "1", "unit_price": "85.50"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["number"] == "EST-1001" and body["status"] == "draft"
    assert body["subtotal"] == "115.50" and body["total"] == "115.50"
    assert body["lines"][0]["quantity"] == "3.0000" and body["lines"][0]["amount"] == "30.00"

    bad = await c.post(
        "/api/v1/estimates",
        json={"customer_id": rec["customer"].id, "lines": [{"description": "x", "quantity": 1.5, "unit_price": "1"}]},
    )
    assert bad.status_code == 422 and "lines.0.quantity" in bad.json()["errors"]
    bad = await c.post(
        "/api/v1/estimates",
        json={"customer_id": rec["theirs"].id, "lines": [{"description": "x", "quantity": "1", "unit_price": "1"}]},
    )
    assert bad.status_code == 422 and "customer_id" in bad.json()["errors"]

    est_id = body["id"]
    r = await c.patch(f"/api/v1/estimates/{est_id}", json={"memo": "Thanks!"})
    assert r.status_code == 200 and r.json()["memo"] == "Thanks!" and r.json()["version"] == 2
    assert len(r.json()["lines"]) == 2
    assert (await c.post(f"/api/v1/estimates/{est_id}/approve")).status_code == 422
    assert (await c.post(f"/api/v1/estimates/{est_id}/send")).json()["status"] == "sent"
    assert (await c.post(f"/api/v1/estimates/{est_id}/decline")).json()["status"] == "declined"
    listing = (await c.get("/api/v1/estimates?status=declined")).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == est_id

    c.headers["Authorization"] = f"Bearer {rec['other_token']}"
    assert (await c.get(f"/api/v1/estimates/{est_id}")).status_code == 404
    assert (await c.post(f"/api/v1/estimates/{est_id}/send")).status_code == 404
    assert (await c.get("/api/v1/estimates")).json()["total"] == 0


async def test_jobs_and_time_blocks(api, biz, other_biz):
    c, rec = api
    r = await c.post(
        "/api/v1/jobs",
        json={
            "customer_id": rec["customer"].id,
            "title": "Replace valve",
            "scheduled_start": "2026-03-10T09:00:00-05:00",
            "scheduled_end": "2026-03-10T11:00:00-05:00",
            "technician_ids": [biz.tech.id],
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["scheduled_start"].startswith("2026-03-10T14:00:00") and job["technician_ids"] == [biz.tech.id]

    bad = await c.post(
        "/api/v1/jobs",
        json={
            "customer_id": rec["customer"].id,
            "title": "Backwards",
            "scheduled_start": "2026-03-10T11:00:00Z",
            "scheduled_end": "2026-03-10T09:00:00Z",
            "technician_ids": [other_biz.tech.id],
        },
    )
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"scheduled_end", "technician_ids"}
    naive = await c.post(
        "/api/v1/jobs",
        json={
            "customer_id": rec["customer"].id,
            "title": "x",
            "scheduled_start": "2026-03-10T11:00:00",
            "scheduled_end": "2026-03-10T12:00:00Z",
        },
    )
    assert naive.status_code == 422 and "scheduled_start" in naive.json()["errors"]

    r = await c.patch(f"/api/v1/jobs/{job['id']}", json={"scheduled_end": "2026-03-10T17:00:00Z"})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await c.put(f"/api/v1/jobs/{job['id']}/technicians", json={"technician_ids": []})
    assert r.json()["technician_ids"] == [] and r.json()["version"] == 3
    r = await c.post(f"/api/v1/jobs/{job['id']}/status", json={"status": "cancelled"})
    assert r.json()["status"] == "cancelled"
    r = await c.post(f"/api/v1/jobs/{job['id']}/status", json={"status": "completed"})
    assert r.status_code == 422 and "status" in r.json()["errors"]
    listing = (
        await c.get(
            "/api/v1/jobs", params={"ends_after": "2026-03-10T00:00:00Z", "starts_before": "2026-03-11T00:00:00Z"}
        )
    ).json()
    assert [j["id"] for j in listing["items"]] == [job["id"]]
    assert (await c.get("/api/v1/jobs", params={"ends_after": "2026-03-11T00:00:00Z"})).json()["total"] == 0

    r = await c.post(
        "/api/v1/time-blocks",
        json={
            "user_id": biz.tech.id,
            "starts_at": "2026-03-10T17:00:00Z",
            "ends_at": "2026-03-10T18:00:00Z",
            "reason": "Dentist",
        },
    )
    assert r.status_code == 201 and r.json()["source"] == "manual"
    block_id = r.json()["id"]
    assert (await c.get("/api/v1/time-blocks")).json()["total"] == 1

    c.headers["Authorization"] = f"Bearer {rec['other_token']}"
    assert (await c.get(f"/api/v1/jobs/{job['id']}")).status_code == 404
    assert (await c.delete(f"/api/v1/time-blocks/{block_id}")).status_code == 404
    assert (await c.get("/api/v1/time-blocks")).json()["total"] == 0
    r = await c.post(
        "/api/v1/time-blocks",
        json={"user_id": biz.tech.id, "starts_at": "2026-03-10T17:00:00Z", "ends_at": "2026-03-10T18:00:00Z"},
    )
    assert r.status_code == 422 and "user_id" in r.json()["errors"]


async def test_delete_time_block(api, biz):
    c, _ = api
    r = await c.post(
        "/api/v1/time-blocks",
        json={"user_id": biz.tech.id, "starts_at": "2026-03-10T17:00:00Z", "ends_at": "2026-03-10T18:00:00Z"},
    )
    assert (await c.delete(f"/api/v1/time-blocks/{r.json()['id']}")).status_code == 204
    assert (await c.get(f"/api/v1/time-blocks/{r.json()['id']}")).status_code == 404


async def test_openapi_lists_the_routes(client):
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    assert {"/api/v1/estimates", "/api/v1/jobs", "/api/v1/time-blocks"} <= set(paths)
