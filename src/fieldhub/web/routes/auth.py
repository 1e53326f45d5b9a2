"""Log in and log out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.accounts import service as accounts
from fieldhub.web.deps import DB, SESSION_COOKIE, WebCtx
from fieldhub.web.templating import render

router = APIRouter()


def _safe_next(next_url: str) -> str:
    # Only same-site paths: "//evil.example" and absolute URLs would be an open redirect.
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


def _page(request: Request, status: int, **context: Any) -> Response:
    return render(request, "auth/login.html", {"error": "", "email": "", **context}, status)


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return _page(request, 200, next=_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    db: DB,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    address = request.client.host if request.client else "unknown"
    attempt = await accounts.sign_in(db, email, password, address)
    if attempt.user is None:
        if attempt.retry_after:
            error = f"Too many failed sign-ins. Try again in {attempt.retry_after} s."
            page = _page(request, 429, next=_safe_next(next), error=error, email=email)
            page.headers["Retry-After"] = str(attempt.retry_after)
            return page
        return _page(request, 400, next=_safe_next(next), error="That email and password don't match.", email=email)
    settings = request.app.state.settings
    token, _ = await accounts.start_session(db, attempt.user, settings.session_days)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https://"),
        max_age=settings.session_days * 86400,
    )
    return response


@router.post("/logout")
async def logout(request: Request, ctx: WebCtx) -> Response:
    await accounts.end_session(ctx.db, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
