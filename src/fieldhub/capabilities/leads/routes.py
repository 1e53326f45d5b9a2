"""The Leads inbox pages: every leads provider's leads in one list (refreshed as they arrive), a lead with its
messages, and the owner's Reply, Accept (into an estimate or a job) and Decline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.capabilities.leads import service
from fieldhub.capabilities.leads.models import LeadStatus
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import PageRoute, WebCtx, card_url, form_data, redirect, render

router = APIRouter(route_class=PageRoute)
KIND = "leads"


async def _feeds(ctx: WebCtx) -> list[dict[str, str]]:
    """Each connected leads provider and whether its leads reach fieldhub (its subscription, as last set up)."""
    feeds = []
    for spec in registry.providers_of(KIND):
        for conn in await connections.for_provider(ctx.db, ctx.tenant_id, spec.key):
            if conn.status == "disconnected":
                continue
            hook = (conn.settings or {}).get("webhook") or {}
            feeds.append(
                {
                    "name": spec.name,
                    "account": conn.account_name,
                    "status": str(conn.status),
                    "registered_at": hook.get("registered_at", ""),
                    "error": hook.get("error", "") if not hook.get("webhook_id") else "",
                    "url": card_url(spec),
                }
            )
    return feeds


@router.get("/leads")
async def inbox(request: Request, ctx: WebCtx) -> Response:
    leads = await service.inbox(ctx.db, ctx.tenant_id)
    return render(request, "leads/inbox.html", {"leads": leads, "feeds": await _feeds(ctx), "names": _names()})


@router.get("/leads/_list")
async def inbox_list(request: Request, ctx: WebCtx) -> Response:
    """The list alone: the inbox page asks for it every second or two (htmx), so a new lead shows without a reload."""
    leads = await service.inbox(ctx.db, ctx.tenant_id)
    return render(request, "leads/_list.html", {"leads": leads, "names": _names()})


def _names() -> dict[str, str]:
    return {spec.key: spec.name for spec in registry.providers_of(KIND)}


@router.get("/leads/{lead_id}")
async def lead_page(request: Request, ctx: WebCtx, lead_id: Id, msg: str = "", error: str = "") -> Response:
    lead = await service.get_lead(ctx.db, ctx.tenant_id, lead_id)
    return render(
        request,
        "leads/lead.html",
        {
            "lead": lead,
            "messages": await service.messages(ctx.db, lead),
            "customer": await service.customer_of(ctx.db, lead),
            "source": _names().get(lead.provider, lead.provider),
            "msg": msg,
            "error": error,
        },
    )


@router.post("/leads/{lead_id}/reply")
async def reply(request: Request, ctx: WebCtx, lead_id: Id) -> Response:
    lead = await service.get_lead(ctx.db, ctx.tenant_id, lead_id)
    values = await form_data(request)
    try:
        await service.reply(ctx.db, env_for(request.app), lead, values.get("text", ""))
    except ValidationFailed as e:
        return await _again(request, ctx, lead_id, next(iter(e.errors.values()), "The reply was not sent."))
    except ProviderError as e:
        return await _again(request, ctx, lead_id, f"The reply was not sent: {e}.", values.get("text", ""))
    return redirect(f"/leads/{lead_id}?msg=sent")


async def _again(request: Request, ctx: WebCtx, lead_id: int, error: str, text: str = "") -> Response:
    lead = await service.get_lead(ctx.db, ctx.tenant_id, lead_id)
    context = {"lead": lead, "messages": await service.messages(ctx.db, lead), "error": error, "text": text}
    context["customer"] = await service.customer_of(ctx.db, lead)
    context["source"] = _names().get(lead.provider, lead.provider)
    return render(request, "leads/lead.html", context, status_code=422)


@router.post("/leads/{lead_id}/accept")
async def accept(request: Request, ctx: WebCtx, lead_id: Id) -> Response:
    lead = await service.get_lead(ctx.db, ctx.tenant_id, lead_id)
    values = await form_data(request)
    try:
        url = await service.accept(ctx.db, lead, "job" if values.get("into") == "job" else "estimate")
    except ValidationFailed as e:
        return await _again(request, ctx, lead_id, next(iter(e.errors.values()), "The lead was not accepted."))
    return redirect(url)


@router.post("/leads/{lead_id}/decline")
async def decline(request: Request, ctx: WebCtx, lead_id: Id) -> Response:
    lead = await service.get_lead(ctx.db, ctx.tenant_id, lead_id)
    try:
        await service.decline(ctx.db, lead)
    except ValidationFailed as e:
        return await _again(request, ctx, lead_id, next(iter(e.errors.values()), "The lead was not declined."))
    return redirect(f"/leads/{lead_id}?msg=declined")


STATUS_WORDS = {s.value: s.value.capitalize() for s in LeadStatus}
