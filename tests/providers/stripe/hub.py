"""Helpers for tests of the hub's Stripe integration: a connected business, a sent invoice, webhooks in-process."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.payments.models import Payment
from fieldhub.hub.connections.models import Connection
from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.hub.oauth.conftest import consent

RIVERBEND = "acct_1RiverbendPlumb0"


@dataclass
class StripeHub:
    """The app, its mounted Stripe emulator delivering webhooks straight into the app, and an owner's browser."""

    app: Any
    emu: StripeEmulator
    owner: Any  # tests.conftest.Browser

    async def control(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.owner.request(method, f"/emulators/stripe/_emulator/{path}", **kw)

    async def delivered(self) -> None:
        """Let the emulator send every webhook it has queued, and wait until the hub has answered them all."""
        await self.emu.webhooks.flush(force=True)
        await self.emu.webhooks.idle()

    async def connect(self) -> Connection:
        reply, _ = await consent(self.owner, "stripe", account=RIVERBEND)
        assert reply.status_code == 303, reply.text
        async with self.app.state.sessionmaker() as s:
            return (await s.scalars(select(Connection).where(Connection.provider == "stripe"))).one()

    async def open_pay_link(self, invoice: Invoice) -> str:
        """Open the invoice's pay link as the customer would (no login) and return the checkout session id."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver") as anon:
            r = await anon.get(f"/pay/{invoice.public_token}")
        assert r.status_code == 303, r.text
        match = re.search(r"/c/pay/(cs_test_\w+)", r.headers["location"])
        assert match, r.headers["location"]
        return match.group(1)

    async def pay_card(self, session_id: str, number: str = "4242424242424242") -> httpx.Response:
        page = await self.owner.get(f"/emulators/stripe/c/pay/{session_id}")
        assert page.status_code == 200, page.text
        return await self.owner.post(
            f"/emulators/stripe/c/pay/{session_id}/card",
            data={"number": number, "exp": "12/34", "cvc": "123", "name": "Pat Customer", "email": "pat@example.com"},
        )

    async def pay_bank(self, session_id: str) -> httpx.Response:
        return await self.control("POST", f"checkout/sessions/{session_id}/pay", json={"method": "bank"})


async def sent_invoice(session: AsyncSession, tenant_id: int, amount: str = "250.00") -> Invoice:
    customer = await create_customer(session, tenant_id, {"display_name": "Pat Customer", "email": "pat@example.com"})
    invoice = await invoices.create_invoice(
        session,
        tenant_id,
        {"customer_id": customer.id, "lines": [{"description": "Water heater", "unit_price": amount}]},
    )
    await invoices.send_invoice(session, tenant_id, invoice.id)
    await session.commit()
    return invoice


async def reload(app: Any, invoice_id: int) -> tuple[Invoice, list[Payment]]:
    async with app.state.sessionmaker() as s:
        invoice = await s.get(Invoice, invoice_id)
        payments = list(await s.scalars(select(Payment).where(Payment.invoice_id == invoice_id).order_by(Payment.id)))
        return invoice, payments


def money(value: str) -> Decimal:
    return Decimal(value)


def path_of(url: str) -> str:
    return urlparse(url).path


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Form values are all strings; turn them into what the spec's schema says they are (integer, boolean...)."""
    for option in schema.get("anyOf", []):
        coerced = _coerce(value, option)
        if coerced is not value:
            return coerced
    kind = schema.get("type")
    if isinstance(value, dict) and (kind == "object" or "properties" in schema):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: _coerce(v, props.get(k) or (extra if isinstance(extra, dict) else {})) for k, v in value.items()}
    if isinstance(value, list) and kind == "array":
        return [_coerce(v, schema.get("items", {})) for v in value]
    if isinstance(value, str):
        if kind == "integer" and value.lstrip("-").isdigit():
            return int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    return value


def validate_traffic(emu: StripeEmulator, spec: Any) -> int:
    """Every /v1 request the hub sent and every reply, checked against spec3.yaml; returns how many were checked."""
    import json

    from jsonschema import Draft4Validator

    from fieldhub.providers.stripe.emulator.forms import parse_form

    checked = 0
    for entry in emu.requests:
        if not entry.path.startswith("/v1/"):
            continue
        template, operation = spec.operation(entry.method, entry.path)
        params = parse_form(entry.body if entry.method == "POST" else entry.query)
        if entry.method == "POST":
            schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            params = _coerce(params, schema)
            validator = Draft4Validator(schema)
            problems = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(params)]
            assert not problems, f"{entry.method} {entry.path}: {problems[:5]}"
        else:
            known = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            assert set(params) <= known, f"{entry.path}: unknown query parameters {set(params) - known}"
        spec.validate_response(entry.method, entry.path, entry.status, json.loads(entry.response))
        checked += 1
    return checked
