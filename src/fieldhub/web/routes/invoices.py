"""Invoice pages: list with status filter, create and edit with lines, view with send, pay, refund and void."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from fieldhub.core.customers.service import list_customers
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices import service
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.invoices.schemas import MAX_LINES
from fieldhub.core.items.service import get_tax_rate, list_items, list_tax_rates
from fieldhub.core.paging import PageNumber
from fieldhub.core.payments.models import PaymentMethod
from fieldhub.core.payments.service import get_payment
from fieldhub.core.validation import Id, id_or_none
from fieldhub.hub import paylinks, refunds
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync import resync
from fieldhub.web.deps import AdminCtx, Ctx, ManagerCtx, WebCtx
from fieldhub.web.errors import PageRoute
from fieldhub.web.forms import echo, form_data, plain, query
from fieldhub.web.templating import render

router = APIRouter(route_class=PageRoute)
LINE_FIELDS = ("item_id", "description", "quantity", "unit_price", "discount_amount", "taxable")
HEADER = ("customer_id", "issue_date", "due_date", "tax_rate_id", "discount_amount", "memo", "notes")
BLANK_LINE = {"item_id": "", "description": "", "quantity": "1", "unit_price": "", "discount_amount": "", "taxable": ""}
STATUSES = [s.value for s in InvoiceStatus]


@router.get("/invoices")
async def invoice_list(request: Request, ctx: WebCtx, q: str = "", status: str = "", page: PageNumber = 1) -> Response:
    status = status if status in STATUSES else ""
    result = await service.list_invoices(ctx.db, ctx.tenant_id, q=q, status=status or None, page=page)
    return render(
        request,
        "invoices/list.html",
        {"page": result, "q": q, "status": status, "statuses": STATUSES, "params": partial(query, q=q, status=status)},
    )


# ---------------------------------------------------------------- create and edit


def _rows_from_form(values: dict[str, str]) -> list[dict[str, str]]:
    try:
        count = int(values.get("line_count") or 0)
    except ValueError:
        count = 0
    count = max(0, min(count, MAX_LINES + 1))
    return [{f: values.get(f"lines-{i}-{f}", "") for f in LINE_FIELDS} for i in range(count)]


def _is_blank(row: dict[str, str]) -> bool:
    return not (row["item_id"].strip() or row["description"].strip() or row["unit_price"].strip())


def _split_errors(errors: dict[str, str], kept: list[int]) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """Service keys "lines.<n>.<field>" count only filled rows; the page needs the row it shows."""
    header: dict[str, str] = {}
    rows: dict[int, dict[str, str]] = {}
    for key, message in errors.items():
        parts = key.split(".")
        if parts[0] == "lines" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(kept):
            rows.setdefault(kept[int(parts[1])], {})[parts[2]] = message
        elif parts[0] == "lines" and len(parts) >= 2:
            header["lines"] = message
        else:
            header[key] = message
    if "lines" in header and header["lines"] == "Add at least one.":
        header["lines"] = "Add at least one line: pick an item or describe the work and give a price."
    return header, rows


async def _form(
    request: Request,
    ctx: Ctx,
    values: dict[str, Any],
    rows: list[dict[str, Any]],
    errors: dict[str, str] | None = None,
    row_errors: dict[int, dict[str, str]] | None = None,
    invoice: Invoice | None = None,
    status_code: int = 200,
) -> Response:
    customers = await list_customers(ctx.db, ctx.tenant_id, active=True, per_page=200)
    customer_options = [(c.id, c.display_name + (f" ({c.company})" if c.company else "")) for c in customers.items]
    if invoice and invoice.customer and not invoice.customer.active:
        customer_options.insert(0, (invoice.customer.id, invoice.customer.display_name + " (inactive)"))
    items = await list_items(ctx.db, ctx.tenant_id, active=True, per_page=200)
    rates = await list_tax_rates(ctx.db, ctx.tenant_id, active=True)
    return render(
        request,
        "invoices/form.html",
        {
            "invoice": invoice,
            "values": echo(values),
            "rows": [echo(r) for r in rows],
            "errors": errors or {},
            "row_errors": row_errors or {},
            "customers": customer_options,
            "items": [(i.id, f"{i.name} · {i.unit_price}") for i in items.items],
            "rates": [(r.id, f"{r.name} ({plain(r.rate)} %)") for r in rates.items],
        },
        status_code=status_code,
    )


def _service_input(values: dict[str, str], rows: list[dict[str, str]]) -> tuple[dict[str, Any], list[int]]:
    kept = [i for i, row in enumerate(rows) if not _is_blank(row)]
    data: dict[str, Any] = {k: values.get(k, "") for k in HEADER}
    data["lines"] = [rows[i] for i in kept]
    return data, kept


@router.get("/invoices/new")
async def invoice_new(request: Request, ctx: WebCtx, customer_id: str = "") -> Response:
    return await _form(request, ctx, {"customer_id": customer_id}, [dict(BLANK_LINE) for _ in range(3)])


@router.post("/invoices/new")
async def invoice_create(request: Request, ctx: WebCtx) -> Response:
    values = await form_data(request)
    rows = _rows_from_form(values)
    if values.get("add_line"):
        return await _form(request, ctx, values, [*rows, dict(BLANK_LINE)])
    data, kept = _service_input(values, rows)
    data["status"] = "OPEN" if values.get("status") == "OPEN" else "DRAFT"
    try:
        invoice = await service.create_invoice(ctx.db, ctx.tenant_id, data)
    except ValidationFailed as exc:
        errors, row_errors = _split_errors(exc.errors, kept)
        return await _form(request, ctx, values, rows, errors, row_errors, status_code=400)
    return RedirectResponse(f"/invoices/{invoice.id}?msg=created", status_code=303)


def _row(line: Any) -> dict[str, str]:
    return {
        "item_id": str(line.item_id or ""),
        "description": line.description,
        "quantity": plain(line.quantity),
        "unit_price": str(line.unit_price),
        "discount_amount": str(line.discount_amount) if line.discount_amount else "",
        "taxable": "true" if line.taxable else "false",
    }


@router.get("/invoices/{invoice_id:int}/edit")
async def invoice_edit(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    invoice = await service.get_invoice(ctx.db, ctx.tenant_id, invoice_id)
    values = {k: getattr(invoice, k) for k in HEADER}
    values["discount_amount"] = str(invoice.discount_amount) if invoice.discount_amount else ""
    rows = [_row(line) for line in invoice.lines] + [dict(BLANK_LINE)]
    return await _form(request, ctx, values, rows, invoice=invoice)


@router.post("/invoices/{invoice_id:int}/edit")
async def invoice_update(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    invoice = await service.get_invoice(ctx.db, ctx.tenant_id, invoice_id)
    values = await form_data(request)
    rows = _rows_from_form(values)
    if values.get("add_line"):
        return await _form(request, ctx, values, [*rows, dict(BLANK_LINE)], invoice=invoice)
    data, kept = _service_input(values, rows)
    try:
        await service.update_invoice(ctx.db, ctx.tenant_id, invoice_id, data)
    except ValidationFailed as exc:
        errors, row_errors = _split_errors(exc.errors, kept)
        return await _form(request, ctx, values, rows, errors, row_errors, invoice=invoice, status_code=400)
    return RedirectResponse(f"/invoices/{invoice_id}?msg=saved", status_code=303)


# ---------------------------------------------------------------- view and actions


async def _view(request: Request, ctx: Ctx, invoice_id: int, status_code: int = 200, **extra: Any) -> Response:
    invoice = await service.get_invoice(ctx.db, ctx.tenant_id, invoice_id)
    payments = await service.invoice_payments(ctx.db, ctx.tenant_id, invoice.id)
    refunds = await service.invoice_refunds(ctx.db, ctx.tenant_id, invoice.id)
    refunded: dict[int, Any] = {}
    for refund in refunds:
        refunded[refund.payment_id] = refunded.get(refund.payment_id, 0) + refund.amount
    tax_rate = None
    if invoice.tax_rate_id:
        tax_rate = await get_tax_rate(ctx.db, ctx.tenant_id, invoice.tax_rate_id)
    context = {
        "invoice": invoice,
        "payments": [(p, p.amount - refunded.get(p.id, 0)) for p in payments],
        "refunds": refunds,
        "tax_rate": tax_rate,
        "methods": [(m.value, m.value.upper() if m == PaymentMethod.ACH else m.value.title()) for m in PaymentMethod],
        "msg": request.query_params.get("msg", ""),
        "error": "",
        "pay_values": {"amount": str(invoice.balance), "method": "card"},
        "pay_errors": {},
        "refund_for": None,
        "refund_values": {},
        "refund_errors": {},
        "can_edit": invoice.status in service.EDITABLE and not invoice.amount_paid,
        "can_send": invoice.status in service.SENDABLE,
        "can_pay": invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID) and invoice.balance > 0,
        "can_void": invoice.status != InvoiceStatus.VOID and not invoice.amount_paid and ctx.can_manage_business,
        "offer": await paylinks.offer(ctx.db, invoice, env_for(request.app).settings.base_url),
        # Resync per accounting connection that syncs invoices: for who may trigger syncs (owner, admin).
        "syncs": await resync.connections_for(ctx.db, ctx.tenant_id, invoice.id) if ctx.can_manage_integrations else [],
    }
    context.update(extra)
    return render(request, "invoices/view.html", context, status_code=status_code)


@router.get("/invoices/{invoice_id:int}")
async def invoice_view(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    return await _view(request, ctx, invoice_id)


@router.post("/invoices/{invoice_id:int}/send")
async def invoice_send(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    try:
        await service.send_invoice(ctx.db, ctx.tenant_id, invoice_id)
    except ValidationFailed as exc:
        return await _view(request, ctx, invoice_id, 400, error=" ".join(exc.errors.values()))
    return RedirectResponse(f"/invoices/{invoice_id}?msg=sent", status_code=303)


@router.post("/invoices/{invoice_id:int}/void")
async def invoice_void(request: Request, ctx: ManagerCtx, invoice_id: Id) -> Response:
    try:
        await service.void_invoice(ctx.db, ctx.tenant_id, invoice_id)
    except ValidationFailed as exc:
        return await _view(request, ctx, invoice_id, 400, error=" ".join(exc.errors.values()))
    return RedirectResponse(f"/invoices/{invoice_id}?msg=voided", status_code=303)


@router.post("/invoices/{invoice_id:int}/payments")
async def invoice_pay(request: Request, ctx: WebCtx, invoice_id: Id) -> Response:
    values = await form_data(request)
    try:
        await service.record_payment(ctx.db, ctx.tenant_id, invoice_id, values)
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        status_error = errors.pop("status", "")
        return await _view(
            request, ctx, invoice_id, 400, pay_values=echo(values), pay_errors=errors, error=status_error
        )
    return RedirectResponse(f"/invoices/{invoice_id}?msg=paid", status_code=303)


@router.post("/invoices/{invoice_id:int}/payments/{payment_id:int}/refund")
async def invoice_refund(request: Request, ctx: ManagerCtx, invoice_id: Id, payment_id: Id) -> Response:
    payment = await get_payment(ctx.db, ctx.tenant_id, payment_id)
    if payment.invoice_id != invoice_id:
        raise HTTPException(404, "That payment is not on this invoice.")
    values = await form_data(request)
    try:
        await refunds.refund(env_for(request.app), ctx.db, ctx.tenant_id, payment_id, values)
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        status_error = errors.pop("status", "")
        return await _view(
            request,
            ctx,
            invoice_id,
            400,
            refund_for=payment_id,
            refund_values=echo(values),
            refund_errors=errors,
            error=status_error,
        )
    return RedirectResponse(f"/invoices/{invoice_id}?msg=refunded", status_code=303)


@router.post("/invoices/{invoice_id:int}/resync")
async def invoice_resync(request: Request, ctx: AdminCtx, invoice_id: Id) -> Response:
    """Send the invoice again to one accounting connection, with any payment recorded after its first sync."""
    await service.get_invoice(ctx.db, ctx.tenant_id, invoice_id)  # another business's invoice: 404, nothing changed
    values = await form_data(request)
    connection_id = id_or_none(values.get("connection_id", "")) or 0
    try:
        await resync.resync_invoice(ctx.db, ctx.tenant_id, invoice_id, connection_id)
    except resync.ResyncRefused as exc:
        return await _view(request, ctx, invoice_id, 400, error=str(exc))
    return RedirectResponse(f"/invoices/{invoice_id}?msg=resync", status_code=303)
