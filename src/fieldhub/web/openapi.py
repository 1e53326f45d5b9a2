"""The OpenAPI document (/api/openapi.json) says what each operation really answers, errors included.

FastAPI documents a 422 in its own shape (a list under `detail`) that the app never sends, no other
error, and JSON for pages that answer HTML. Written once here rather than on every route: the JSON API
refuses with the project's bodies (`ErrorBody`, `InvalidBody` in web/errors.py, the shapes the exception
handlers in main.py and ApiRoute send), a webhook with `ErrorBody`, and a page answers HTML, a redirect,
or an error page (JSON `ErrorBody` when the request asks for JSON). tests/web/test_api_fuzz.py holds
the app to this document with schemathesis.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from fieldhub.web.errors import ErrorBody, InvalidBody, role_gate

API_PREFIX = "/api/"
WEBHOOK_PREFIX = "/webhooks/"
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
INVALID = {"$ref": "#/components/schemas/InvalidBody"}
FASTAPI_422 = ("HTTPValidationError", "ValidationError")
# The API's personal tokens (web/deps.py api_ctx); pages sign in with a session cookie and redirect instead of 401.
TOKEN = {"ApiToken": {"type": "http", "scheme": "bearer", "description": "A personal API token, `fhp_…`."}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _api_answers(op: dict[str, Any], owner_or_admin: bool = False) -> dict[str, Any]:
    params = op.get("parameters", [])
    answers = {
        "401": _json(
            ERROR, "No valid API token (missing, unknown, expired or revoked): send `Authorization: Bearer fhp_…`."
        )
    }
    if owner_or_admin:
        answers["403"] = _json(ERROR, "The token's user is not the business's Owner or Admin: nothing was changed.")
    if any(p["in"] == "path" for p in params):
        answers["404"] = _json(ERROR, "No such record, or it belongs to another business (the two look alike).")
    if params or "requestBody" in op:
        answers["422"] = _json(INVALID, "Refused input: `errors` has one plain-words message per field.")
        answers["400"] = _json(ERROR, "The body could not be read (not UTF-8), or the address holds a NUL (%00).")
    if "requestBody" in op:
        answers["413"] = _json(ERROR, "The body is too large.")
    return answers


def _webhook_answers() -> dict[str, Any]:
    return {
        "400": _json(ERROR, "Malformed event (not JSON, not UTF-8, nested too deep, or not the provider's shape)."),
        "401": _json(ERROR, "The signature is missing or wrong."),
        "404": _json(ERROR, "No such provider, or it takes no webhooks."),
        "413": _json(ERROR, "The event is too large."),
    }


def _page_answers(route: RouteContext, op: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "3XX": {"description": "A redirect: to sign in, after a form is taken, or on to a provider."},
        "4XX": {
            "description": "An error page; `ErrorBody` when the request accepts JSON.",
            "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": ERROR}},
        },
    }
    returns = inspect.signature(route.endpoint).return_annotation if route.endpoint else None
    json_page = returns in (JSONResponse, "JSONResponse") or 200 in route.responses or "200" in route.responses
    success = op["responses"].get("200")
    if success is not None and not json_page:
        success["content"] = {"text/html": {"schema": {"type": "string"}}}
    return answers


def _unused(schema: dict[str, Any], name: str) -> bool:
    return f'"#/components/schemas/{name}"' not in str(schema).replace("'", '"')


def describe(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Rewrite FastAPI's generated document in place (and return it)."""
    for route in iter_route_contexts(routes):  # included routers' routes, as FastAPI's own generator walks them
        path = route.path_format
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema or path is None:
            continue
        for method in route.methods or ():
            op = schema["paths"][path][method.lower()]
            responses = op.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's; ours (if the operation has inputs) comes below
            if path.startswith(API_PREFIX):
                op["security"] = [{name: []} for name in TOKEN]
                extra = _api_answers(op, bool(role_gate(route.original_route.dependant)))
            elif path.startswith(WEBHOOK_PREFIX):
                extra = _webhook_answers()
            else:
                extra = _page_answers(route, op)
            for status, answer in extra.items():
                responses.setdefault(status, answer)
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(TOKEN)
    components = schema["components"].setdefault("schemas", {})
    for model in (ErrorBody, InvalidBody):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in FASTAPI_422:
        if name in components and _unused({k: v for k, v in schema.items() if k != "components"}, name):
            del components[name]
    return schema


def describe_answers(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /api/openapi.json) return the described document, built once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
