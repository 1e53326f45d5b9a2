"""Customer pages: list and search, create, view, edit, deactivate."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.customers import service
from fieldhub.core.customers.schemas import FIELDS
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices.service import list_invoices
from fieldhub.core.paging import PageNumber
from fieldhub.core.validation import Id
from fieldhub.web.deps import WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data, query
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
SHOW = {"active": True, "inactive": False, "all": None}


@router.get("/customers")
async def customer_list(
    request: Request, ctx: WebCtx, q: str = "", show: str = "active", page: PageNumber = 1
) -> Response:
    show = show if show in SHOW else "active"
    result = await service.list_customers(ctx.db, ctx.tenant_id, q=q, active=SHOW[show], page=page)
    return render(
        request,
        "customers/list.html",
        {"page": result, "q": q, "show": show, "params": partial(query, q=q, show=show)},
    )


def _form(request: Request, values: dict, errors: dict, customer=None, status_code: int = 200) -> Response:
    return render(
        request,
        "customers/form.html",
        {"values": echo(values), "errors": errors, "customer": customer},
        status_code=status_code,
    )


@router.get("/customers/new")
async def customer_new(request: Request, ctx: WebCtx) -> Response:
    return _form(request, {"billing_country": "US", "service_country": "US"}, {})


@router.post("/customers/new")
async def customer_create(request: Request, ctx: WebCtx) -> Response:
    values = await form_data(request)
    try:
        customer = await service.create_customer(ctx.db, ctx.tenant_id, values)
    except ValidationFailed as exc:
        return _form(request, values, exc.errors, status_code=400)
    return RedirectResponse(f"/customers/{customer.id}?msg=created", status_code=303)


@router.get("/customers/{customer_id:int}")
async def customer_view(request: Request, ctx: WebCtx, customer_id: Id, msg: str = "") -> Response:
    customer = await service.get_customer(ctx.db, ctx.tenant_id, customer_id)
    invoices = await list_invoices(ctx.db, ctx.tenant_id, customer_id=customer.id, per_page=50)
    return render(request, "customers/view.html", {"customer": customer, "invoices": invoices, "msg": msg})


@router.get("/customers/{customer_id:int}/edit")
async def customer_edit(request: Request, ctx: WebCtx, customer_id: Id) -> Response:
    customer = await service.get_customer(ctx.db, ctx.tenant_id, customer_id)
    return _form(request, {f: getattr(customer, f) for f in FIELDS}, {}, customer)


@router.post("/customers/{customer_id:int}/edit")
async def customer_update(request: Request, ctx: WebCtx, customer_id: Id) -> Response:
    customer = await service.get_customer(ctx.db, ctx.tenant_id, customer_id)
    values = await form_data(request)
    # The edit form has every field; active is changed by its own buttons, not here.
    values.pop("active", None)
    try:
        await service.update_customer(ctx.db, ctx.tenant_id, customer_id, values)
    except ValidationFailed as exc:
        return _form(request, values, exc.errors, customer, status_code=400)
    return RedirectResponse(f"/customers/{customer_id}?msg=saved", status_code=303)


@router.post("/customers/{customer_id:int}/deactivate")
async def customer_deactivate(ctx: WebCtx, customer_id: Id) -> Response:
    await service.deactivate_customer(ctx.db, ctx.tenant_id, customer_id)
    return RedirectResponse(f"/customers/{customer_id}?msg=deactivated", status_code=303)


@router.post("/customers/{customer_id:int}/activate")
async def customer_activate(ctx: WebCtx, customer_id: Id) -> Response:
    await service.activate_customer(ctx.db, ctx.tenant_id, customer_id)
    return RedirectResponse(f"/customers/{customer_id}?msg=activated", status_code=303)
