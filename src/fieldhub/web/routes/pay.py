"""Pay Now: the public pay link (no login) with its success and cancel pages, and the printable invoice."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.validation import Id
from fieldhub.hub import paylinks
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.deps import DB, WebCtx
from fieldhub.web.templating import render

router = APIRouter()


async def _public(db: DB, token: str):  # noqa: ANN202 - (Invoice, Tenant)
    invoice = await paylinks.invoice_for_token(db, token)
    if invoice is None:
        raise HTTPException(404, "This payment link is not valid. Check the link in your invoice email.")
    tenant = await db.get(Tenant, invoice.tenant_id)
    return invoice, tenant


@router.get("/pay/{token}")
async def pay(request: Request, db: DB, token: str) -> Response:
    invoice, tenant = await _public(db, token)
    try:
        url = await paylinks.start_checkout(env_for(request.app), db, invoice)
    except paylinks.Unavailable as e:
        context = {"invoice": invoice, "biz": tenant, "message": e.message, "processing": e.processing}
        return render(request, "pay/unavailable.html", context, e.status)
    return RedirectResponse(url, status_code=303)


@router.get("/pay/{token}/done")
async def done(request: Request, db: DB, token: str) -> Response:
    invoice, tenant = await _public(db, token)
    return render(request, "pay/done.html", {"invoice": invoice, "biz": tenant})


@router.get("/pay/{token}/cancelled")
async def cancelled(request: Request, db: DB, token: str) -> Response:
    invoice, tenant = await _public(db, token)
    return render(request, "pay/cancelled.html", {"invoice": invoice, "biz": tenant, "token": token})


@router.get("/invoices/{invoice_id}/print")
async def printable(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    invoice = await invoices.get_invoice(ctx.db, ctx.tenant_id, invoice_id)
    customer = await ctx.db.get(Customer, invoice.customer_id)
    offer = await paylinks.offer(ctx.db, invoice, env_for(request.app).settings.base_url)
    context = {"invoice": invoice, "customer": customer, "pay_link": offer.link, "offer": offer}
    return render(request, "invoices/print.html", context)
