"""FreshBooks' accounting API over each business's books: clients, items, taxes, invoices, payments, credit notes.

Paths, envelopes and errors are FreshBooks' own (facts §3.2–§3.3): `/accounting/account/{account_id}/<group>/<plural>`
and `/<plural>/{id}`; bodies wrap the singular name (`{"client": {...}}`); replies wrap in `{"response": {"result":
{...}}}`; lists page with `page`/`per_page` (at most 100) and say `page`, `pages`, `per_page`, `total`; errors are
`{"response": {"errors": [{"errno", "field", "message", "object", "value"}]}}`. Clients, items, payments and credit
notes are deleted by a PUT of `vis_state: 1`; invoices by DELETE (FreshBooks has no void: a deleted invoice keeps its
number and reads back with `vis_state` 1). New invoices are drafts; `action_mark_as_sent` marks one sent; payments move
it to partial or paid. Money is a string `{"amount": "27.00", "code": "USD"}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from fieldhub.providers.freshbooks.emulator import FreshBooksEmulator

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 15  # what FreshBooks answers when per_page is not given (the recorded list shows 15)


@dataclass(frozen=True)
class Kind:
    group: str
    plural: str
    single: str
    soft_delete: bool  # deleted by PUT vis_state=1 (else by DELETE)
    not_found: tuple[int, str, str]  # errno, field, message


KINDS = {
    k.plural: k
    for k in (
        Kind("users", "clients", "client", True, (1012, "userid", "Client not found.")),
        Kind("items", "items", "item", True, (1012, "itemid", "Item not found.")),
        Kind("taxes", "taxes", "tax", True, (1012, "taxid", "Tax not found.")),
        Kind("invoices", "invoices", "invoice", False, (1012, "invoiceid", "Invoice not found.")),
        Kind("payments", "payments", "payment", True, (1012, "paymentid", "Payment not found.")),
        Kind("credit_notes", "credit_notes", "credit_note", True, (1012, "creditid", "Credit note not found.")),
    )
}
PAYMENT_TYPES = {
    "Check", "Credit", "Cash", "Bank Transfer", "Credit Card", "Debit", "PayPal", "2Checkout", "VISA",
    "MASTERCARD", "DISCOVER", "AMEX", "DINERS", "JCB", "ACH", "Other",
}  # fmt: skip
# v3_status and the numeric status FreshBooks pairs with it.
STATUS = {"draft": 1, "sent": 2, "viewed": 3, "paid": 4, "partial": 8}


class Refused(Exception):
    def __init__(self, status: int, errno: int, field: str, message: str, obj: str, value: Any = "") -> None:
        super().__init__(message)
        self.status, self.error = status, {
            "errno": errno, "field": field, "message": message, "object": obj, "value": str(value),
        }  # fmt: skip


def envelope(result: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse({"response": {"result": result}}, status)


def errors(status: int, *errs: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"response": {"errors": list(errs)}}, status)


def money(value: Any, field: str, obj: str) -> Decimal:
    raw = value.get("amount") if isinstance(value, dict) else value
    try:
        amount = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise Refused(422, 1003, field, f"Invalid {field}.", obj, raw) from None
    if not amount.is_finite():
        raise Refused(422, 1003, field, f"Invalid {field}.", obj, raw)
    return amount.quantize(Decimal("0.01"))


def cash(amount: Decimal, code: str) -> dict[str, str]:
    return {"amount": f"{amount:.2f}", "code": code}


class AccountingAPI:
    def __init__(self, emulator: FreshBooksEmulator) -> None:
        self.em = emulator
        prefix = "/accounting/account/{account_id}/{group}/{plural}"
        app = emulator.app
        app.add_api_route(prefix, self.list_or_create, methods=["GET", "POST"])
        app.add_api_route(prefix + "/{object_id}", self.one, methods=["GET", "PUT", "DELETE"])

    # --- plumbing -------------------------------------------------------------------------------
    def books(self, account_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        return self.em.books.setdefault(account_id, {plural: {} for plural in KINDS})

    def now(self) -> str:
        # FreshBooks' accounting timestamps: "YYYY-MM-DD HH:MM:SS", no zone (the emulator keeps them in UTC).
        return datetime.fromtimestamp(self.em.clock.now(), UTC).strftime("%Y-%m-%d %H:%M:%S")

    def next_id(self) -> int:
        self.em.counters["id"] = self.em.counters.get("id", 100_000) + 1
        return self.em.counters["id"]

    def guard(self, request: Request, account_id: str, group: str, plural: str) -> Kind | JSONResponse:
        account = self.em.oauth.authenticate(request)
        if account is None:
            return self.em.error_response(401, "This action requires authentication to continue.")
        if account.extra["account_id"] != account_id:
            return errors(403, {"errno": 1003, "field": "account_id", "message": "The server could not verify "
                                "that you are authorized to access the URL requested.", "object": "account",
                                "value": account_id})  # fmt: skip
        kind = KINDS.get(plural)
        if kind is None or kind.group != group:
            return self.em.error_response(404, "Not Found")
        return kind

    async def body(self, request: Request, kind: Kind) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get(kind.single), dict):
            raise Refused(400, 1000, kind.single, f"Request body must contain '{kind.single}'.", kind.single)
        return data[kind.single]

    def find(self, account_id: str, kind: Kind, object_id: str | int) -> dict[str, Any]:
        obj = self.books(account_id)[kind.plural].get(str(object_id))
        if obj is None:
            errno, field, message = kind.not_found
            raise Refused(404, errno, field, message, kind.single, object_id)
        return obj

    # --- routes ---------------------------------------------------------------------------------
    async def list_or_create(self, request: Request, account_id: str, group: str, plural: str) -> JSONResponse:
        kind = self.guard(request, account_id, group, plural)
        if isinstance(kind, JSONResponse):
            return kind
        try:
            if request.method == "POST":
                obj = self.create(account_id, kind, await self.body(request, kind))
                self.em.changed(account_id, kind.single, "create", obj)
                return envelope({kind.single: obj})
            return envelope(self.page(account_id, kind, request.query_params))
        except Refused as refused:
            return errors(refused.status, refused.error)

    async def one(self, request: Request, account_id: str, group: str, plural: str, object_id: str) -> JSONResponse:
        kind = self.guard(request, account_id, group, plural)
        if isinstance(kind, JSONResponse):
            return kind
        try:
            obj = self.find(account_id, kind, object_id)
            if request.method == "GET":
                return envelope({kind.single: obj})
            if request.method == "DELETE":
                if kind.soft_delete:
                    return self.em.error_response(405, "Method Not Allowed")
                obj.update(vis_state=1, updated=self.now())
                self.em.changed(account_id, kind.single, "delete", obj)
                return envelope({})
            fields = await self.body(request, kind)
            self.update(account_id, kind, obj, fields)
            self.em.changed(account_id, kind.single, "delete" if obj.get("vis_state") == 1 else "update", obj)
            return envelope({kind.single: obj})
        except Refused as refused:
            return errors(refused.status, refused.error)

    # --- listing --------------------------------------------------------------------------------
    def page(self, account_id: str, kind: Kind, query: Any) -> dict[str, Any]:
        try:
            page = max(1, int(query.get("page", 1)))
            per_page = min(MAX_PER_PAGE, max(1, int(query.get("per_page", DEFAULT_PER_PAGE))))
        except ValueError:
            raise Refused(400, 1003, "page", "Invalid page or per_page.", kind.single) from None
        rows = [o for o in self.books(account_id)[kind.plural].values() if o.get("vis_state", 0) == 0]
        email = query.get("search[email]")
        if email is not None:
            rows = [o for o in rows if str(o.get("email", "")).lower() == email.lower()]
        since = query.get("search[updated_min]")
        if since is not None:
            rows = [o for o in rows if o.get("updated", "") >= since.replace("T", " ")[:19]]
        for key in ("customerid", "invoiceid"):
            wanted = query.get(f"search[{key}]")
            if wanted is not None:
                rows = [o for o in rows if str(o.get(key)) == wanted]
        ids = query.getlist("search[ids][]")
        if ids:
            rows = [o for o in rows if str(o.get("id")) in ids]
        total = len(rows)
        start = (page - 1) * per_page
        return {
            kind.plural: rows[start : start + per_page],
            "page": page,
            "pages": max(1, math.ceil(total / per_page)),
            "per_page": per_page,
            "total": total,
        }

    # --- create and update ----------------------------------------------------------------------
    def create(self, account_id: str, kind: Kind, fields: dict[str, Any]) -> dict[str, Any]:
        new_id = self.next_id()
        base: dict[str, Any] = {"id": new_id, "vis_state": 0, "updated": self.now()}
        if kind.single == "client":
            if not (fields.get("email") or fields.get("organization") or fields.get("fname")):
                raise Refused(422, 1001, "organization", "Client requires a name or an email.", "client")
            obj = base | {"userid": new_id, "accounting_systemid": account_id, "organization": "", "fname": "",
                          "lname": "", "email": "", "currency_code": "USD", "signup_date": self.now()}  # fmt: skip
        elif kind.single == "item":
            if not fields.get("name"):
                raise Refused(422, 1001, "name", "Field name is required.", "item")
            obj = base | {"itemid": new_id, "accounting_systemid": account_id, "description": "", "qty": "0",
                          "sku": None, "inventory": None, "tax1": 0, "tax2": 0}  # fmt: skip
            fields = fields | {"unit_cost": cash(money(fields.get("unit_cost", "0"), "unit_cost", "item"), "USD")}
        elif kind.single == "tax":
            obj = base | {"taxid": new_id, "accounting_systemid": account_id, "number": None, "compound": False}
            fields = fields | {"amount": str(money(fields.get("amount", "0"), "amount", "tax"))}
        elif kind.single == "invoice":
            obj = self.new_invoice(account_id, base, fields)
            fields = {}
        elif kind.single == "payment":
            obj = self.new_payment(account_id, base, fields)
            fields = {}
        else:
            client = self.find(account_id, KINDS["clients"], fields.get("clientid", ""))
            total = sum((self.line(ln, "credit_note")["amount"] for ln in fields.get("lines") or []), Decimal(0))
            obj = base | {"creditid": new_id, "clientid": client["id"], "currency_code": "USD",
                          "amount": cash(total, "USD"), "create_date": fields.get("create_date", self.now()[:10]),
                          "credit_type": fields.get("credit_type", "goodwill"), "status": "sent"}  # fmt: skip
            fields = {k: v for k, v in fields.items() if k in ("notes", "description")}
        obj.update({k: v for k, v in fields.items() if k not in ("id", "updated")})
        self.books(account_id)[kind.plural][str(new_id)] = obj
        return obj

    def line(self, raw: dict[str, Any], obj: str) -> dict[str, Any]:
        qty = money(raw.get("qty", 1), "qty", obj)
        unit = money(raw.get("unit_cost", "0"), "unit_cost", obj)
        amount = (qty * unit).quantize(Decimal("0.01"))
        line = {"name": raw.get("name", ""), "description": raw.get("description", ""), "qty": str(qty),
                "unit_cost": cash(unit, "USD"), "amount": amount, "type": raw.get("type", 0)}  # fmt: skip
        for n in (1, 2):
            if raw.get(f"taxName{n}"):
                line[f"taxName{n}"] = raw[f"taxName{n}"]
                line[f"taxAmount{n}"] = str(money(raw.get(f"taxAmount{n}", "0"), f"taxAmount{n}", obj))
        return line

    def new_invoice(self, account_id: str, base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        client = self.find(account_id, KINDS["clients"], fields.get("customerid", ""))
        if not fields.get("create_date"):
            raise Refused(422, 1001, "create_date", "Field create_date is required.", "invoice")
        code = fields.get("currency_code", "USD")
        lines, subtotal, tax = [], Decimal(0), Decimal(0)
        for index, raw in enumerate(fields.get("lines") or [], start=1):
            line = self.line(raw, "invoice")
            subtotal += line["amount"]
            for n in (1, 2):
                if f"taxAmount{n}" in line:
                    tax += (line["amount"] * Decimal(line[f"taxAmount{n}"]) / 100).quantize(Decimal("0.01"))
            lines.append(line | {"lineid": index, "amount": cash(line["amount"], code)})
        total = subtotal + tax
        self.em.counters["invoice_number"] = self.em.counters.get("invoice_number", 0) + 1
        return base | {
            "invoiceid": base["id"], "accounting_systemid": account_id, "customerid": client["id"],
            "invoice_number": fields.get("invoice_number") or f"{self.em.counters['invoice_number']:07d}",
            "create_date": fields["create_date"], "due_offset_days": int(fields.get("due_offset_days", 0)),
            "currency_code": code, "lines": lines, "amount": cash(total, code), "outstanding": cash(total, code),
            "paid": cash(Decimal(0), code), "status": STATUS["draft"], "v3_status": "draft",
            "payment_status": "unpaid", "display_status": "draft", "notes": fields.get("notes", ""),
            "terms": fields.get("terms", ""), "po_number": fields.get("po_number"),
            "fname": client.get("fname", ""), "lname": client.get("lname", ""),
            "organization": client.get("organization", ""),
        }  # fmt: skip

    def new_payment(self, account_id: str, base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        invoice = self.find(account_id, KINDS["invoices"], fields.get("invoiceid", ""))
        amount = money(fields.get("amount", {}), "amount", "payment")
        if amount <= 0:
            raise Refused(422, 1003, "amount", "Payment amount must be greater than zero.", "payment", amount)
        if fields.get("type", "Check") not in PAYMENT_TYPES:
            raise Refused(422, 1003, "type", "Invalid payment type.", "payment", fields.get("type"))
        if not fields.get("date"):
            raise Refused(422, 1001, "date", "Field date is required.", "payment")
        payment = base | {
            "paymentid": base["id"], "accounting_systemid": account_id, "invoiceid": invoice["id"],
            "clientid": invoice["customerid"], "amount": cash(amount, invoice["currency_code"]),
            "date": fields["date"], "type": fields.get("type", "Check"), "note": fields.get("note", ""),
            "transactionid": fields.get("transactionid"), "orderid": fields.get("orderid"),
        }  # fmt: skip
        self.apply(account_id, invoice, amount)
        return payment

    def apply(self, account_id: str, invoice: dict[str, Any], delta: Decimal) -> None:
        code = invoice["currency_code"]
        paid = Decimal(invoice["paid"]["amount"]) + delta
        total = Decimal(invoice["amount"]["amount"])
        invoice["paid"], invoice["outstanding"] = cash(paid, code), cash(max(total - paid, Decimal(0)), code)
        if paid >= total and total > 0:
            invoice.update(v3_status="paid", payment_status="paid", display_status="paid")
        elif paid > 0:
            invoice.update(v3_status="partial", payment_status="partial", display_status="partial")
        elif invoice["v3_status"] in ("paid", "partial"):
            invoice.update(v3_status="sent", payment_status="unpaid", display_status="sent")
        invoice.update(status=STATUS[invoice["v3_status"]], updated=self.now())
        self.em.changed(account_id, "invoice", "update", invoice)

    def update(self, account_id: str, kind: Kind, obj: dict[str, Any], fields: dict[str, Any]) -> None:
        if kind.single == "invoice":
            send = fields.get("action_mark_as_sent") or fields.get("action_email")
            if send and obj["v3_status"] == "draft":
                obj.update(v3_status="sent", status=STATUS["sent"], display_status="sent")
            fields = {k: v for k, v in fields.items() if k in ("notes", "terms", "po_number", "due_offset_days")}
        elif kind.single == "payment":
            if fields.get("vis_state") == 1 and obj.get("vis_state") == 0:
                invoice = self.find(account_id, KINDS["invoices"], obj["invoiceid"])
                self.apply(account_id, invoice, -Decimal(obj["amount"]["amount"]))
            fields = {k: v for k, v in fields.items() if k in ("vis_state", "note")}
        elif "unit_cost" in fields:
            fields["unit_cost"] = cash(money(fields["unit_cost"], "unit_cost", kind.single), "USD")
        fields.pop("id", None)
        obj.update(fields, updated=self.now())
