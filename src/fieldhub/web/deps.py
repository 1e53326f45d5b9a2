"""FastAPI dependencies: the database session, who is asking, their tenant, CSRF, role checks."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import LoginSession, Role, Tenant, User
from fieldhub.settings import Settings

SESSION_COOKIE = "fh_session"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; committed when the route returns without error.

    On any error the session is only closed: that undoes the transaction as rollback() would, without
    expiring the loaded user, so the answer (a 403, 404 or 422 page) can still show who is signed in.
    """
    async with request.app.state.sessionmaker() as session:
        yield session
        await session.commit()


# Function-scoped: the commit happens before the reply is sent. By default FastAPI runs a yield dependency's exit
# after the response, so a browser following a 303 could outrun the commit (and land on /login after signing in).
DB = Annotated[AsyncSession, Depends(get_db, scope="function")]


class LoginRequired(Exception):
    """Raised for a browser request without a session: the app redirects to /login."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


@dataclass
class Ctx:
    """Who is asking and for which business: every service call is scoped by ctx.tenant_id."""

    db: AsyncSession
    user: User
    login: LoginSession | None  # None for API-token requests

    @property
    def tenant_id(self) -> int:
        return self.user.tenant_id

    @property
    def tenant(self) -> Tenant:
        return self.user.tenant

    @property
    def csrf_token(self) -> str:
        return self.login.csrf_token if self.login else ""

    @property
    def can_manage_integrations(self) -> bool:
        return Role(self.user.role).manages_integrations

    @property
    def can_manage_business(self) -> bool:
        """Refunds, voids, deletes and settings: the Owner and Admin only (pages and API alike)."""
        return Role(self.user.role).manages_business


async def _check_csrf(request: Request, login: LoginSession) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token", "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            sent = str(form.get("csrf_token", ""))
    if not secrets.compare_digest(sent, login.csrf_token):
        raise HTTPException(403, "The form expired or came from another site. Reload the page and try again.")


async def web_ctx(request: Request, db: DB) -> Ctx:
    """A signed-in browser user; unsafe methods must carry the session's CSRF token."""
    login = await accounts.resolve_session(db, request.cookies.get(SESSION_COOKIE, ""))
    if login is None:
        raise LoginRequired(str(request.url.path))
    await _check_csrf(request, login)
    request.state.ctx = Ctx(db=db, user=login.user, login=login)
    return request.state.ctx


async def _api_user(request: Request, db: AsyncSession) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    found = (
        await accounts.check_api_token(db, token.strip())
        if scheme.lower() == "bearer"
        else accounts.TokenCheck(None, accounts.TOKEN_REQUIRED)
    )
    if found.user is None:
        raise HTTPException(401, found.refusal, headers={"WWW-Authenticate": "Bearer"})
    return found.user


async def api_ctx(request: Request, db: DB) -> Ctx:
    """An API caller with `Authorization: Bearer fhp_…`."""
    return Ctx(db=db, user=await _api_user(request, db), login=None)


OWNER_OR_ADMIN = (
    "Only the business's Owner or Admin can do this (refunds, voids, deletes and settings). Ask one of them."
)
INTEGRATIONS_OWNER_OR_ADMIN = "Integrations are managed by the business's Owner or Admin."


def _refuse_role(user: User, detail: str) -> None:
    if not Role(user.role).manages_business:
        raise HTTPException(403, detail)


async def signed_in_before_body(request: Request, ctx_dependency: object, role_detail: str = "") -> None:
    """Who is asking, checked before a route reads its body (FastAPI reads and parses the body before it
    solves any dependency): a caller who isn't signed in is refused without a byte of the body pulled, and so
    is one whose role the route does not allow (`role_detail`: the 403's words), before the body could be
    judged.

    A short session of its own, released before the body streams in; the route's dependency then resolves
    the caller again in the request's session (an indexed lookup), so the rules live in one place.
    """
    async with request.app.state.sessionmaker() as db:
        if ctx_dependency is api_ctx:
            user = await _api_user(request, db)
        else:
            login = await accounts.resolve_session(db, request.cookies.get(SESSION_COOKIE, ""))
            if login is None:
                raise LoginRequired(str(request.url.path))
            user = login.user
            # A refusal's page is a signed-in page (the menu, who is signed in), not the bare one for strangers.
            request.state.ctx = Ctx(db=db, user=user, login=login)
        if role_detail:
            _refuse_role(user, role_detail)


WebCtx = Annotated[Ctx, Depends(web_ctx)]
ApiCtx = Annotated[Ctx, Depends(api_ctx)]


def require_integrations_admin(ctx: WebCtx) -> Ctx:
    _refuse_role(ctx.user, INTEGRATIONS_OWNER_OR_ADMIN)
    return ctx


def require_owner_or_admin(ctx: WebCtx) -> Ctx:
    """A page that refunds, voids, deletes or changes a setting: a friendly 403 page for anyone else."""
    _refuse_role(ctx.user, OWNER_OR_ADMIN)
    return ctx


def require_api_owner_or_admin(ctx: ApiCtx) -> Ctx:
    """The same on /api/v1: a token acts with its user's role; anyone else gets 403 {"detail"}."""
    _refuse_role(ctx.user, OWNER_OR_ADMIN)
    return ctx


# Every dependency that admits only the Owner and Admin, with its 403's words: the route classes check these
# before a body is read, and tests/web/test_roles.py walks every route for them.
ROLE_GATES: dict[object, str] = {
    require_integrations_admin: INTEGRATIONS_OWNER_OR_ADMIN,
    require_owner_or_admin: OWNER_OR_ADMIN,
    require_api_owner_or_admin: OWNER_OR_ADMIN,
}

AdminCtx = Annotated[Ctx, Depends(require_integrations_admin)]
ManagerCtx = Annotated[Ctx, Depends(require_owner_or_admin)]
ApiManagerCtx = Annotated[Ctx, Depends(require_api_owner_or_admin)]
