"""Security headers on every answer of the hub (pure ASGI): framing, a Content-Security-Policy, no sniffing,
the referrer, and no caching of anything but static files."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The hub's pages load their scripts and styles from /static only: no inline <script>, no on…= handler, no
# <style> element (tests/web/test_headers.py reads every template for them). Style *attributes* are allowed:
# pages set per-record values with them (a technician's colour, an entry's place on the schedule), and
# unlike a <style> element an attribute styles only its own element, so it can't select and leak others'
# contents. Browsers without the CSP3 -elem/-attr directives fall back to style-src, inline included.
# No form-action: a form may post to the hub and be redirected on to a provider (Stripe's onboarding),
# which Chromium would check against form-action too.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "style-src-elem 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # Same-site navigation keeps the full address; another site sees the origin only, never a path or query:
    # not an OAuth callback's code and state, nor a pay link's token.
    "referrer-policy": "strict-origin-when-cross-origin",
}
STATIC = "/static/"


class SecurityHeaders:
    """Adds HEADERS to every answer, and `Cache-Control: no-store` to every one but static files (pages and
    API answers hold a business's records; the login page holds its form's CSRF value). Paths under
    `skip` are left alone: the emulators mounted in demo and test mode stand in for other sites."""

    def __init__(self, app: ASGIApp, skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.skip):
            await self.app(scope, receive, send)
            return
        cache = not path.startswith(STATIC)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if cache:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)
