"""QuickBooks additions to the /_emulator control surface: a bookkeeper's edits, company settings, webhooks."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub import exactjson
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.providers.quickbooks.emulator.errors import QBOFault
from fieldhub.providers.quickbooks.emulator.store import ENTITIES, Company

if TYPE_CHECKING:
    from fieldhub.providers.quickbooks.emulator.app import QuickBooksEmulator


def add_control_routes(emu: QuickBooksEmulator) -> None:
    app = emu.app
    base = f"{CONTROL_PREFIX}/companies/{{realm_id}}"

    def company_of(realm_id: str) -> Company:
        company = emu.companies.get(realm_id)
        if company is None:
            raise QBOFault("610", "Object Not Found", f"No company {realm_id}", status=404)
        return company

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        return exactjson.loads(raw) if raw.strip() else {}

    def entity_of(name: str) -> str:
        entity = ENTITIES.get(name.lower())
        if entity is None:
            raise QBOFault("500", "Unsupported Operation", f"Unknown entity {name}", status=404)
        return entity

    async def guarded(fn: Any) -> Response:
        try:
            return emu.json(await fn())
        except QBOFault as fault:
            return emu.fault_response(fault)

    @app.post(base + "/settings")
    async def settings(realm_id: str, request: Request) -> Response:
        async def go() -> dict[str, Any]:
            company = company_of(realm_id)
            for key, value in (await body_of(request)).items():
                if not hasattr(company.settings, key):
                    raise QBOFault("2010", "Request has invalid or unsupported property", f"Unknown setting {key}")
                setattr(company.settings, key, bool(value))
            return {"settings": asdict(company.settings)}

        return await guarded(go)

    @app.post(base + "/invoice/{invoice_id}/pay")
    async def pay(realm_id: str, invoice_id: str, request: Request) -> Response:
        """The bookkeeper records a payment against an invoice (its whole balance unless an amount is given)."""

        async def go() -> dict[str, Any]:
            company = company_of(realm_id)
            invoice = company.read("Invoice", invoice_id)
            body = await body_of(request)
            amount = Decimal(str(body.get("amount", invoice["Balance"])))
            payment = {
                "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                "TotalAmt": amount,
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
                **({"PaymentRefNum": body["reference"]} if body.get("reference") else {}),
            }
            return {"Payment": company.create("Payment", payment)}

        return await guarded(go)

    @app.post(base + "/{entity}")
    async def create(realm_id: str, entity: str, request: Request) -> Response:
        async def go() -> dict[str, Any]:
            name = entity_of(entity)
            return {name: emu.write(company_of(realm_id), name, "create", await body_of(request), bookkeeper=True)}

        return await guarded(go)

    @app.post(base + "/{entity}/{object_id}")
    async def edit(realm_id: str, entity: str, object_id: str, request: Request) -> Response:
        """A sparse edit made in QuickBooks: no SyncToken needed, the object's SyncToken moves on."""

        async def go() -> dict[str, Any]:
            name = entity_of(entity)
            body = {**(await body_of(request)), "Id": object_id, "sparse": True}
            return {name: emu.write(company_of(realm_id), name, "update", body, bookkeeper=True)}

        return await guarded(go)

    for operation in ("delete", "void"):

        async def act(realm_id: str, entity: str, object_id: str, operation: str = operation) -> Response:
            async def go() -> dict[str, Any]:
                name = entity_of(entity)
                body = {"Id": object_id}
                return {name: emu.write(company_of(realm_id), name, operation, body, bookkeeper=True)}

            return await guarded(go)

        app.add_api_route(base + "/{entity}/{object_id}/" + operation, act, methods=["POST"])

    @app.get(f"{CONTROL_PREFIX}/webhooks")
    async def deliveries() -> dict[str, Any]:
        hooks = emu.webhooks
        return {
            "format": hooks.format,
            "url": hooks.url,
            "deliver": hooks.deliver,
            "pending_events": len(hooks.pending),
            "deliveries": hooks.listing(),
        }

    @app.post(f"{CONTROL_PREFIX}/webhooks/format")
    async def set_format(request: Request) -> Response:
        fmt = (await body_of(request)).get("format", "")
        if fmt not in ("classic", "cloudevents"):
            return JSONResponse({"error": "format must be classic or cloudevents"}, status_code=400)
        emu.webhooks.format = fmt
        return JSONResponse({"format": fmt})

    @app.post(f"{CONTROL_PREFIX}/webhooks/flush")
    async def flush(due_only: bool = False) -> dict[str, Any]:
        attempted = await emu.webhooks.flush(force=not due_only)
        return {"attempted": len(attempted), "statuses": [d.status for d in attempted]}
