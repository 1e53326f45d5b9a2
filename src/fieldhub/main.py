"""create_app(settings): the one app factory."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fieldhub import log
from fieldhub.core import events
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.hub import registry
from fieldhub.hub.emulator.mount import EMULATOR_PREFIX, mount_emulators
from fieldhub.hub.notify import invoice_mail, subticket_mail
from fieldhub.hub.sync.ledger import on_domain_event
from fieldhub.runtime import tune_gc_after_startup
from fieldhub.settings import Settings, get_settings
from fieldhub.web import openapi, routes
from fieldhub.web.bodylimit import BodyLimit
from fieldhub.web.deps import LoginRequired
from fieldhub.web.errors import NOT_FOUND, NulRefused, allowed_methods, request_errors, validation_body
from fieldhub.web.headers import SecurityHeaders
from fieldhub.web.templating import STATIC, render


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/webhooks/")) or "application/json" in request.headers.get(
        "accept", ""
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    log.configure(settings.log_level, settings.log_json)
    # Every core write marks the sync ledger in its own transaction (hub/sync/ledger.py); a sent invoice
    # queues the customer's email in it too (hub/notify/invoice_mail.py), a sub-ticket given to a subcontractor
    # both sides' (hub/notify/subticket_mail.py).
    events.subscribe(on_domain_event)
    events.subscribe(invoice_mail.on_domain_event)
    events.subscribe(subticket_mail.on_domain_event)
    # Each capability's own (an edited estimate voids its open e-signature envelope).
    for listener in registry.capability_listeners():
        events.subscribe(listener)
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatcher: Any = None
        # The demo's emulators resume their state (companies, tokens) before anything calls them.
        await app.state.endpoints.start(app.state.sessionmaker)
        # Embedded sync workers (hub/sync/dispatch.py), or, with none on PostgreSQL, wake-ups deferred as
        # procrastinate jobs for `fieldhub worker`s (hub/sync/queue.py). Tests drive sync explicitly.
        if settings.mode != "test":
            from fieldhub.hub.oauth.env import env_for

            if settings.embedded_workers > 0:
                from fieldhub.hub.sync.dispatch import Dispatcher

                dispatcher = Dispatcher(env_for(app), workers=settings.embedded_workers)
                app.state.sync_dispatcher = dispatcher
            elif not settings.is_sqlite:
                from fieldhub.hub.sync.queue import JobQueue

                dispatcher = JobQueue(env_for(app))
            if dispatcher is not None:
                await dispatcher.start()
        if settings.mode != "test":  # a test process starts many apps; its heap is the test run's
            tune_gc_after_startup()
        yield
        if dispatcher is not None:
            await dispatcher.stop()
        await app.state.endpoints.stop()
        await engine.dispose()

    app = FastAPI(
        title="fieldhub",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine, settings)
    app.add_middleware(BodyLimit)
    app.add_middleware(NulRefused)
    app.add_middleware(SecurityHeaders, skip=(EMULATOR_PREFIX + "/",))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "Not signed in"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(exc.next_url)}", status_code=303)

    # Starlette's own (an unknown path, a 405) as well as the routes': one error page, one JSON body.
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app.router.routes, request.scope))}
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
        page = render(request, "errors/error.html", {"status": exc.status_code, "detail": exc.detail}, exc.status_code)
        page.headers.update(headers or {})
        return page

    # Routes with PageRoute or ApiRoute answer these themselves; these catch the ones without.
    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return await _http_error(request, HTTPException(404, NOT_FOUND))

    @app.exception_handler(ValidationFailed)
    async def _refused(request: Request, exc: ValidationFailed) -> Response:
        if _wants_json(request):
            return JSONResponse(validation_body(exc.errors), status_code=422)
        return render(request, "errors/error.html", {"status": 422, "detail": " ".join(exc.errors.values())}, 422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Field messages only: pydantic's own errors echo the input, which may be 10 MB or hold a secret.
        if _wants_json(request):
            return JSONResponse(validation_body(request_errors(exc)), status_code=422)
        return render(request, "errors/error.html", {"status": 422, "detail": "Some fields were not valid."}, 422)

    for module in route_modules():
        app.include_router(module.router)
    # Demo and test mode: every provider's emulator at /emulators/<key> (production mounts none).
    mount_emulators(app, settings)
    openapi.describe_answers(app)
    return app


def route_modules() -> list:
    """Every module in fieldhub.web.routes that defines `router`, in name order (no central list), then each
    capability's pages (`capabilities/<kind>/routes.py`), then each provider's own (`providers/<key>/routes.py`):
    a kind's screens live in its capability, a provider's in its folder."""
    found = []
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        if hasattr(module, "router"):
            found.append(module)
    for capability in registry.capability_names():
        pages = registry.capability_module(capability, "routes")
        if pages is not None and hasattr(pages, "router"):
            found.append(pages)
    for spec in registry.all():
        own = registry.import_module(spec.key, "routes")
        if own is not None and hasattr(own, "router"):
            found.append(own)
    return found
