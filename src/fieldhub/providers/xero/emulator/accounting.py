"""Xero's Accounting API (api.xero.com/api.xro/2.0): the routes, the envelope, errors, batches, idempotency, paging.

- Every call needs a Bearer token with the operation's scope and `xero-tenant-id` naming a connected organisation.
- `PUT /{Resource}` creates, `POST /{Resource}` creates or updates (an ID in the element updates),
  `POST /{Resource}/{id}` updates one. Bodies wrap arrays: `{"Invoices":[{...}]}`.
- A batch whose element breaks a rule answers 400 `ValidationException` naming the elements and their
  `ValidationErrors`, and writes nothing; with `summarizeErrors=false` it answers 200 with every element, the good
  ones written (`StatusAttributeString` OK) and the bad ones carrying `HasErrors`/`ValidationErrors` (ERROR).
  (Xero's own summarized reply may write the valid elements [facts §2.2, S3]; the emulator keeps it all-or-nothing.)
- `Idempotency-Key` (128 characters at most): a write repeated with a key already answered gets the first reply
  again and writes nothing; the key with another method or path is refused (Xero documents no retention window or
  conflict reply; the emulator keeps keys for 24 emulated hours).
- GET lists take `If-Modified-Since` (UpdatedDateUTC at or after it), `where` (`Field=="value"` clauses joined by
  AND, `guid("…")`, `true`/`false`), `order`, `IDs`, `Statuses`, `ContactIDs`, `page` (with `pageSize`, default
  100, at most 1000, and a `pagination` object). Invoices, credit notes and bank transactions listed without
  `page` come without their line items, as Xero sends them.
- Every reply carries X-DayLimit-Remaining, X-MinLimit-Remaining and X-AppMinLimit-Remaining.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from fieldhub import exactjson
from fieldhub.providers.xero.emulator.books import Invalid, Organisation, ms, ms_date

if TYPE_CHECKING:
    from fieldhub.providers.xero.emulator import XeroEmulator

API_PREFIX = "/api.xro/2.0"
PAGE_SIZE, PAGE_MAX = 100, 1000
IDEMPOTENCY_TTL = 86400
PROVIDER_NAME = "fieldhub"


@dataclass(frozen=True)
class Resource:
    name: str  # as the path and the envelope write it
    store: str  # the Organisation attribute
    id_field: str
    scopes: tuple[str, ...]  # any of these (or its .read for a GET) grants it
    paged: bool = False
    lines: bool = False  # listed without `page`, it comes without line items


_TX = "accounting.transactions"
RESOURCES = {
    r.name.lower(): r
    for r in (
        Resource("Contacts", "contacts", "ContactID", ("accounting.contacts",), paged=True),
        Resource("Items", "items", "ItemID", ("accounting.settings", "accounting.invoices")),
        Resource("Accounts", "accounts", "AccountID", ("accounting.settings",)),
        Resource("TaxRates", "tax_rates", "TaxType", ("accounting.settings",)),
        Resource("Organisation", "", "OrganisationID", ("accounting.settings",)),
        Resource("Invoices", "invoices", "InvoiceID", (_TX, "accounting.invoices"), paged=True, lines=True),
        Resource("CreditNotes", "credit_notes", "CreditNoteID", (_TX, "accounting.invoices"), paged=True, lines=True),
        Resource("Payments", "payments", "PaymentID", (_TX, "accounting.payments"), paged=True),
        Resource(
            "BankTransactions",
            "bank_transactions",
            "BankTransactionID",
            (_TX, "accounting.banktransactions"),
            paged=True,
            lines=True,
        ),
    )
}
_CLAUSE = re.compile(
    r'^\s*([A-Za-z][\w.]*)\s*(==|!=|>=|<=|>|<)\s*(?:"([^"]*)"|guid\("([^"]*)"\)|(true|false)'
    r"|DateTime\(\s*(\d{4})\s*,\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)|(-?\d+(?:\.\d+)?))\s*$",
    re.IGNORECASE,
)
_MS = re.compile(r"^/Date\((-?\d+)")


class Refused(Exception):
    """A reply that is not the resource: 400 ValidationException body (elements), or a problem (status, detail)."""

    def __init__(self, status: int, detail: str = "", elements: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.elements = status, detail, elements


class AccountingAPI:
    def __init__(self, emulator: XeroEmulator) -> None:
        self.emu = emulator
        self.pruned = 0.0
        emulator.app.add_api_route(
            API_PREFIX + "/{rest:path}", self.handle, methods=["GET", "PUT", "POST", "DELETE"], name="accounting"
        )

    # --- the gate ---------------------------------------------------------------------------------
    async def handle(self, rest: str, request: Request) -> Response:
        emu = self.emu
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        account = emu.oauth.authenticate(request)
        if account is None:
            return self.reply(request, emu.error_response(401, "AuthenticationUnsuccessful"))
        token = emu.oauth.tokens[value.strip()]
        parts = [p for p in rest.split("/") if p]
        resource = RESOURCES.get(parts[0].lower()) if parts else None
        if resource is None:
            return self.reply(request, emu.error_response(404, "The resource you're looking for cannot be found"))
        granted = set(token.scope.split())
        wanted = set(resource.scopes) | ({f"{s}.read" for s in resource.scopes} if request.method == "GET" else set())
        if not granted & wanted:
            return self.reply(request, emu.error_response(401, "AuthorizationUnsuccessful"))
        tenant = request.headers.get("xero-tenant-id", "").strip()
        org = emu.organisations.get(tenant)
        if not tenant or org is None or not any(c["tenantId"] == tenant for c in emu.connections.values()):
            return self.reply(request, emu.error_response(403, "AuthenticationUnsuccessful"))
        key = request.headers.get("idempotency-key", "")
        if key and request.method != "GET":
            if len(key) > 128:
                return self.reply(
                    request,
                    self.validation(
                        [{"ValidationErrors": [{"Message": "Idempotency-Key must be 128 characters or fewer"}]}]
                    ),
                )
            now = emu.clock.now()
            if now - self.pruned > 3600:  # keys older than a day go, looked for once an emulated hour
                self.pruned = now
                for stale in [k for k, v in emu.replays.items() if v[1] <= now - IDEMPOTENCY_TTL]:
                    del emu.replays[stale]
            seen = emu.replays.get((tenant, key))
            if seen is not None:
                if seen[0] != f"{request.method} {request.url.path.lower()}":
                    detail = "This Idempotency-Key was used with a different request"
                    return self.reply(request, emu.error_response(400, detail))
                return self.reply(request, Response(seen[3], status_code=seen[2], media_type="application/json"))
        try:
            response = await self.dispatch(org, resource, parts[1:], request)
        except Refused as refused:
            response = (
                self.validation(refused.elements)
                if refused.elements is not None
                else emu.error_response(refused.status, refused.detail)
            )
        if key and request.method != "GET" and 200 <= response.status_code < 300:
            where = f"{request.method} {request.url.path.lower()}"
            self.emu.replays[(tenant, key)] = (where, emu.clock.now(), response.status_code, bytes(response.body))
        return self.reply(request, response)

    def reply(self, request: Request, response: Response) -> Response:
        for name, value in self.emu.limit_headers(request).items():
            response.headers[name] = value
        return response

    def envelope(self, name: str, items: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Response:
        body = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": f"/Date({int(self.emu.clock.now() * 1000)})/",
            **(extra or {}),
            name: items,
        }
        return Response(exactjson.dumps(body), media_type="application/json")

    def validation(self, elements: list[dict[str, Any]]) -> Response:
        body = {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        }
        return Response(exactjson.dumps(body), status_code=400, media_type="application/json")

    # --- routing ----------------------------------------------------------------------------------
    async def dispatch(self, org: Organisation, resource: Resource, rest: list[str], request: Request) -> Response:
        method = request.method
        if resource.name == "Organisation":
            if method != "GET" or rest:
                raise Refused(405, "The method is not allowed for this resource")
            return self.envelope("Organisations", [self.emu.organisation_body(org)])
        if resource.name == "TaxRates":
            if method != "GET":
                raise Refused(405, "The method is not allowed for this resource")
            return self.envelope("TaxRates", [_tax_rate(t, n, r) for t, (n, r) in org.tax_rates.items()])
        store = getattr(org, resource.store)
        if method == "GET":
            if rest:
                record = store.get(rest[0]) or (
                    next((c for c in store.values() if c.get("ContactNumber") == rest[0]), None)
                    if resource.name == "Contacts"
                    else None
                )
                if record is None or len(rest) > 1:
                    raise Refused(404, "The resource you're looking for cannot be found")
                return self.envelope(resource.name, [render(org, resource.name, record)])
            return self.listing(org, resource, store, request)
        if method == "DELETE":
            if resource.name != "Items" or len(rest) != 1 or rest[0] not in store:
                raise Refused(404, "The resource you're looking for cannot be found")
            del store[rest[0]]
            return Response(status_code=204)
        body = await _body(request)
        if resource.name == "CreditNotes" and len(rest) == 2 and rest[1].lower() == "allocations" and method == "PUT":
            credit = store.get(rest[0])
            if credit is None:
                raise Refused(404, "The resource you're looking for cannot be found")
            given = _elements(body, "Allocations")
            credit_id = credit["CreditNoteID"]
            return self.batch(
                org, "Allocations", given, request, lambda o, e: o.allocate(o.credit_notes[credit_id], e), None
            )
        if len(rest) > 1 or (rest and method != "POST"):
            raise Refused(405, "The method is not allowed for this resource")
        if resource.name == "Accounts":
            raise Refused(405, "The method is not allowed for this resource")
        if resource.name == "Payments" and method == "POST" and not rest and "Payments" not in body:
            body = {"Payments": [body]}  # createPayment: one Payment, not wrapped
        elements = _elements(body, resource.name)
        if rest:
            target = store.get(rest[0])
            if target is None:
                raise Refused(404, "The resource you're looking for cannot be found")
            if len(elements) != 1:
                raise Refused(400, f"Updating one {resource.name[:-1]} takes one element")
            elements = [{**elements[0], resource.id_field: rest[0]}]
        return self.batch(org, resource.name, elements, request, self._writer(resource, method), resource.id_field)

    @staticmethod
    def _writer(resource: Resource, method: str) -> Callable[[Organisation, dict[str, Any]], dict[str, Any]]:
        def existing(org: Organisation, element: dict[str, Any]) -> dict[str, Any] | None:
            object_id = element.get(resource.id_field)
            if not object_id:
                return None
            if method == "PUT":
                raise Invalid(f"{resource.id_field} cannot be given when creating: use POST to update")
            found = getattr(org, resource.store).get(str(object_id))
            if found is None:
                raise Invalid(f"{resource.name[:-1]} with {resource.id_field} '{object_id}' could not be found.")
            return found

        def write(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
            found = existing(org, element)
            if resource.name == "Contacts":
                return org.save_contact(element, found)
            if resource.name == "Items":
                return org.save_item(element, found)
            if resource.name in ("Invoices", "CreditNotes"):
                return org.save_document(resource.store, element, found)
            if resource.name == "BankTransactions":
                return org.save_bank_transaction(element, found)
            if found is not None:  # Payments: only deleting
                return org.delete_payment(found, element)
            return org.pay(element)

        return write

    def batch(
        self,
        org: Organisation,
        name: str,
        elements: list[dict[str, Any]],
        request: Request,
        write: Callable[[Organisation, dict[str, Any]], dict[str, Any]],
        id_field: str | None,
    ) -> Response:
        """Write each element; summarized (the default) writes nothing unless all are valid."""
        summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
        if summarize and len(elements) > 1:
            trial = copy.deepcopy(org)  # the batch tried on a copy first: nothing is written unless all pass
            failed = []
            for element in elements:
                try:
                    write(trial, element)
                except Invalid as exc:
                    failed.append(_failed(element, exc, id_field))
            if failed:
                return self.validation(failed)
        out = []
        for element in elements:
            try:
                out.append({**render(org, name, write(org, element)), "StatusAttributeString": "OK"})
            except Invalid as exc:
                if summarize:  # one element: its rules are checked before anything is written
                    return self.validation([_failed(element, exc, id_field)])
                out.append(_failed(element, exc, id_field))
        return self.envelope(name, out)

    def listing(self, org: Organisation, resource: Resource, store: dict[str, Any], request: Request) -> Response:
        params = request.query_params
        found = list(store.values())
        since = params.get("If-Modified-Since") or request.headers.get("if-modified-since", "")
        if since:
            moment = _moment(since)
            found = [r for r in found if r.get("_updated", 0) >= moment]
        for param, field in (("IDs", resource.id_field), ("Statuses", "Status"), ("InvoiceNumbers", "InvoiceNumber")):
            if params.get(param):
                wanted = {v.strip().lower() for v in params[param].split(",") if v.strip()}
                found = [r for r in found if str(r.get(field, "")).lower() in wanted]
        if params.get("ContactIDs"):
            wanted = {v.strip().lower() for v in params["ContactIDs"].split(",")}
            found = [r for r in found if r.get("Contact", {}).get("ContactID", "").lower() in wanted]
        if resource.name == "Contacts" and params.get("includeArchived", "").lower() != "true":
            found = [r for r in found if r["ContactStatus"] == "ACTIVE"]
        if params.get("where"):
            found = [r for r in found if _where(params["where"])(render(org, resource.name, r))]
        if params.get("searchTerm"):
            term = params["searchTerm"].lower()
            keys = ("Name", "EmailAddress", "FirstName", "LastName", "InvoiceNumber", "Reference")
            found = [r for r in found if any(term in str(r.get(k, "")).lower() for k in keys)]
        found.sort(key=lambda r: (r.get("_created", 0), r.get("Code", "")))
        if params.get("order"):
            field, _, direction = params["order"].strip().partition(" ")
            found.sort(key=lambda r: str(render(org, resource.name, r).get(field, "")).lower())
            if direction.strip().upper() == "DESC":
                found.reverse()
        extra: dict[str, Any] = {}
        page = params.get("page")
        lines = True
        if page and resource.paged:
            try:
                number, size = max(1, int(page)), int(params.get("pageSize") or PAGE_SIZE)
            except ValueError:
                raise Refused(400, "page and pageSize must be whole numbers") from None
            size = min(max(size, 1), PAGE_MAX)
            count = len(found)
            found = found[(number - 1) * size : number * size]
            extra["pagination"] = {"page": number, "pageSize": size, "pageCount": -(-count // size), "itemCount": count}
        elif resource.lines:
            lines = False
        items = [render(org, resource.name, r) for r in found]
        if not lines:
            for item in items:
                item.pop("LineItems", None)
        return self.envelope(resource.name, items, extra)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = exactjson.loads(raw) if raw.strip() else {}
    except ValueError:
        raise Refused(400, "The request body could not be read as JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "The request body must be a JSON object")
    return body


def _elements(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    given = body.get(name)
    if given is None:
        # One element unwrapped: Xero takes `{"Name": ...}` for a single contact too.
        given = [body] if body else []
    if not isinstance(given, list) or not all(isinstance(e, dict) for e in given):
        raise Refused(400, f"{name} must be a list of objects")
    if not given:
        raise Refused(400, f"No {name} were given")
    return given


def _failed(element: dict[str, Any], exc: Invalid, id_field: str | None) -> dict[str, Any]:
    out = {k: v for k, v in element.items() if v is not None}
    flag = "HasValidationErrors" if id_field in ("ContactID", "PaymentID") else "HasErrors"
    if id_field not in (None, "ItemID", "AllocationID"):
        out[flag] = True
    out["StatusAttributeString"] = "ERROR"
    out["ValidationErrors"] = [{"Message": m} for m in exc.messages]
    return out


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise Refused(400, f"If-Modified-Since '{text}' is not a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _where(text: str) -> Callable[[dict[str, Any]], bool]:
    """Xero's filter: `Field=="x"`, `!=`, `guid("…")`, true/false, numbers, and dates as `DateTime(2026, 12, 1)` with
    ==, !=, >, >=, <, <= (a date field compares as its day), joined by AND or &&."""
    clauses = []
    for part in re.split(r"\s+AND\s+|\s*&&\s*", text.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if found is None:
            raise Refused(400, f"The where clause '{part}' could not be read")
        field, op, text_value, guid, boolean, year, month, day, number = found.groups()
        value: Any = text_value if text_value is not None else guid
        if boolean is not None:
            value = boolean.lower() == "true"
        elif year is not None:
            value = f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
        elif number is not None:
            value = Decimal(number)
        if op not in ("==", "!=") and year is None and number is None:
            raise Refused(400, f"The where clause '{part}' compares what cannot be ordered")
        clauses.append((field.split("."), op, value, year is not None))

    def test(record: dict[str, Any]) -> bool:
        for path, op, value, dated in clauses:
            current: Any = record
            for step in path:
                current = current.get(step) if isinstance(current, dict) else None
            if dated:
                moment = _MS.match(str(current or ""))
                if moment is None:
                    return False
                current = datetime.fromtimestamp(int(moment.group(1)) / 1000, UTC).date().isoformat()
            elif isinstance(value, Decimal):
                try:
                    current = Decimal(str(current))
                except ArithmeticError:
                    return False
            elif isinstance(value, str) and current is not None and not isinstance(current, bool):
                current, value = str(current).lower(), value.lower()
            if not _COMPARE[op](current, value):
                return False
        return True

    return test


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
}


def _tax_rate(tax_type: str, name: str, rate: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "TaxType": tax_type,
        "ReportTaxType": "OUTPUT" if tax_type == "OUTPUT" else ("INPUT" if tax_type == "INPUT" else "NONE"),
        "CanApplyToAssets": True,
        "CanApplyToEquity": True,
        "CanApplyToExpenses": True,
        "CanApplyToLiabilities": True,
        "CanApplyToRevenue": True,
        "DisplayTaxRate": rate,
        "EffectiveRate": rate,
        "Status": "ACTIVE",
        "TaxComponents": [{"Name": name, "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}],
    }


# --- rendering ------------------------------------------------------------------------------------
def _contact_ref(org: Organisation, ref: dict[str, Any]) -> dict[str, Any]:
    contact = org.contacts.get(ref["ContactID"], ref)
    return {
        "ContactID": ref["ContactID"],
        "Name": contact.get("Name", ref.get("Name", "")),
        **({"EmailAddress": contact["EmailAddress"]} if contact.get("EmailAddress") else {}),
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasValidationErrors": False,
    }


def _dated(record: dict[str, Any], *keys: str, twins: bool = True) -> dict[str, Any]:
    """Dates as MS JSON; a document's Date and DueDate also as `DateString`/`DueDateString`."""
    for key in keys:
        if record.get(key):
            iso = record[key]
            record[key] = ms_date(iso)
            if twins and key in ("Date", "DueDate"):
                record[f"{key}String"] = f"{iso}T00:00:00"
    return record


def render(org: Organisation, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """An object as Xero's JSON writes it: MS dates with their ...String twins, references filled in."""
    out = {k: v for k, v in record.items() if not k.startswith("_")}
    if "_updated" in record:
        out["UpdatedDateUTC"] = ms(record["_updated"])
    if name in ("Invoices", "CreditNotes", "BankTransactions"):
        _dated(out, "Date", "DueDate", "FullyPaidOnDate")
        if "Contact" in out:
            out["Contact"] = _contact_ref(org, out["Contact"])
        out["LineItems"] = [{k: v for k, v in line.items()} for line in out.get("LineItems", [])]
        out["Payments"] = (
            [
                _dated(dict(p), "Date", twins=False) | {"HasAccount": False, "HasValidationErrors": False}
                for p in out.get("Payments", [])
            ]
            if name != "BankTransactions"
            else []
        )
        if name == "BankTransactions":
            out.pop("Payments")
        if name == "Invoices":
            out["CreditNotes"] = [_dated(dict(c), "Date", twins=False) for c in out["CreditNotes"]]
        if name == "CreditNotes":
            out["Allocations"] = [
                {
                    "AllocationID": a["AllocationID"],
                    "Amount": a["Amount"],
                    "Date": ms_date(a["Date"]),
                    "Invoice": _invoice_ref(org, a["InvoiceID"]),
                }
                for a in out["Allocations"]
            ]
    elif name == "Payments":
        _dated(out, "Date", twins=False)
        if "InvoiceID" in out:
            out["Invoice"] = _invoice_ref(org, out.pop("InvoiceID"))
        if "CreditNoteID" in out:
            credit = org.credit_notes[out.pop("CreditNoteID")]
            out["CreditNote"] = {
                "CreditNoteID": credit["CreditNoteID"],
                "CreditNoteNumber": credit.get("CreditNoteNumber", ""),
                "Type": credit["Type"],
                "Contact": _contact_ref(org, credit["Contact"]),
            }
    elif name == "Allocations":
        credit = org.credit_notes[out.pop("CreditNoteID")]
        out["Date"] = ms_date(out["Date"])
        out["Invoice"] = _invoice_ref(org, out.pop("InvoiceID"))
        out["CreditNote"] = {
            "CreditNoteID": credit["CreditNoteID"],
            "CreditNoteNumber": credit.get("CreditNoteNumber", ""),
            "Type": credit["Type"],
            "RemainingCredit": credit["RemainingCredit"],
        }
    return out


def _invoice_ref(org: Organisation, invoice_id: str) -> dict[str, Any]:
    invoice = org.invoices[invoice_id]
    return {
        "InvoiceID": invoice_id,
        "InvoiceNumber": invoice.get("InvoiceNumber", ""),
        "Type": invoice["Type"],
        "Status": invoice["Status"],
        "AmountDue": invoice["AmountDue"],
        "Contact": _contact_ref(org, invoice["Contact"]),
        "HasErrors": False,
        "IsDiscounted": False,
    }


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
