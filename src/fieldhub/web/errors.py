"""Route classes that turn core errors into answers: a 404 page or JSON, and 422 with field messages."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.validation import message_for

# The body limit (fieldhub.main) is what bounds a form; within it, any field reaches validation and is refused
# there with a message beside it, instead of Starlette's 1 MB per-field cut-off answering a bare 400.
FORM_MAX_PART = 12 * 1024 * 1024
FORM_MAX_FIELDS = 2000
NOT_FOUND = "That record doesn't exist, or it belongs to another business."

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class PageRoute(APIRoute):
    """For pages: a record of another tenant (or none) is the 404 page, never a 500 or a leak."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
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
    """For /api/v1: NotFound → 404, ValidationFailed and body errors → 422 {"errors": {field: message}}."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
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
