"""Item pages (list, create, view, edit) and the tax-rate page under /items/tax-rates."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.errors import ValidationFailed
from fieldhub.core.items import service
from fieldhub.core.items.models import ItemKind
from fieldhub.core.items.schemas import ITEM_FIELDS, TAX_RATE_FIELDS
from fieldhub.core.paging import PageNumber
from fieldhub.core.validation import Id
from fieldhub.web.deps import ManagerCtx, WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data, plain, query
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
SHOW = {"active": True, "inactive": False, "all": None}


def _checkboxes(values: dict[str, str], *names: str) -> dict[str, str]:
    # An unticked checkbox is simply absent from the form: absent means false on these forms.
    return {**values, **{n: "true" if values.get(n) in ("true", "on") else "false" for n in names}}


@router.get("/items")
async def item_list(request: Request, ctx: WebCtx, q: str = "", show: str = "active", page: PageNumber = 1) -> Response:
    show = show if show in SHOW else "active"
    result = await service.list_items(ctx.db, ctx.tenant_id, q=q, active=SHOW[show], page=page)
    return render(
        request, "items/list.html", {"page": result, "q": q, "show": show, "params": partial(query, q=q, show=show)}
    )


def _form(request: Request, values: dict, errors: dict, item=None, status_code: int = 200) -> Response:
    return render(
        request,
        "items/form.html",
        {"values": echo(values), "errors": errors, "item": item, "kinds": [(k.value, k.title()) for k in ItemKind]},
        status_code=status_code,
    )


@router.get("/items/new")
async def item_new(request: Request, ctx: WebCtx) -> Response:
    return _form(request, {"kind": "service", "active": True, "unit_price": "0.00"}, {})


@router.post("/items/new")
async def item_create(request: Request, ctx: WebCtx) -> Response:
    values = _checkboxes(await form_data(request), "taxable", "active")
    try:
        item = await service.create_item(ctx.db, ctx.tenant_id, values)
    except ValidationFailed as exc:
        return _form(request, values, exc.errors, status_code=400)
    return RedirectResponse(f"/items/{item.id}?msg=created", status_code=303)


@router.get("/items/{item_id:int}")
async def item_view(request: Request, ctx: WebCtx, item_id: Id, msg: str = "") -> Response:
    item = await service.get_item(ctx.db, ctx.tenant_id, item_id)
    return render(request, "items/view.html", {"item": item, "msg": msg})


@router.get("/items/{item_id:int}/edit")
async def item_edit(request: Request, ctx: WebCtx, item_id: Id) -> Response:
    item = await service.get_item(ctx.db, ctx.tenant_id, item_id)
    return _form(request, {f: getattr(item, f) for f in ITEM_FIELDS}, {}, item)


@router.post("/items/{item_id:int}/edit")
async def item_update(request: Request, ctx: WebCtx, item_id: Id) -> Response:
    item = await service.get_item(ctx.db, ctx.tenant_id, item_id)
    values = _checkboxes(await form_data(request), "taxable", "active")
    try:
        await service.update_item(ctx.db, ctx.tenant_id, item_id, values)
    except ValidationFailed as exc:
        return _form(request, values, exc.errors, item, status_code=400)
    return RedirectResponse(f"/items/{item_id}?msg=saved", status_code=303)


# ---------------------------------------------------------------- tax rates


async def _rates_page(request: Request, ctx, values: dict, errors: dict, status_code: int = 200) -> Response:
    rates = await service.list_tax_rates(ctx.db, ctx.tenant_id)
    return render(
        request,
        "items/tax_rates.html",
        {"rates": rates, "values": echo(values), "errors": errors, "msg": request.query_params.get("msg", "")},
        status_code=status_code,
    )


@router.get("/items/tax-rates")
async def tax_rates(request: Request, ctx: WebCtx) -> Response:
    return await _rates_page(request, ctx, {"active": True}, {})


@router.post("/items/tax-rates")
async def tax_rate_create(request: Request, ctx: ManagerCtx) -> Response:
    values = _checkboxes(await form_data(request), "active")
    try:
        await service.create_tax_rate(ctx.db, ctx.tenant_id, values)
    except ValidationFailed as exc:
        return await _rates_page(request, ctx, values, exc.errors, status_code=400)
    return RedirectResponse("/items/tax-rates?msg=created", status_code=303)


@router.get("/items/tax-rates/{rate_id:int}/edit")
async def tax_rate_edit(request: Request, ctx: ManagerCtx, rate_id: Id) -> Response:
    rate = await service.get_tax_rate(ctx.db, ctx.tenant_id, rate_id)
    values = {f: getattr(rate, f) for f in TAX_RATE_FIELDS}
    values["rate"] = plain(rate.rate)
    return render(request, "items/tax_rate_form.html", {"rate": rate, "values": values, "errors": {}})


@router.post("/items/tax-rates/{rate_id:int}/edit")
async def tax_rate_update(request: Request, ctx: ManagerCtx, rate_id: Id) -> Response:
    rate = await service.get_tax_rate(ctx.db, ctx.tenant_id, rate_id)
    values = _checkboxes(await form_data(request), "active")
    try:
        await service.update_tax_rate(ctx.db, ctx.tenant_id, rate_id, values)
    except ValidationFailed as exc:
        return render(
            request,
            "items/tax_rate_form.html",
            {"rate": rate, "values": echo(values), "errors": exc.errors},
            status_code=400,
        )
    return RedirectResponse("/items/tax-rates?msg=saved", status_code=303)
