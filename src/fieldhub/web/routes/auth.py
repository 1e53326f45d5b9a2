"""Log in and log out."""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.accounts import service as accounts
from fieldhub.web.deps import DB, SESSION_COOKIE, WebCtx
from fieldhub.web.templating import render

router = APIRouter()
# Login CSRF: before there is a session there is no session token to check, so the login form carries a
# random value that is also in this cookie (double submit). A cross-site POST can't read the cookie to
# put it in its form, and a SameSite=Strict cookie isn't even sent with it: without a match, nobody is
# signed in (else a page elsewhere could sign a visitor into the attacker's account).
LOGIN_CSRF_COOKIE = "fh_login_csrf"
FORGED = "This sign-in form expired or came from another site, so nothing was done. Sign in again below."
# Sign-ins are handled a few at a time per process (the hashing pool's threads and two more): twenty
# clients hammering POST /login then wait here, at no cost, instead of each holding a place in the event
# loop's queue ahead of every other page.
SIGN_INS_AT_ONCE = accounts.HASH_THREADS + 2
REFUSAL_PAUSE_S = 1.0  # before a throttled attempt's answer, jittered by half either way


def _turns(request: Request) -> asyncio.Semaphore:
    state = request.app.state
    if not hasattr(state, "sign_in_turns"):
        state.sign_in_turns = asyncio.Semaphore(SIGN_INS_AT_ONCE)
    return state.sign_in_turns


def _safe_next(next_url: str) -> str:
    # Only same-site paths: "//evil.example" and absolute URLs would be an open redirect.
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


def _page(request: Request, status: int, token: str, **context: Any) -> Response:
    """The login page with its CSRF value in the form and in the cookie."""
    response = render(request, "auth/login.html", {"error": "", "email": "", **context, "csrf_token": token}, status)
    if request.cookies.get(LOGIN_CSRF_COOKIE) != token:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=request.app.state.settings.base_url.startswith("https://"),
        )
    return response


def _login_token(request: Request) -> str:
    kept = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return kept if 32 <= len(kept) <= 64 else secrets.token_urlsafe(32)


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return _page(request, 200, _login_token(request), next=_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    db: DB,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    kept = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not kept or not secrets.compare_digest(csrf_token.encode(), kept.encode()):
        return _page(request, 403, _login_token(request), next=_safe_next(next), error=FORGED)
    address = request.client.host if request.client else "unknown"
    async with _turns(request):
        attempt = await accounts.sign_in(db, email, password, address)
    if attempt.user is None:
        if attempt.retry_after:
            # Answered after a pause, outside the turns: a script hammering the form waits for each answer,
            # so the hub serves it a refusal a second instead of as many as the loop can answer. Jittered, so
            # that many connections refused together don't come back, and ask again, all in one burst.
            await asyncio.sleep(REFUSAL_PAUSE_S * random.uniform(0.5, 1.5))
            error = f"Too many failed sign-ins. Try again in {attempt.retry_after} s."
            page = _page(request, 429, kept, next=_safe_next(next), error=error, email=email)
            page.headers["Retry-After"] = str(attempt.retry_after)
            return page
        return _page(
            request, 400, kept, next=_safe_next(next), error="That email and password don't match.", email=email
        )
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
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: WebCtx) -> Response:
    await accounts.end_session(ctx.db, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
