"""One Xero organisation's books: contacts, items, accounts, tax rates, invoices, payments, credit notes and their
allocations, bank transactions, with Xero's rules (research/accounting-api-facts.md §2.3).

Objects are kept in Xero's own shape (names as the API writes them, amounts as Decimal, dates as ISO strings,
`_updated`/`_created` as epoch seconds) and rendered for a reply by `render`. A write that breaks a rule raises
`Invalid` with Xero's messages; the API turns it into a `ValidationException` element (api.py).

Statuses follow Xero: an invoice or credit note is created DRAFT, SUBMITTED or AUTHORISED; DRAFT and SUBMITTED may
move to each other, to AUTHORISED or to DELETED; AUTHORISED may only be VOIDED, and only with nothing paid or
credited on it; it becomes PAID by itself when payments and allocations cover it (and AUTHORISED again when a payment
is deleted); VOIDED and DELETED are final.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
EDITABLE = {"DRAFT", "SUBMITTED"}
CREATE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED"}
MOVES = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
    "PAID": {"PAID"},
    "VOIDED": {"VOIDED"},
    "DELETED": {"DELETED"},
}
# The chart of accounts of a new US organisation, trimmed to what a field-service business posts to.
CHART = [
    ("090", "Business Checking", "BANK", "NONE", "ASSET"),
    ("091", "Business Savings", "BANK", "NONE", "ASSET"),
    ("092", "Stripe Clearing", "CURRENT", "NONE", "ASSET"),  # payments enabled: card payments wait here
    ("200", "Sales", "REVENUE", "OUTPUT", "REVENUE"),
    ("260", "Other Revenue", "REVENUE", "OUTPUT", "REVENUE"),
    ("270", "Interest Income", "REVENUE", "NONE", "REVENUE"),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "INPUT", "EXPENSE"),
    ("404", "Bank Fees", "EXPENSE", "NONE", "EXPENSE"),
    ("429", "General Expenses", "EXPENSE", "INPUT", "EXPENSE"),
    ("610", "Accounts Receivable", "CURRENT", "NONE", "ASSET"),
    ("800", "Accounts Payable", "CURRLIAB", "NONE", "LIABILITY"),
    ("820", "Sales Tax", "CURRLIAB", "NONE", "LIABILITY"),
    ("960", "Retained Earnings", "EQUITY", "NONE", "EQUITY"),
]
SYSTEM = {"610": "DEBTORS", "800": "CREDITORS", "820": "GST", "960": "RETAINEDEARNINGS"}
TAX_RATES = [
    ("Tax Exempt", "NONE", Decimal("0.0000")),
    ("Tax on Sales", "OUTPUT", Decimal("8.2500")),
    ("Tax on Purchases", "INPUT", Decimal("0.0000")),
]


class Invalid(Exception):
    """A write Xero refuses: its validation messages, as `ValidationErrors[].Message`."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class NotFound(Exception):
    """No such object (404)."""


def money(value: Any, name: str = "Amount") -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid(f"{name} must be a number") from None
    if not number.is_finite():
        raise Invalid(f"{name} must be a number")
    return number


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_date(value: Any, name: str = "Date") -> str:
    """Xero takes `2019-03-11`, `2019-03-11T00:00:00` and MS JSON `/Date(1552262400000+0000)/`."""
    text = str(value).strip()
    found = _MS_DATE.match(text)
    try:
        if found:
            return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC).date().isoformat()
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise Invalid(f"{name} '{text}' is not a valid date") from None


def ms(ts: float) -> str:
    return f"/Date({int(ts * 1000)}+0000)/"


def ms_date(iso: str) -> str:
    return ms(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def _ref(body: Any, name: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise Invalid(f"{name} must be an object")
    return body


class Organisation:
    """A tenant's books. `notify(category, id, event_type, data)` is told of every create and update of what Xero
    sends webhooks for (contacts, invoices, credit notes); it is set by the emulator and not kept on disk."""

    def __init__(self, tenant_id: str, name: str, now: Callable[[], float]) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.now = now
        self.notify: Callable[[str, str, str, dict[str, Any]], None] = lambda *a: None
        created = now()
        self.created = created
        self.accounts: dict[str, dict[str, Any]] = {}
        for code, title, kind, tax, klass in CHART:
            account_id = str(uuid.uuid5(uuid.UUID(tenant_id), code))
            self.accounts[account_id] = {
                "AccountID": account_id,
                "Code": code,
                "Name": title,
                "Status": "ACTIVE",
                "Type": kind,
                "TaxType": tax,
                "Class": klass,
                "EnablePaymentsToAccount": code == "092",
                "ShowInExpenseClaims": False,
                "ReportingCode": "",
                "HasAttachments": False,
                "AddToWatchlist": False,
                **(
                    {"BankAccountType": "BANK", "BankAccountNumber": "", "CurrencyCode": "USD"}
                    if kind == "BANK"
                    else {}
                ),
                **({"SystemAccount": SYSTEM[code]} if code in SYSTEM else {}),
                "_updated": created,
            }
        self.tax_rates = {tax_type: (name, rate) for name, tax_type, rate in TAX_RATES}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.allocations: dict[str, dict[str, Any]] = {}
        self.bank_transactions: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, int] = {"INV": 0, "CN": 0}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("now", "notify")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.now = lambda: 0.0
        self.notify = lambda *a: None

    def today(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).date().isoformat()

    def touch(self, record: dict[str, Any]) -> None:
        # Strictly later than its last change: If-Modified-Since readers never see two changes at one instant.
        record["_updated"] = max(self.now(), record.get("_updated", 0.0) + 0.001)

    # --- look-ups ---------------------------------------------------------------------------------
    def account(self, ref: dict[str, Any], *, what: str = "document") -> dict[str, Any]:
        if ref.get("AccountID"):
            found = self.accounts.get(str(ref["AccountID"]))
            if found is None or found["Status"] != "ACTIVE":
                raise Invalid(f"Account with AccountID '{ref['AccountID']}' could not be found.")
            return found
        code = str(ref.get("Code", "") or "")
        found = next((a for a in self.accounts.values() if a["Code"] == code and a["Status"] == "ACTIVE"), None)
        if found is None:
            raise Invalid(f"Account code '{code}' is not a valid code for this {what}.")
        return found

    def contact_of(self, ref: Any, *, create: bool = True) -> dict[str, Any]:
        ref = _ref(ref, "Contact")
        if not ref:
            raise Invalid("A Contact must be specified for this type of transaction")
        if ref.get("ContactID"):
            found = self.contacts.get(str(ref["ContactID"]))
            if found is None:
                raise Invalid(f"The Contact with ContactID '{ref['ContactID']}' could not be found.")
            return found
        if ref.get("ContactNumber"):
            found = next((c for c in self.contacts.values() if c.get("ContactNumber") == ref["ContactNumber"]), None)
            if found is not None:
                return found
        name = str(ref.get("Name", "")).strip()
        found = next(
            (c for c in self.contacts.values() if c["Name"].lower() == name.lower() and c["ContactStatus"] == "ACTIVE"),
            None,
        )
        if found is not None:
            return found
        if not create or not name:
            raise Invalid("A Contact must be specified for this type of transaction")
        return self.save_contact(ref)  # Xero makes a contact of a name it does not know

    def item_by_code(self, code: str) -> dict[str, Any]:
        found = next((i for i in self.items.values() if i["Code"].lower() == code.lower()), None)
        if found is None:
            raise Invalid(f"Item code '{code}' is not valid")
        return found

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        found = getattr(self, kind).get(object_id)
        if found is None:
            raise NotFound(object_id)
        return found

    # --- contacts ---------------------------------------------------------------------------------
    def save_contact(self, body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
        name = str(body.get("Name", existing["Name"] if existing else "") or "").strip()
        problems = []
        if not name:
            problems.append("The contact name must be specified.")
        elif len(name) > 255:
            problems.append("The contact name must not be more than 255 characters long.")
        clash = next(
            (
                c
                for c in self.contacts.values()
                if c["Name"].lower() == name.lower()
                and c["ContactStatus"] == "ACTIVE"
                and (existing is None or c["ContactID"] != existing["ContactID"])
            ),
            None,
        )
        if name and clash is not None:
            problems.append(
                f"The contact name {name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )
        status = body.get("ContactStatus", existing["ContactStatus"] if existing else "ACTIVE")
        if status not in ("ACTIVE", "ARCHIVED"):
            problems.append(f"Contact status '{status}' is not valid")
        if problems:
            raise Invalid(*problems)
        record = existing or {
            "ContactID": str(uuid.uuid4()),
            "ContactStatus": "ACTIVE",
            "Name": name,
            "EmailAddress": "",
            "BankAccountDetails": "",
            "Addresses": [_address("POBOX", {}), _address("STREET", {})],
            "Phones": [_phone(kind, {}) for kind in ("DEFAULT", "DDI", "FAX", "MOBILE")],
            "ContactGroups": [],
            "ContactPersons": [],
            "IsSupplier": False,
            "IsCustomer": False,
            "HasAttachments": False,
            "HasValidationErrors": False,
            "_created": self.now(),
        }
        for key in (
            "ContactNumber",
            "AccountNumber",
            "FirstName",
            "LastName",
            "EmailAddress",
            "TaxNumber",
            "AccountsReceivableTaxType",
            "DefaultCurrency",
            "CompanyNumber",
        ):
            if key in body and body[key] is not None:
                record[key] = str(body[key])
        record["Name"], record["ContactStatus"] = name, status
        for given in body.get("Addresses") or []:
            kind = given.get("AddressType", "POBOX")
            record["Addresses"] = [a for a in record["Addresses"] if a["AddressType"] != kind] + [_address(kind, given)]
        for given in body.get("Phones") or []:
            kind = given.get("PhoneType", "DEFAULT")
            record["Phones"] = [p for p in record["Phones"] if p["PhoneType"] != kind] + [_phone(kind, given)]
        if "ContactPersons" in body:
            record["ContactPersons"] = list(body["ContactPersons"] or [])
        created = existing is None
        self.touch(record)
        self.contacts[record["ContactID"]] = record
        self.notify("CONTACT", record["ContactID"], "CREATE" if created else "UPDATE", {})
        return record

    # --- items ------------------------------------------------------------------------------------
    def save_item(self, body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
        code = str(body.get("Code", existing["Code"] if existing else "") or "").strip()
        problems = []
        if not code:
            problems.append("Item code must be specified.")
        elif len(code) > 30:
            problems.append("Item code must not be more than 30 characters long.")
        elif any(
            i["Code"].lower() == code.lower() and (existing is None or i["ItemID"] != existing["ItemID"])
            for i in self.items.values()
        ):
            problems.append(f"Item code '{code}' already exists.")
        name = str(body.get("Name", existing.get("Name", "") if existing else "") or "")
        if len(name) > 50:
            problems.append("Item name must not be more than 50 characters long.")
        details: dict[str, dict[str, Any]] = {}
        for key in ("SalesDetails", "PurchaseDetails"):
            given = body.get(key)
            if given is None:
                continue
            detail: dict[str, Any] = {}
            try:
                if given.get("UnitPrice") is not None:
                    detail["UnitPrice"] = money(given["UnitPrice"], "UnitPrice")
                if given.get("AccountCode"):
                    detail["AccountCode"] = self.account({"Code": given["AccountCode"]}, what="item")["Code"]
                if given.get("TaxType"):
                    if given["TaxType"] not in self.tax_rates:
                        raise Invalid(f"Tax type '{given['TaxType']}' is not valid.")
                    detail["TaxType"] = given["TaxType"]
            except Invalid as exc:
                problems += exc.messages
            details[key] = detail
        if problems:
            raise Invalid(*problems)
        record = existing or {
            "ItemID": str(uuid.uuid4()),
            "Code": code,
            "Description": "",
            "PurchaseDescription": "",
            "IsSold": True,
            "IsPurchased": False,
            "IsTrackedAsInventory": False,
            "SalesDetails": {},
            "PurchaseDetails": {},
            "_created": self.now(),
        }
        record["Code"] = code
        if name:
            record["Name"] = name
        for key in ("Description", "PurchaseDescription"):
            if body.get(key) is not None:
                record[key] = str(body[key])
        for key in ("IsSold", "IsPurchased"):
            if body.get(key) is not None:
                record[key] = bool(body[key])
        record.update(details)
        if "PurchaseDetails" in details and body.get("IsPurchased") is None:
            record["IsPurchased"] = True
        self.touch(record)
        self.items[record["ItemID"]] = record
        return record

    # --- lines and totals -------------------------------------------------------------------------
    def lines(self, given: Any, amounts: str, *, strict: bool, what: str = "document") -> list[dict[str, Any]]:
        if not isinstance(given, list):
            raise Invalid("LineItems must be a list")
        out: list[dict[str, Any]] = []
        problems: list[str] = []
        for raw in given:
            try:
                out.append(self._line(_ref(raw, "LineItem"), amounts, strict=strict, what=what))
            except Invalid as exc:
                problems += exc.messages
        if problems:
            raise Invalid(*problems)
        return out

    def _line(self, raw: dict[str, Any], amounts: str, *, strict: bool, what: str) -> dict[str, Any]:
        item = self.item_by_code(str(raw["ItemCode"])) if raw.get("ItemCode") else None
        sales = item["SalesDetails"] if item else {}
        description = str(raw.get("Description") or (item or {}).get("Description") or (item or {}).get("Name") or "")
        quantity = money(raw["Quantity"], "Quantity") if raw.get("Quantity") is not None else Decimal("1.0000")
        unit = raw.get("UnitAmount")
        unit_amount = money(unit, "UnitAmount") if unit is not None else sales.get("UnitPrice")
        discount = money(raw["DiscountRate"], "DiscountRate") if raw.get("DiscountRate") is not None else None
        if unit_amount is None and raw.get("LineAmount") is not None:
            line_amount = cents(money(raw["LineAmount"], "LineAmount"))
            unit_amount = (line_amount / quantity).quantize(Decimal("0.0001")) if quantity else ZERO
        else:
            unit_amount = unit_amount if unit_amount is not None else ZERO
            line_amount = cents(quantity * unit_amount * (1 - (discount or ZERO) / 100))
        line: dict[str, Any] = {
            "LineItemID": str(raw.get("LineItemID") or uuid.uuid4()),
            "Description": description,
            "Quantity": quantity.quantize(Decimal("0.0001")),
            "UnitAmount": unit_amount,
            "LineAmount": line_amount,
            "Tracking": list(raw.get("Tracking") or []),
        }
        if item:
            line["ItemCode"] = item["Code"]
            line["Item"] = {
                "ItemID": item["ItemID"],
                "Code": item["Code"],
                **({"Name": item["Name"]} if item.get("Name") else {}),
            }
        if discount is not None:
            line["DiscountRate"] = discount
        code = raw.get("AccountCode") or sales.get("AccountCode")
        if raw.get("AccountID"):
            account = self.account({"AccountID": raw["AccountID"]}, what=what)
        elif code:
            account = self.account({"Code": code}, what=what)
        elif strict:
            raise (
                Invalid("Account code must be specified.")
                if description
                else Invalid("Description must be specified.", "Account code must be specified.")
            )
        else:
            account = None
        if account is not None:
            line["AccountCode"], line["AccountID"] = account["Code"], account["AccountID"]
        if strict and not description:
            raise Invalid("Description must be specified.")
        tax_type = (
            "NONE"
            if amounts == "NoTax"
            else str(raw.get("TaxType") or sales.get("TaxType") or (account or {}).get("TaxType") or "NONE")
        )
        if tax_type not in self.tax_rates:
            raise Invalid(f"Tax type '{tax_type}' is not valid.")
        rate = self.tax_rates[tax_type][1] / 100
        if raw.get("TaxAmount") is not None and amounts != "NoTax":
            tax = cents(money(raw["TaxAmount"], "TaxAmount"))  # Xero takes a line's own tax figure
        else:
            tax = line_amount - line_amount / (1 + rate) if amounts == "Inclusive" else line_amount * rate
            tax = cents(tax)
        line["TaxType"], line["TaxAmount"] = tax_type, tax
        return line

    @staticmethod
    def totals(record: dict[str, Any]) -> None:
        lines = record["LineItems"]
        tax = sum((line["TaxAmount"] for line in lines), ZERO)
        gross = sum((line["LineAmount"] for line in lines), ZERO)
        sub = gross - tax if record["LineAmountTypes"] == "Inclusive" else gross
        record["SubTotal"], record["TotalTax"], record["Total"] = cents(sub), cents(tax), cents(sub + tax)

    # --- invoices and credit notes ----------------------------------------------------------------
    def save_document(self, kind: str, body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
        """An invoice (kind "invoices") or credit note ("credit_notes"), created or updated."""
        credit = kind == "credit_notes"
        noun = "Credit Note" if credit else "Invoice"
        types = ("ACCRECCREDIT", "ACCPAYCREDIT") if credit else ("ACCREC", "ACCPAY")
        current = existing["Status"] if existing else None
        status = str(body.get("Status") or current or "DRAFT")
        problems: list[str] = []
        if existing is None and status not in CREATE_STATUSES:
            raise Invalid(f"{noun} Status '{status}' is not valid for a new {noun.lower()}.")
        if current is not None and status not in MOVES.get(current, set()):
            raise Invalid(f"{noun} not of valid status for modification")
        settled = existing is not None and bool(
            existing.get("AmountPaid")
            or existing.get("AmountCredited")
            or existing["Payments"]
            or existing.get("Allocations")
        )
        if status == "VOIDED" and settled:
            raise Invalid(f"This {noun.lower()} cannot be voided as it has a payment or credit note allocated to it.")
        editing = [k for k in ("LineItems", "Contact", "Date", "DueDate", "LineAmountTypes") if k in body]
        if current in ("PAID", "VOIDED", "DELETED") and editing:
            raise Invalid(f"This document cannot be edited as it is {current}.")
        if current == "AUTHORISED" and settled and editing:
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it.")
        doc_type = str(body.get("Type") or (existing or {}).get("Type") or "")
        if doc_type not in types:
            problems.append(
                f"{noun} Type must be one of {', '.join(types)}" if doc_type else f"{noun} Type must be specified"
            )
        contact = None
        try:
            contact = self.contact_of(body["Contact"]) if "Contact" in body or existing is None else None
        except Invalid as exc:
            problems += exc.messages
        amounts = str(body.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") or "Exclusive")
        if amounts not in ("Exclusive", "Inclusive", "NoTax"):
            problems.append(f"LineAmountTypes '{amounts}' is not valid")
        strict = status not in EDITABLE and status not in ("DELETED", "VOIDED")
        lines = None
        try:
            if "LineItems" in body:
                lines = self.lines(body["LineItems"], amounts, strict=strict)
            elif existing is not None and strict and current in EDITABLE:
                lines = self.lines(existing["LineItems"], amounts, strict=True)  # authorising checks its lines
        except Invalid as exc:
            problems += exc.messages
        dates: dict[str, str] = {}
        for key in ("Date", "DueDate"):
            if body.get(key):
                try:
                    dates[key] = parse_date(body[key], key)
                except Invalid as exc:
                    problems += exc.messages
        number_key = "CreditNoteNumber" if credit else "InvoiceNumber"
        number = str(body.get(number_key) or (existing or {}).get(number_key) or "")
        if number and doc_type in ("ACCREC", "ACCRECCREDIT"):
            clash = any(
                d.get(number_key) == number
                and d["Type"] == doc_type
                and d["Status"] != "DELETED"
                and (existing is None or d is not existing)
                for d in getattr(self, kind).values()
            )
            if clash:
                problems.append(f"{'Credit Note' if credit else 'Invoice'} # must be unique.")
        if (
            not credit
            and strict
            and doc_type == "ACCREC"
            and not (dates.get("DueDate") or (existing or {}).get("DueDate"))
        ):
            problems.append("Due Date is mandatory.")
        if problems:
            raise Invalid(*problems)
        record = existing
        if record is None:
            record = {
                "Type": doc_type,
                "CurrencyCode": str(body.get("CurrencyCode") or "USD"),
                "CurrencyRate": Decimal("1.000000"),
                "Payments": [],
                "LineItems": [],
                "HasAttachments": False,
                "HasErrors": False,
                "_created": self.now(),
                "Date": self.today(),
            }
            if credit:
                record["CreditNoteID"] = str(uuid.uuid4())
                record["Allocations"] = []
            else:
                record["InvoiceID"] = str(uuid.uuid4())
                record["AmountPaid"], record["AmountCredited"] = ZERO, ZERO
                record["CreditNotes"], record["Prepayments"], record["Overpayments"] = [], [], []
                record["SentToContact"], record["IsDiscounted"] = False, False
            if not number and doc_type in ("ACCREC", "ACCRECCREDIT"):
                prefix = "CN" if credit else "INV"
                self.numbers[prefix] += 1
                number = f"{prefix}-{self.numbers[prefix]:04d}"
        if contact is not None:
            record["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
            if doc_type.startswith("ACCREC") and not contact["IsCustomer"]:
                contact["IsCustomer"] = True
        if number:
            record[number_key] = number
        if body.get("Reference") is not None:
            record["Reference"] = str(body["Reference"])
        record.update(dates, Type=doc_type, Status=status, LineAmountTypes=amounts)
        if lines is not None:
            record["LineItems"] = lines
        if body.get("SentToContact") is not None and not credit:
            record["SentToContact"] = bool(body["SentToContact"])
        self.totals(record)
        self.settle(record)
        self.touch(record)
        getattr(self, kind)[record["CreditNoteID" if credit else "InvoiceID"]] = record
        event = "CREATE" if existing is None else "UPDATE"
        if credit:
            self.notify("CREDITNOTE", record["CreditNoteID"], event, {"Type": doc_type, "Status": status})
        else:
            self.notify("INVOICE", record["InvoiceID"], event, {})
        return record

    def settle(self, record: dict[str, Any]) -> None:
        """Amounts due or remaining, and PAID when covered (AUTHORISED again when no longer covered)."""
        if "CreditNoteID" in record:
            spent = sum((a["Amount"] for a in record["Allocations"]), ZERO) + sum(
                (p["Amount"] for p in record["Payments"]), ZERO
            )
            record["AppliedAmount"] = spent
            record["RemainingCredit"] = record["Total"] - spent if record["Status"] in ("AUTHORISED", "PAID") else ZERO
            left = record["RemainingCredit"]
        else:
            record["AmountDue"] = record["Total"] - record["AmountPaid"] - record["AmountCredited"]
            left = record["AmountDue"]
        if record["Status"] == "AUTHORISED" and left <= 0 and record["Total"] > 0:
            record["Status"] = "PAID"
            dates = [p["Date"] for p in record["Payments"]] + [a["Date"] for a in record.get("Allocations", [])]
            dates += [c["Date"] for c in record.get("CreditNotes", [])]
            record["FullyPaidOnDate"] = max(dates) if dates else self.today()
        elif record["Status"] == "PAID" and left > 0:
            record["Status"] = "AUTHORISED"
            record.pop("FullyPaidOnDate", None)

    # --- payments ---------------------------------------------------------------------------------
    def pay(self, body: dict[str, Any]) -> dict[str, Any]:
        problems: list[str] = []
        target = None
        invoice_ref, credit_ref = _ref(body.get("Invoice"), "Invoice"), _ref(body.get("CreditNote"), "CreditNote")
        if invoice_ref or body.get("InvoiceNumber"):
            number = invoice_ref.get("InvoiceNumber") or body.get("InvoiceNumber")
            target = self.invoices.get(str(invoice_ref.get("InvoiceID", ""))) or next(
                (i for i in self.invoices.values() if number and i.get("InvoiceNumber") == number), None
            )
            if target is None:
                problems.append("Invoice could not be found")
        elif credit_ref or body.get("CreditNoteNumber"):
            number = credit_ref.get("CreditNoteNumber") or body.get("CreditNoteNumber")
            target = self.credit_notes.get(str(credit_ref.get("CreditNoteID", ""))) or next(
                (c for c in self.credit_notes.values() if number and c.get("CreditNoteNumber") == number), None
            )
            if target is None:
                problems.append("Credit Note could not be found")
        else:
            problems.append(
                "You must specify either an Invoice, Credit Note, Prepayment or Overpayment to apply the payment to"
            )
        account = None
        try:
            account = self.account(_ref(body.get("Account"), "Account"), what="payment")
            if account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
                problems.append("Payments can only be made to or from bank accounts or accounts with payments enabled")
        except Invalid as exc:
            problems += exc.messages
        amount = ZERO
        try:
            amount = money(body.get("Amount"), "Amount") if body.get("Amount") is not None else ZERO
            if amount <= 0:
                problems.append("Payment amount must be greater than zero")
        except Invalid as exc:
            problems += exc.messages
        paid_on = self.today()
        if body.get("Date"):
            try:
                paid_on = parse_date(body["Date"])
            except Invalid as exc:
                problems += exc.messages
        if target is not None:
            if target["Status"] != "AUTHORISED":
                noun = "Credit Note" if "CreditNoteID" in target else "Invoice"
                problems.append(f"{noun} not of valid status for creating payment")
            elif amount > (target["AmountDue"] if "InvoiceID" in target else target["RemainingCredit"]):
                problems.append("Payment amount exceeds the amount outstanding on this document")
        if problems:
            raise Invalid(*problems)
        assert target is not None and account is not None
        on_invoice = "InvoiceID" in target
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "Date": paid_on,
            "Amount": cents(amount),
            "BankAmount": cents(amount),
            "Reference": str(body.get("Reference") or ""),
            "CurrencyRate": Decimal("1.000000"),
            "PaymentType": ("ACCRECPAYMENT" if target["Type"] == "ACCREC" else "ACCPAYPAYMENT")
            if on_invoice
            else ("ARCREDITPAYMENT" if target["Type"] == "ACCRECCREDIT" else "APCREDITPAYMENT"),
            "Status": "AUTHORISED",
            "IsReconciled": bool(body.get("IsReconciled", False)),
            "HasAccount": True,
            "HasValidationErrors": False,
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
            ("InvoiceID" if on_invoice else "CreditNoteID"): target["InvoiceID" if on_invoice else "CreditNoteID"],
            "_created": self.now(),
        }
        self.touch(payment)
        self.payments[payment["PaymentID"]] = payment
        target["Payments"].append({k: payment[k] for k in ("PaymentID", "Date", "Amount", "Reference", "CurrencyRate")})
        if on_invoice:
            target["AmountPaid"] += payment["Amount"]
        self._changed(target)
        return payment

    def delete_payment(self, payment: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if str(body.get("Status", "")) != "DELETED":
            raise Invalid("Only the Status of a payment may be updated, to DELETED")
        if payment["Status"] == "DELETED":
            return payment
        if payment["IsReconciled"]:
            raise Invalid("Payment cannot be deleted as it has been reconciled")
        payment["Status"] = "DELETED"
        self.touch(payment)
        target = self.invoices.get(payment.get("InvoiceID", "")) or self.credit_notes[payment["CreditNoteID"]]
        target["Payments"] = [p for p in target["Payments"] if p["PaymentID"] != payment["PaymentID"]]
        if "InvoiceID" in target:
            target["AmountPaid"] -= payment["Amount"]
        self._changed(target)
        return payment

    def _changed(self, target: dict[str, Any]) -> None:
        self.settle(target)
        self.touch(target)
        if "InvoiceID" in target:
            self.notify("INVOICE", target["InvoiceID"], "UPDATE", {})
        else:
            self.notify(
                "CREDITNOTE", target["CreditNoteID"], "UPDATE", {"Type": target["Type"], "Status": target["Status"]}
            )

    # --- allocations ------------------------------------------------------------------------------
    def allocate(self, credit: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        problems: list[str] = []
        ref = _ref(body.get("Invoice"), "Invoice")
        invoice = self.invoices.get(str(ref.get("InvoiceID", ""))) or next(
            (
                i
                for i in self.invoices.values()
                if ref.get("InvoiceNumber") and i.get("InvoiceNumber") == ref["InvoiceNumber"]
            ),
            None,
        )
        if invoice is None:
            raise Invalid("Invoice could not be found")
        try:
            amount = cents(money(body.get("Amount"), "Amount"))
        except Invalid as exc:
            raise Invalid(*exc.messages) from None
        on = parse_date(body["Date"]) if body.get("Date") else self.today()
        if credit["Status"] != "AUTHORISED":
            problems.append("Credit Note not of valid status for allocation")
        if invoice["Status"] != "AUTHORISED":
            problems.append("Invoice not of valid status for allocation")
        if invoice["Contact"]["ContactID"] != credit["Contact"]["ContactID"]:
            problems.append("The Credit Note and Invoice must belong to the same Contact")
        if amount <= 0:
            problems.append("Allocation amount must be greater than zero")
        if not problems and amount > credit["RemainingCredit"]:
            problems.append("The amount being allocated exceeds the remaining credit on the credit note")
        if not problems and amount > invoice["AmountDue"]:
            problems.append("The amount being allocated exceeds the amount due on the invoice")
        if problems:
            raise Invalid(*problems)
        allocation = {
            "AllocationID": str(uuid.uuid4()),
            "Amount": amount,
            "Date": on,
            "InvoiceID": invoice["InvoiceID"],
            "CreditNoteID": credit["CreditNoteID"],
            "IsDeleted": False,
            "_created": self.now(),
        }
        self.allocations[allocation["AllocationID"]] = allocation
        credit["Allocations"].append({k: allocation[k] for k in ("AllocationID", "Amount", "Date", "InvoiceID")})
        invoice["CreditNotes"].append(
            {
                "CreditNoteID": credit["CreditNoteID"],
                "CreditNoteNumber": credit.get("CreditNoteNumber", ""),
                "AppliedAmount": amount,
                "Date": on,
                "Total": credit["Total"],
            }
        )
        invoice["AmountCredited"] += amount
        self._changed(credit)
        self._changed(invoice)
        return allocation

    # --- bank transactions ------------------------------------------------------------------------
    def save_bank_transaction(self, body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
        if existing is not None:
            status = str(body.get("Status") or existing["Status"])
            if existing["Status"] != "AUTHORISED" or status not in ("AUTHORISED", "DELETED"):
                raise Invalid("Bank transaction not of valid status for modification")
            if status == "DELETED" and existing["IsReconciled"]:
                raise Invalid("This bank transaction cannot be deleted as it has been reconciled")
            if status == "DELETED":
                existing["Status"] = "DELETED"
                self.touch(existing)
                return existing
        problems: list[str] = []
        kinds = (
            "RECEIVE",
            "SPEND",
            "RECEIVE-OVERPAYMENT",
            "SPEND-OVERPAYMENT",
            "RECEIVE-PREPAYMENT",
            "SPEND-PREPAYMENT",
            "RECEIVE-TRANSFER",
            "SPEND-TRANSFER",
        )
        kind = str(body.get("Type") or (existing or {}).get("Type") or "")
        if kind not in kinds:
            problems.append("Bank Transaction Type must be specified" if not kind else f"Type '{kind}' is not valid")
        bank = None
        try:
            ref = _ref(body.get("BankAccount"), "BankAccount") or (existing or {}).get("BankAccount") or {}
            if not ref:
                raise Invalid("A Bank Account must be specified")
            bank = self.account(ref, what="bank transaction")
            if bank["Type"] != "BANK":
                problems.append(f"Account '{bank['Code']}' is not a bank account")
        except Invalid as exc:
            problems += exc.messages
        contact = None
        if body.get("Contact"):
            try:
                contact = self.contact_of(body["Contact"])
            except Invalid as exc:
                problems += exc.messages
        amounts = str(body.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") or "Exclusive")
        lines = None
        try:
            if "LineItems" in body or existing is None:
                lines = self.lines(body.get("LineItems") or [], amounts, strict=True, what="bank transaction")
                if not lines:
                    problems.append("At least one line item must be specified")
        except Invalid as exc:
            problems += exc.messages
        on = None
        if body.get("Date"):
            try:
                on = parse_date(body["Date"])
            except Invalid as exc:
                problems += exc.messages
        if problems:
            raise Invalid(*problems)
        record = existing or {
            "BankTransactionID": str(uuid.uuid4()),
            "Type": kind,
            "Status": "AUTHORISED",
            "CurrencyCode": "USD",
            "CurrencyRate": Decimal("1.000000"),
            "IsReconciled": False,
            "HasAttachments": False,
            "Date": self.today(),
            "_created": self.now(),
        }
        assert bank is not None
        record["BankAccount"] = {"AccountID": bank["AccountID"], "Code": bank["Code"], "Name": bank["Name"]}
        record.update(Type=kind, LineAmountTypes=amounts)
        if contact is not None:
            record["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        if lines is not None:
            record["LineItems"] = lines
        if on:
            record["Date"] = on
        if body.get("Reference") is not None:
            record["Reference"] = str(body["Reference"])
        if body.get("IsReconciled") is not None:
            record["IsReconciled"] = bool(body["IsReconciled"])
        self.totals(record)
        if record["Total"] < 0:
            raise Invalid("The total of a bank transaction cannot be negative")
        self.touch(record)
        self.bank_transactions[record["BankTransactionID"]] = record
        return record


def _address(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    address = {"AddressType": kind}
    for key in ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4"):
        if given.get(key):
            address[key] = str(given[key])
    for key in ("City", "Region", "PostalCode", "Country", "AttentionTo"):
        address[key] = str(given.get(key) or "")
    return address


def _phone(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    return {
        "PhoneType": kind,
        **{k: str(given.get(k) or "") for k in ("PhoneNumber", "PhoneAreaCode", "PhoneCountryCode")},
    }
