"""Estimate pages: list with status filter, create and edit with lines, view with send, approve and decline, PDF."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.customers.service import list_customers
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.estimates import service
from fieldhub.core.estimates.models import Estimate, EstimateLine, EstimateStatus
from fieldhub.core.estimates.schemas import HEADER_FIELDS
from fieldhub.core.items.service import get_tax_rate, list_items, list_tax_rates
from fieldhub.core.paging import PageNumber
from fieldhub.core.validation import Id
from fieldhub.hub import registry
from fieldhub.web.deps import Ctx, WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data, query
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
LINE_FIELDS = ("item_id", "description", "quantity", "unit_price", "taxable")
BLANK_LINE = {"item_id": "", "description": "", "quantity": "1", "unit_price": "", "taxable": ""}
MAX_ROWS = 200
STATUSES = [s.value for s in EstimateStatus]
ACTIONS = {"send": service.send_estimate, "approve": service.approve_estimate, "decline": service.decline_estimate}


@router.get("/estimates")
async def estimate_list(request: Request, ctx: WebCtx, q: str = "", status: str = "", page: PageNumber = 1) -> Response:
    status = status if status in STATUSES else ""
    result = await service.list_estimates(
        ctx.db, ctx.tenant_id, q=q, status=EstimateStatus(status) if status else None, page=page
    )
    return render(
        request,
        "estimates/list.html",
        {"page": result, "q": q, "status": status, "statuses": STATUSES, "params": partial(query, q=q, status=status)},
    )


# ---------------------------------------------------------------- create and edit


def _rows_from_form(values: dict[str, str]) -> list[dict[str, str]]:
    try:
        count = int(values.get("line_count") or 0)
    except ValueError:
        count = 0
    count = max(0, min(count, MAX_ROWS + 1))
    return [{f: values.get(f"lines-{i}-{f}", "") for f in LINE_FIELDS} for i in range(count)]


def _is_blank(row: dict[str, str]) -> bool:
    return not (row["item_id"].strip() or row["description"].strip() or row["unit_price"].strip())


def _service_input(values: dict[str, str], rows: list[dict[str, str]]) -> tuple[dict[str, Any], list[int]]:
    """Blank rows are left out; `kept` maps the service's line numbers back to the rows on the page."""
    kept = [i for i, row in enumerate(rows) if not _is_blank(row)]
    data: dict[str, Any] = {k: values.get(k, "") for k in HEADER_FIELDS}
    data["lines"] = [rows[i] for i in kept]
    return data, kept


def _split_errors(errors: dict[str, str], kept: list[int]) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    header: dict[str, str] = {}
    rows: dict[int, dict[str, str]] = {}
    for key, message in errors.items():
        parts = key.split(".")
        if parts[0] == "lines" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(kept):
            field = parts[2] if parts[2] in LINE_FIELDS else "description"
            rows.setdefault(kept[int(parts[1])], {}).setdefault(field, message)
        elif parts[0] == "lines":
            header["lines"] = "Add at least one line: pick an item or describe the work and give a price."
        else:
            header[key] = message
    return header, rows


def _row(line: EstimateLine) -> dict[str, str]:
    return {
        "item_id": str(line.item_id or ""),
        "description": line.description,
        "quantity": str(line.quantity.normalize()),
        "unit_price": str(line.unit_price),
        "taxable": "true" if line.taxable else "false",
    }


async def _form(
    request: Request,
    ctx: Ctx,
    values: dict[str, Any],
    rows: list[dict[str, Any]],
    errors: dict[str, str] | None = None,
    row_errors: dict[int, dict[str, str]] | None = None,
    estimate: Estimate | None = None,
    status_code: int = 200,
) -> Response:
    customers = await list_customers(ctx.db, ctx.tenant_id, active=True, per_page=200)
    customer_options = [(c.id, c.display_name + (f" ({c.company})" if c.company else "")) for c in customers.items]
    if estimate and not estimate.customer.active:
        customer_options.insert(0, (estimate.customer.id, estimate.customer.display_name + " (inactive)"))
    items = await list_items(ctx.db, ctx.tenant_id, active=True, per_page=200)
    rates = await list_tax_rates(ctx.db, ctx.tenant_id, active=True)
    return render(
        request,
        "estimates/form.html",
        {
            "estimate": estimate,
            "values": echo(values),
            "rows": [echo(r) for r in rows],
            "errors": errors or {},
            "row_errors": row_errors or {},
            "customers": customer_options,
            "items": [(i.id, f"{i.name} · {i.unit_price}") for i in items.items],
            "rates": [(r.id, f"{r.name} ({r.rate.normalize()} %)") for r in rates.items],
        },
        status_code=status_code,
    )


@router.get("/estimates/new")
async def estimate_new(request: Request, ctx: WebCtx, customer_id: str = "") -> Response:
    return await _form(request, ctx, {"customer_id": customer_id}, [dict(BLANK_LINE) for _ in range(3)])


@router.post("/estimates/new")
async def estimate_create(request: Request, ctx: WebCtx) -> Response:
    values = await form_data(request)
    rows = _rows_from_form(values)
    if values.get("add_line"):
        return await _form(request, ctx, values, [*rows, dict(BLANK_LINE)])
    data, kept = _service_input(values, rows)
    try:
        estimate = await service.create_estimate(ctx.db, ctx.tenant_id, data)
    except ValidationFailed as exc:
        errors, row_errors = _split_errors(exc.errors, kept)
        return await _form(request, ctx, values, rows, errors, row_errors, status_code=400)
    return RedirectResponse(f"/estimates/{estimate.id}?msg=created", status_code=303)


@router.get("/estimates/{estimate_id:int}/edit")
async def estimate_edit(request: Request, ctx: WebCtx, estimate_id: Id) -> Response:
    estimate = await service.get_estimate(ctx.db, ctx.tenant_id, estimate_id)
    if estimate.status not in service.EDITABLE:
        return RedirectResponse(f"/estimates/{estimate_id}", status_code=303)
    values = {k: getattr(estimate, k) for k in HEADER_FIELDS}
    rows = [_row(line) for line in estimate.lines] + [dict(BLANK_LINE)]
    return await _form(request, ctx, values, rows, estimate=estimate)


@router.post("/estimates/{estimate_id:int}/edit")
async def estimate_update(request: Request, ctx: WebCtx, estimate_id: Id) -> Response:
    estimate = await service.get_estimate(ctx.db, ctx.tenant_id, estimate_id)
    values = await form_data(request)
    rows = _rows_from_form(values)
    if values.get("add_line"):
        return await _form(request, ctx, values, [*rows, dict(BLANK_LINE)], estimate=estimate)
    data, kept = _service_input(values, rows)
    try:
        await service.update_estimate(ctx.db, ctx.tenant_id, estimate_id, data)
    except ValidationFailed as exc:
        errors, row_errors = _split_errors(exc.errors, kept)
        return await _form(request, ctx, values, rows, errors, row_errors, estimate=estimate, status_code=400)
    return RedirectResponse(f"/estimates/{estimate_id}?msg=saved", status_code=303)


# ---------------------------------------------------------------- view and actions


async def _panels(request: Request, ctx: Ctx, estimate: Estimate) -> list[dict[str, Any]]:
    """What each capability shows on an estimate (`capabilities/<kind>/panels.py`: `estimate_panel`), by folder."""
    found = []
    for capability in registry.capability_names():
        module = registry.capability_module(capability, "panels")
        if module is not None and hasattr(module, "estimate_panel"):
            panel = await module.estimate_panel(request, ctx, estimate)
            if panel:
                found.append(panel)
    return found


async def _view(request: Request, ctx: Ctx, estimate_id: int, error: str = "", status_code: int = 200) -> Response:
    estimate = await service.get_estimate(ctx.db, ctx.tenant_id, estimate_id)
    rate = await get_tax_rate(ctx.db, ctx.tenant_id, estimate.tax_rate_id) if estimate.tax_rate_id else None
    panels = await _panels(request, ctx, estimate)
    return render(
        request,
        "estimates/view.html",
        {
            "estimate": estimate,
            "rate": rate,
            "msg": request.query_params.get("msg", ""),
            "error": error,
            "editable": estimate.status in service.EDITABLE,
            "panels": panels,
        },
        status_code=status_code,
    )


@router.get("/estimates/{estimate_id:int}")
async def estimate_view(request: Request, ctx: WebCtx, estimate_id: Id) -> Response:
    return await _view(request, ctx, estimate_id)


# `<id>.pdf`, not `<id>/pdf`: the estimate's actions are POST /estimates/<id>/<action>, and a GET beside them
# would make that path answer two methods for two different things (its Allow header would say GET, POST).
@router.get(
    "/estimates/{estimate_id:int}.pdf",
    response_class=Response,
    responses={200: {"description": "The estimate as a PDF.", "content": {"application/pdf": {}}}},
)
async def estimate_pdf(ctx: WebCtx, estimate_id: Id) -> Response:
    name, pdf = await service.estimate_pdf(ctx.db, ctx.tenant_id, estimate_id)
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.post("/estimates/{estimate_id:int}/{action}")
async def estimate_action(request: Request, ctx: WebCtx, estimate_id: Id, action: str) -> Response:
    act = ACTIONS.get(action)
    if act is None:
        return await _view(request, ctx, estimate_id, "That action isn't available.", status_code=404)
    try:
        await act(ctx.db, ctx.tenant_id, estimate_id)
    except ValidationFailed as exc:
        return await _view(request, ctx, estimate_id, " ".join(exc.errors.values()), status_code=400)
    return RedirectResponse(f"/estimates/{estimate_id}?msg={action}", status_code=303)
