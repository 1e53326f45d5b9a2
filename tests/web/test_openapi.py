"""/api/openapi.json says what the app answers: the project's error bodies, bounded ids, and every allowed method."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from tests.conftest import Business

from fieldhub.core.accounts.service import create_api_token

INT4_MAX = 2**31 - 1  # ids are INTEGER columns, 32-bit on PostgreSQL
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture
async def api(app, session, biz: Business):
    token = await create_api_token(session, biz.owner, "tests")
    await session.commit()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def _documented(spec: dict, path: str, method: str, status: int, body: Any) -> None:
    """`body` validates against what the spec documents for this answer (`4XX` ranges included)."""
    responses = spec["paths"][path][method]["responses"]
    answer = responses.get(str(status)) or responses[f"{str(status)[0]}XX"]
    schema = answer["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": spec["components"]})


async def test_issue14_item6_error_bodies_are_documented_as_sent(api):
    """The 422 was documented as FastAPI's list under `detail` while the app sends {"detail", "errors"}; every
    refusal is now documented with the body it really has, and FastAPI's shape is gone from the document."""
    spec = (await api.get("/api/openapi.json")).json()
    assert "HTTPValidationError" not in str(spec) and "ValidationError" not in spec["components"]["schemas"]
    r = await api.post("/api/v1/customers", json={"display_name": ""})
    assert r.status_code == 422
    _documented(spec, "/api/v1/customers", "post", 422, r.json())
    r = await api.get("/api/v1/customers/123")
    assert r.status_code == 404
    _documented(spec, "/api/v1/customers/{customer_id}", "get", 404, r.json())
    r = await api.get("/api/v1/customers", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    _documented(spec, "/api/v1/customers", "get", 401, r.json())
    r = await api.get("/api/v1/invoices", params={"page": str(2**70)})
    assert r.status_code == 422
    _documented(spec, "/api/v1/invoices", "get", 422, r.json())
    r = await api.get("/invoices/9/print", headers={"Accept": "application/json"})  # a page, and no session
    assert r.status_code == 401
    _documented(spec, "/invoices/{invoice_id}/print", "get", 401, r.json())
    r = await api.post("/webhooks/stripe", content=b"{}")
    assert r.status_code == 401
    _documented(spec, "/webhooks/{provider}", "post", 401, r.json())
    # A page answers HTML, and says so.
    page = spec["paths"]["/invoices/{invoice_id}/print"]["get"]["responses"]
    assert list(page["200"]["content"]) == ["text/html"] and "text/html" in page["4XX"]["content"]


def _integers(schema: Any, spec: dict, seen: set[str]) -> list[dict]:
    """Every integer schema reachable from `schema` (through $ref, anyOf, items, properties)."""
    found: list[dict] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref and ref not in seen:
            seen.add(ref)
            found += _integers(spec["components"]["schemas"][ref.rsplit("/", 1)[1]], spec, seen)
        if schema.get("type") == "integer":
            found.append(schema)
        for value in schema.values():
            found += _integers(value, spec, seen)
    elif isinstance(schema, list):
        for value in schema:
            found += _integers(value, spec, seen)
    return found


async def test_issue14_item6_every_integer_input_is_bounded(api):
    """Ids, page numbers and filters took any integer, and past 2**63 the database drivers raised (500).
    Every integer a request can carry (path, query, body, any operation) now has a documented range."""
    spec = (await api.get("/api/openapi.json")).json()
    checked = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            inputs = [p["schema"] for p in op.get("parameters", [])]
            inputs += [c["schema"] for c in op.get("requestBody", {}).get("content", {}).values()]
            for schema in _integers(inputs, spec, set()):
                checked += 1
                assert "maximum" in schema and schema["maximum"] <= INT4_MAX, (method, path, schema)
                assert schema.get("minimum", -1) >= 0, (method, path, schema)
    assert checked > 100


async def test_issue14_item6_405_allow_lists_every_method(api):
    """Starlette's 405 named only the first route's method (`Allow: GET` on a GET + PATCH path)."""
    spec = (await api.get("/api/openapi.json")).json()
    for path, url in [
        ("/api/v1/customers/{customer_id}", "/api/v1/customers/1"),
        ("/api/v1/customers", "/api/v1/customers"),
        ("/api/v1/time-blocks/{block_id}", "/api/v1/time-blocks/1"),
        ("/customers/new", "/customers/new"),
        ("/invoices/{invoice_id}/edit", "/invoices/1/edit"),
    ]:
        documented = sorted(m.upper() for m in spec["paths"][path] if m in METHODS)
        for method in ("OPTIONS", "TRACE", "PUT"):
            if method in documented:
                continue
            r = await api.request(method, url)
            assert r.status_code == 405, (method, url)
            assert sorted(m.strip() for m in r.headers["allow"].split(",")) == documented, (url, r.headers["allow"])
