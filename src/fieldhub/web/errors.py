"""The project's error answers: their bodies, and route classes that check the caller before a body is read and
turn core errors into answers (a 404 page or JSON, 422 with field messages)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.validation import message_for
from fieldhub.hub.emulator.mount import EMULATOR_PREFIX
from fieldhub.web.bodylimit import FORMS
from fieldhub.web.deps import ROLE_GATES, UNSAFE_METHODS, api_ctx, signed_in_before_body, web_ctx

# The body limit (fieldhub.web.bodylimit) is what bounds a form; within it, any field reaches validation and is
# refused there with a message beside it, instead of Starlette's 1 MB per-field cut-off answering a bare 400.
FORM_MAX_PART = FORMS
FORM_MAX_FIELDS = 2000
NOT_FOUND = "That record doesn't exist, or it belongs to another business."

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _needs(dependant: Dependant, call: object) -> bool:
    return dependant.call is call or any(_needs(sub, call) for sub in dependant.dependencies)


def role_gate(dependant: Dependant) -> str:
    """The 403's words when the route admits only the Owner and Admin (deps.ROLE_GATES), else ""."""
    return next((detail for gate, detail in ROLE_GATES.items() if _needs(dependant, gate)), "")


class PageRoute(APIRoute):
    """For pages: a record of another tenant (or none) is the 404 page, never a 500 or a leak. A page that
    needs a signed-in user checks the session before its form is read."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        signed_in = _needs(self.dependant, web_ctx)
        role = role_gate(self.dependant)

        async def route(request: Request) -> Response:
            if signed_in and request.method in UNSAFE_METHODS:
                await signed_in_before_body(request, web_ctx, role)
            content_type = request.headers.get("content-type", "")
            if request.method == "POST" and content_type.startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                # Parsed once here; the CSRF check and the route read the same cached form.
                await request.form(max_part_size=FORM_MAX_PART, max_fields=FORM_MAX_FIELDS)
            try:
                return await handler(request)
            except NotFound:
                raise HTTPException(404, NOT_FOUND) from None

        return route


class ErrorBody(BaseModel):
    """Every refusal in JSON: what went wrong, in plain words."""

    detail: str


class InvalidBody(ErrorBody):
    """A refused input (422): one plain-words message per field, dotted for nested ones ("lines.0.quantity")."""

    errors: dict[str, str]


def validation_body(errors: dict[str, str]) -> dict[str, Any]:
    return {"detail": "Some fields are not valid.", "errors": errors}


def request_errors(exc: RequestValidationError) -> dict[str, str]:
    """FastAPI's list of errors as {field: message}, named as the caller sent them (no "body."/"query." prefix)."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        errors.setdefault(".".join(loc) or "body", message_for(error))
    return errors


class NulRefused:
    """A NUL (%00) anywhere in the URL is 400: no path or query value takes one, and PostgreSQL can't hold it
    in text, so a search for "a%00b" would otherwise fail in the query as a 500. The mounted emulators answer
    for themselves, as the providers would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"")
        if (
            scope["type"] == "http"
            and ("\x00" in scope["path"] or b"%00" in query or b"\x00" in query)
            and not scope["path"].startswith(f"{EMULATOR_PREFIX}/")
        ):
            body = b'{"detail":"The address holds a NUL character (%00)."}'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route takes at this path: Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in iter_route_contexts(list(routes)):  # included routers' routes too, as FastAPI resolves them
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


class ApiRoute(APIRoute):
    """For /api/v1: the token, and the role where the route admits only the Owner and Admin (403), are checked
    before the body is read (401 with nothing pulled), NotFound → 404,
    ValidationFailed and body errors → 422 {"errors": {field: message}}."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        token_first = self.body_field is not None and _needs(self.dependant, api_ctx)
        role = role_gate(self.dependant)

        async def route(request: Request) -> Response:
            if token_first:
                await signed_in_before_body(request, api_ctx, role)
            try:
                return await handler(request)
            except NotFound:
                return JSONResponse({"detail": NOT_FOUND}, status_code=404)
            except ValidationFailed as exc:
                return JSONResponse(validation_body(exc.errors), status_code=422)
            except RequestValidationError as exc:
                return JSONResponse(validation_body(request_errors(exc)), status_code=422)

        return route
