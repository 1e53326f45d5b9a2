"""Request body limits per route family, counted while the body streams in (pure ASGI, before any parsing)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB

# What each family really needs, first match by path prefix:
# - webhooks and a voice provider's tool requests: providers send events of a few KB; anything near a megabyte is
#   not one.
# - the JSON API: its largest valid body is an invoice or estimate of 200 lines of 4,000 characters, up to
#   4 bytes each in UTF-8 (3.2 MB), with its memo and notes.
# - the login form: an email, a password, `next` and the CSRF token.
# - everything else is a page's form: a 10 MB field must still reach validation and be refused beside the
#   field with the form kept (issue 2), not answered with a bare 413.
LIMITS: tuple[tuple[str, int], ...] = (
    ("/webhooks/", 1 * MIB),
    ("/voice/", 1 * MIB),
    ("/api/", 4 * MIB),
    ("/login", 16 * KIB),
)
FORMS = 12 * MIB


def limit_for(path: str) -> int:
    for prefix, limit in LIMITS:
        if path.startswith(prefix):
            return limit
    return FORMS


def _size(limit: int) -> str:
    return f"{limit // MIB} MB" if limit >= MIB else f"{limit // KIB} KB"


class BodyTooLarge(HTTPException):
    """Raised from `receive()`: the route reading the body stops there and the app answers with its own
    error body (JSON for the API, a page for forms) through its HTTPException handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: at most {_size(limit)} here.")


class BodyLimit:
    """Refuses a body past its family's limit as the bytes arrive, chunked or not, so no more than the limit
    plus one chunk is ever held. A declared Content-Length past the limit is refused at the first read,
    before a byte is taken. A route that answers without reading the body (a 401 before the body, a GET)
    never pulls it at all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        over = declared.isdigit() and int(declared) > limit
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            if over:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except BodyTooLarge as exc:
            # Reached here only where no handler of the app's caught it (a mounted sub-app's own code).
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send)
