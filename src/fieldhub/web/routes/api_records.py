"""JSON API /api/v1 for the business's records: customers, items, tax rates, invoices, payments, refunds.

Bearer personal token (ApiCtx). Money is a string ("12.50"), never a float, in and out. A refused input is
422 {"detail", "errors": {field: message}}; another business's record is 404, like a missing one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from fieldhub.core.customers import service as customers
from fieldhub.core.customers.schemas import CustomerIn
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.schemas import InvoiceIn, PaymentIn, RefundIn
from fieldhub.core.items import service as items
from fieldhub.core.items.schemas import ItemIn, TaxRateIn
from fieldhub.core.paging import PageNumber
from fieldhub.core.payments import service as payments
from fieldhub.core.validation import Id
from fieldhub.hub import refunds
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.api import Amount, ListOut, Out, PerPage, given, page_out, partial
from fieldhub.web.deps import ApiCtx, ApiManagerCtx
from fieldhub.web.errors import ApiRoute

router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["records"])


CustomerPatch = partial(CustomerIn)
ItemPatch = partial(ItemIn)
TaxRatePatch = partial(TaxRateIn)
InvoicePatch = partial(InvoiceIn)


class CustomerOut(Out):
    id: int
    version: int
    display_name: str
    company: str
    email: str
    phone: str
    billing_line1: str
    billing_line2: str
    billing_city: str
    billing_region: str
    billing_postal_code: str
    billing_country: str
    service_line1: str
    service_line2: str
    service_city: str
    service_region: str
    service_postal_code: str
    service_country: str
    notes: str
    active: bool
    created_at: datetime
    updated_at: datetime


class ItemOut(Out):
    id: int
    version: int
    name: str
    sku: str
    description: str
    unit_price: Amount
    kind: str
    taxable: bool
    active: bool


class TaxRateOut(Out):
    id: int
    version: int
    name: str
    rate: Amount
    agency: str
    active: bool


class InvoiceLineOut(Out):
    id: int
    position: int
    item_id: int | None
    description: str
    quantity: Amount
    unit_price: Amount
    discount_amount: Amount
    amount: Amount
    taxable: bool


class InvoiceOut(Out):
    id: int
    version: int
    number: str
    customer_id: int
    status: str
    issue_date: date
    due_date: date | None
    tax_rate_id: int | None
    discount_amount: Amount
    subtotal: Amount
    discount_total: Amount
    tax_total: Amount
    total: Amount
    amount_paid: Amount
    balance: Amount
    memo: str
    notes: str
    sent_at: datetime | None
    voided_at: datetime | None
    lines: list[InvoiceLineOut]


class PaymentOut(Out):
    id: int
    version: int
    invoice_id: int
    customer_id: int
    amount: Amount
    received_on: date
    method: str
    status: str
    reference: str
    notes: str


class RefundOut(Out):
    id: int
    version: int
    payment_id: int
    invoice_id: int
    amount: Amount
    refunded_on: date
    reason: str
    reference: str


# ---------------------------------------------------------------- customers


@router.get("/customers", response_model=ListOut[CustomerOut])
async def api_customers(
    ctx: ApiCtx, q: str = "", active: bool | None = None, page: PageNumber = 1, per_page: PerPage = 25
) -> Any:
    return page_out(
        await customers.list_customers(ctx.db, ctx.tenant_id, q=q, active=active, page=page, per_page=per_page),
        CustomerOut,
    )


@router.post("/customers", response_model=CustomerOut, status_code=201)
async def api_customer_create(ctx: ApiCtx, body: CustomerIn) -> Any:
    return await customers.create_customer(ctx.db, ctx.tenant_id, given(body))


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def api_customer(ctx: ApiCtx, customer_id: Id) -> Any:
    return await customers.get_customer(ctx.db, ctx.tenant_id, customer_id)


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
async def api_customer_update(ctx: ApiCtx, customer_id: Id, body: Annotated[CustomerPatch, Body()]) -> Any:  # type: ignore[valid-type]
    return await customers.update_customer(ctx.db, ctx.tenant_id, customer_id, given(body))


# ---------------------------------------------------------------- items and tax rates


@router.get("/items", response_model=ListOut[ItemOut])
async def api_items(
    ctx: ApiCtx, q: str = "", active: bool | None = None, page: PageNumber = 1, per_page: PerPage = 25
) -> Any:
    return page_out(
        await items.list_items(ctx.db, ctx.tenant_id, q=q, active=active, page=page, per_page=per_page), ItemOut
    )


@router.post("/items", response_model=ItemOut, status_code=201)
async def api_item_create(ctx: ApiCtx, body: ItemIn) -> Any:
    return await items.create_item(ctx.db, ctx.tenant_id, given(body))


@router.get("/items/{item_id}", response_model=ItemOut)
async def api_item(ctx: ApiCtx, item_id: Id) -> Any:
    return await items.get_item(ctx.db, ctx.tenant_id, item_id)


@router.patch("/items/{item_id}", response_model=ItemOut)
async def api_item_update(ctx: ApiCtx, item_id: Id, body: Annotated[ItemPatch, Body()]) -> Any:  # type: ignore[valid-type]
    return await items.update_item(ctx.db, ctx.tenant_id, item_id, given(body))


@router.get("/tax-rates", response_model=ListOut[TaxRateOut])
async def api_tax_rates(ctx: ApiCtx, active: bool | None = None, page: PageNumber = 1, per_page: PerPage = 100) -> Any:
    return page_out(
        await items.list_tax_rates(ctx.db, ctx.tenant_id, active=active, page=page, per_page=per_page), TaxRateOut
    )


@router.post("/tax-rates", response_model=TaxRateOut, status_code=201)
async def api_tax_rate_create(ctx: ApiManagerCtx, body: TaxRateIn) -> Any:
    return await items.create_tax_rate(ctx.db, ctx.tenant_id, given(body))


@router.get("/tax-rates/{tax_rate_id}", response_model=TaxRateOut)
async def api_tax_rate(ctx: ApiCtx, tax_rate_id: Id) -> Any:
    return await items.get_tax_rate(ctx.db, ctx.tenant_id, tax_rate_id)


@router.patch("/tax-rates/{tax_rate_id}", response_model=TaxRateOut)
async def api_tax_rate_update(ctx: ApiManagerCtx, tax_rate_id: Id, body: Annotated[TaxRatePatch, Body()]) -> Any:  # type: ignore[valid-type]
    return await items.update_tax_rate(ctx.db, ctx.tenant_id, tax_rate_id, given(body))


# ---------------------------------------------------------------- invoices


@router.get("/invoices", response_model=ListOut[InvoiceOut])
async def api_invoices(
    ctx: ApiCtx,
    q: str = "",
    status: Annotated[str | None, Query(pattern="^(DRAFT|OPEN|SENT|PARTIALLY_PAID|PAID|VOID)$")] = None,
    customer_id: Id | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 25,
) -> Any:
    result = await invoices.list_invoices(
        ctx.db, ctx.tenant_id, q=q, status=status, customer_id=customer_id, page=page, per_page=per_page
    )
    return page_out(result, InvoiceOut)


@router.post("/invoices", response_model=InvoiceOut, status_code=201)
async def api_invoice_create(ctx: ApiCtx, body: InvoiceIn) -> Any:
    return await invoices.create_invoice(ctx.db, ctx.tenant_id, given(body))


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
async def api_invoice(ctx: ApiCtx, invoice_id: Id) -> Any:
    return await invoices.get_invoice(ctx.db, ctx.tenant_id, invoice_id)


@router.patch("/invoices/{invoice_id}", response_model=InvoiceOut)
async def api_invoice_update(ctx: ApiCtx, invoice_id: Id, body: Annotated[InvoicePatch, Body()]) -> Any:  # type: ignore[valid-type]
    return await invoices.update_invoice(ctx.db, ctx.tenant_id, invoice_id, given(body))


@router.post("/invoices/{invoice_id}/send", response_model=InvoiceOut)
async def api_invoice_send(ctx: ApiCtx, invoice_id: Id) -> Any:
    return await invoices.send_invoice(ctx.db, ctx.tenant_id, invoice_id)


@router.post("/invoices/{invoice_id}/void", response_model=InvoiceOut)
async def api_invoice_void(ctx: ApiManagerCtx, invoice_id: Id) -> Any:
    return await invoices.void_invoice(ctx.db, ctx.tenant_id, invoice_id)


@router.get("/invoices/{invoice_id}/payments", response_model=list[PaymentOut])
async def api_invoice_payments(ctx: ApiCtx, invoice_id: Id) -> Any:
    invoice = await invoices.get_invoice(ctx.db, ctx.tenant_id, invoice_id)
    return await invoices.invoice_payments(ctx.db, ctx.tenant_id, invoice.id)


@router.post("/invoices/{invoice_id}/payments", response_model=PaymentOut, status_code=201)
async def api_invoice_pay(ctx: ApiCtx, invoice_id: Id, body: PaymentIn) -> Any:
    return await invoices.record_payment(ctx.db, ctx.tenant_id, invoice_id, given(body))


# ---------------------------------------------------------------- payments and refunds


@router.get("/payments", response_model=ListOut[PaymentOut])
async def api_payments(ctx: ApiCtx, invoice_id: Id | None = None, page: PageNumber = 1, per_page: PerPage = 25) -> Any:
    result = await payments.list_payments(ctx.db, ctx.tenant_id, invoice_id=invoice_id, page=page, per_page=per_page)
    return page_out(result, PaymentOut)


@router.get("/payments/{payment_id}", response_model=PaymentOut)
async def api_payment(ctx: ApiCtx, payment_id: Id) -> Any:
    return await payments.get_payment(ctx.db, ctx.tenant_id, payment_id)


@router.post("/payments/{payment_id}/refunds", response_model=RefundOut, status_code=201)
async def api_payment_refund(request: Request, ctx: ApiManagerCtx, payment_id: Id, body: RefundIn) -> Any:
    """A payment a payments provider took is refunded there too (the money goes back); others are recorded."""
    return await refunds.refund(env_for(request.app), ctx.db, ctx.tenant_id, payment_id, given(body))


@router.get("/refunds", response_model=ListOut[RefundOut])
async def api_refunds(
    ctx: ApiCtx,
    invoice_id: Id | None = None,
    payment_id: Id | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 25,
) -> Any:
    result = await payments.list_refunds(
        ctx.db, ctx.tenant_id, invoice_id=invoice_id, payment_id=payment_id, page=page, per_page=per_page
    )
    return page_out(result, RefundOut)


@router.get("/refunds/{refund_id}", response_model=RefundOut)
async def api_refund(ctx: ApiCtx, refund_id: Id) -> Any:
    return await payments.get_refund(ctx.db, ctx.tenant_id, refund_id)
