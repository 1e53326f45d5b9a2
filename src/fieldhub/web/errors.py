"""Route classes: the caller checked before a body is read, and core errors turned into answers (a 404 page or
JSON, 422 with field messages)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.validation import message_for
from fieldhub.web.bodylimit import FORMS
from fieldhub.web.deps import UNSAFE_METHODS, api_ctx, signed_in_before_body, web_ctx

# The body limit (fieldhub.web.bodylimit) is what bounds a form; within it, any field reaches validation and is
# refused there with a message beside it, instead of Starlette's 1 MB per-field cut-off answering a bare 400.
FORM_MAX_PART = FORMS
FORM_MAX_FIELDS = 2000
NOT_FOUND = "That record doesn't exist, or it belongs to another business."

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _needs(dependant: Dependant, call: object) -> bool:
    return dependant.call is call or any(_needs(sub, call) for sub in dependant.dependencies)


class PageRoute(APIRoute):
    """For pages: a record of another tenant (or none) is the 404 page, never a 500 or a leak. A page that
    needs a signed-in user checks the session before its form is read."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        signed_in = _needs(self.dependant, web_ctx)

        async def route(request: Request) -> Response:
            if signed_in and request.method in UNSAFE_METHODS:
                await signed_in_before_body(request, web_ctx)
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


def validation_body(errors: dict[str, str]) -> dict[str, Any]:
    return {"detail": "Some fields are not valid.", "errors": errors}


class ApiRoute(APIRoute):
    """For /api/v1: the token is checked before the body is read (401 with nothing pulled), NotFound → 404,
    ValidationFailed and body errors → 422 {"errors": {field: message}}."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        token_first = self.body_field is not None and _needs(self.dependant, api_ctx)

        async def route(request: Request) -> Response:
            if token_first:
                await signed_in_before_body(request, api_ctx)
            try:
                return await handler(request)
            except NotFound:
                return JSONResponse({"detail": NOT_FOUND}, status_code=404)
            except ValidationFailed as exc:
                return JSONResponse(validation_body(exc.errors), status_code=422)
            except RequestValidationError as exc:
                errors: dict[str, str] = {}
                for error in exc.errors():
                    loc = [str(p) for p in error["loc"]]
                    if loc and loc[0] in ("body", "query", "path"):
                        loc = loc[1:]
                    errors.setdefault(".".join(loc) or "body", message_for(error))
                return JSONResponse(validation_body(errors), status_code=422)

        return route
