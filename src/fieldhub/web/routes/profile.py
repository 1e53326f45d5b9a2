"""The signed-in user's profile: who they are, and their personal API tokens (make one, see them, revoke one).

A token's value is shown once, on the page that answers its creation, and never again: the list shows its
name and prefix, when it expires and when it was last used. Every role has this page; a token acts with its
user's role.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.accounts import service as accounts
from fieldhub.core.validation import Id
from fieldhub.db import utcnow
from fieldhub.web.deps import WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import form_data
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)


async def _page(
    request: Request, ctx: WebCtx, *, values: dict | None = None, errors: dict | None = None, **extra: object
) -> Response:
    rows = await accounts.api_tokens(ctx.db, user_id=ctx.user.id)
    now = utcnow()
    return render(
        request,
        "profile/index.html",
        {
            "tokens": [(row, accounts.token_state(row, now)) for row in rows],
            "day_choices": [(str(d), f"{d} days") for d in accounts.API_TOKEN_DAY_CHOICES],
            "values": values or {"days": str(accounts.API_TOKEN_DAYS)},
            "errors": errors or {},
            **extra,
        },
        status_code=400 if errors else 200,
    )


@router.get("/profile")
async def profile(request: Request, ctx: WebCtx, msg: str = "") -> Response:
    return await _page(request, ctx, msg=msg)


@router.post("/profile/tokens")
async def token_create(request: Request, ctx: WebCtx) -> Response:
    """Answers with the page itself, the new value shown once (the page is Cache-Control: no-store)."""
    values = await form_data(request)
    name = values.get("name", "").strip()
    errors = {}
    if not name:
        errors["name"] = "Give the token a name, such as the tool that will use it."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    if values.get("days") not in {str(d) for d in accounts.API_TOKEN_DAY_CHOICES}:
        errors["days"] = "Choose how long it lasts."
    if errors:
        return await _page(request, ctx, values=values, errors=errors)
    token = await accounts.create_api_token(ctx.db, ctx.user, name, days=int(values["days"]))
    return await _page(request, ctx, new_token=token, new_name=name)


@router.post("/profile/tokens/{token_id}/revoke")
async def token_revoke(ctx: WebCtx, token_id: Id) -> Response:
    if await accounts.revoke_api_token(ctx.db, token_id, user_id=ctx.user.id) is None:
        raise HTTPException(404, "That token doesn't exist, or it isn't yours.")
    return RedirectResponse("/profile?msg=revoked", status_code=303)
