"""The public page kit: what a capability's or a provider's pages use from web/ (never web/routes' private helpers).

Who is asking (`WebCtx` for any signed-in user, `AdminCtx` for Owner and Admin, `ApiCtx` for /api/v1), the
route classes that check the caller before a body is read and turn core errors into 404/422 answers, `render`,
form parsing, and the connection on an integration card that a page is about (another business's or another
card's is a 404). Import from here so web/routes/ can change its insides freely.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import RedirectResponse

from fieldhub.hub import registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.spec import ProviderSpec
from fieldhub.web.deps import DB, AdminCtx, ApiCtx, Ctx, WebCtx
from fieldhub.web.errors import ApiRoute, PageRoute
from fieldhub.web.forms import form_data
from fieldhub.web.templating import render

__all__ = [
    "DB",
    "AdminCtx",
    "ApiCtx",
    "ApiRoute",
    "Ctx",
    "PageRoute",
    "WebCtx",
    "card_url",
    "connection_on_card",
    "form_data",
    "redirect",
    "render",
]


async def connection_on_card(ctx: Ctx, card_key: str, connection_id: int) -> tuple[ProviderSpec, Connection]:
    """The tenant's connection on this card; anything else (another business's, another card's) is a 404."""
    try:
        card = registry.registry().card(card_key)
    except registry.UnknownProvider:
        raise HTTPException(404, "There is no such integration.") from None
    conn = await connections.get(ctx.db, ctx.tenant_id, connection_id)
    if conn is None or conn.provider not in {p.key for p in card.providers}:
        raise HTTPException(404, "That connection was not found.")
    return registry.get(conn.provider), conn


def card_url(spec: ProviderSpec) -> str:
    """The settings page of the card a provider sits on."""
    return f"/settings/integrations/{spec.card or spec.key}"


def redirect(url: str) -> RedirectResponse:
    """After a form's POST: 303 so the browser GETs the next page."""
    return RedirectResponse(url, status_code=303)
