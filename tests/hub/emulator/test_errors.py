"""Every emulator answers what no route takes (unknown path, method, malformed request) in its provider's error body."""

from __future__ import annotations

import httpx
import jsonschema
import pytest
from fastapi.routing import APIRoute

from fieldhub.hub import registry
from fieldhub.hub.emulator import Emulator
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.hub.emulator.mount import build_emulator, has_emulator
from fieldhub.settings import Settings

KEYS = [spec.key for spec in registry.all() if has_emulator(spec.key)]
FASTAPI_DEFAULTS = ({"detail": "Not Found"}, {"detail": "Method Not Allowed"})


def _emulator(key: str) -> Emulator:
    emulator = build_emulator(Settings(mode="test"), key)
    assert emulator is not None
    return emulator


def _api_route(emulator: Emulator) -> APIRoute:
    """One of the provider's own routes (not the control surface), a GET where it has one (Voyage AI's are all
    POST), to ask it for a method it does not take."""
    routes = [r for r in emulator.app.routes if isinstance(r, APIRoute) and not r.path.startswith(CONTROL_PREFIX)]
    return next((r for r in routes if "GET" in r.methods), routes[0])


def _check(emulator: Emulator, response: httpx.Response) -> None:
    body = response.json()
    assert body not in FASTAPI_DEFAULTS, body
    # FastAPI's {"detail"} only where it is the provider's own body (Voyage AI's API is FastAPI; its client reads it).
    assert "detail" not in body or "detail" in emulator.error_schema.get("properties", {}), body
    problems = [e.message for e in jsonschema.Draft7Validator(emulator.error_schema).iter_errors(body)]
    assert problems == [], f"{emulator.key}: {body}"
    # Where the provider publishes a spec, the reply meets it too (Stripe's `error` object, QBO's Fault).
    spec = type(emulator).spec_problems(
        response.request.method, response.request.url.path, response.status_code, response.text
    )
    assert not spec, spec


def test_every_registered_provider_has_an_emulator_declaring_its_error_body() -> None:
    assert len(KEYS) >= 14
    for key in KEYS:
        schema = _emulator(key).error_schema
        assert schema, f"{key}'s emulator declares no error body"
        jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("key", KEYS)
async def test_issue15_item12_unknown_path_method_and_bad_request_answer_in_the_providers_shape(key: str) -> None:
    emulator = _emulator(key)
    route = _api_route(emulator)
    path = route.path.replace("{", "").replace("}", "")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://emu.test") as http:
        unknown = await http.get("/no/such/path-7f3a")
        assert unknown.status_code == 404 and "json" in unknown.headers["content-type"]
        _check(emulator, unknown)

        wrong_method = await http.request("PATCH", path)
        assert wrong_method.status_code in (404, 405)  # Google and Stripe answer a method as they answer a path
        _check(emulator, wrong_method)

        malformed = await http.post(f"{CONTROL_PREFIX}/clock/advance", params={"seconds": "soon"})
        assert malformed.status_code == 400
        _check(emulator, malformed)
        assert "soon" not in malformed.text  # where and what, never the value sent


async def test_issue15_item12_google_calendar_unknown_path_is_googles_not_found() -> None:
    emulator = _emulator("google_calendar")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://emu.test") as http:
        r = await http.get("/calendar/v3/no-such-collection")
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "code": 404,
            "message": "Not Found",
            "errors": [{"message": "Not Found", "domain": "global", "reason": "notFound"}],
            "status": "NOT_FOUND",
        }
    }
