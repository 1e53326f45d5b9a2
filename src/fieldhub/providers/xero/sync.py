"""Xero export adapter: contacts, items, ACCREC invoices, payments, refunds (credit notes) and payouts.

Every create is sent alone with `Idempotency-Key: <the ledger's key>`, so a create whose reply was lost is
sent again under the same key and Xero answers with what it made the first time (no natural-key look-up
needed). Updates are `POST /{Resource}/{id}` with the fields fieldhub owns. An invoice goes AUTHORISED
(fieldhub's DRAFT never leaves, rules.py), a void is `Status: VOIDED`, a voided payment `Status: DELETED`.

Money through a card processor is booked as Xero's bank reconciliation expects it: the payment lands in the
mapped clearing account (a current asset with payments enabled), and the payout becomes one RECEIVE bank
transaction into the bank account whose lines move the gross out of clearing and book the processor's fees,
so its total is the payout to the cent and matches the bank statement line. A refund is an ACCRECCREDIT
credit note refunded in cash (a payment on the credit note) from where the payment landed.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx

from fieldhub import exactjson
from fieldhub.core.money import ZERO, to_money
from fieldhub.core.payments.models import DepositLineKind
from fieldhub.hub.errors import NeedsReauth, ProviderError, Rejected, RetryLater
from fieldhub.hub.http import DEFAULT_FIX, ProviderClient, parse_retry_after
from fieldhub.hub.sync.adapter import PushItem, PushResult
from fieldhub.hub.sync.models import Operation

REMOTE = {
    "customer": "Contacts",
    "item": "Items",
    "invoice": "Invoices",
    "payment": "Payments",
    "refund": "CreditNotes",
    "deposit": "BankTransactions",
}
ID_FIELD = {r: r[:-1] + "ID" for r in REMOTE.values()}  # Contacts → ContactID, BankTransactions → …
EXPORTS = tuple(REMOTE)
ACCOUNT_KEYS = ("service_revenue", "product_revenue", "sales_tax_payable", "discounts", "bank_deposit")
CLEARING_KEY = "payments_clearing"
FEES_KEY = "processing_fees"
MAPPING_FIX = "Open Xero → Field mapping, choose the accounts again and save, then retry."
MARKER = "fieldhub"
# Xero allows 5,000 calls a day per organisation and says on every reply what is left (X-DayLimit-Remaining).
# A run stops sending while this many are left, so health checks and reads still have room and a backfill
# never meets the day's 429; the rows wait and the sync looks again an hour later (the day is rolling: the
# budget comes back as the calls made 24 hours before age out).
DAY_RESERVE = 100
DAY_RECHECK = 3600.0


def marker(entity: str, local_id: int) -> str:
    return f"{MARKER} {entity} #{local_id}"


# ----------------------------------------------------------------------------- Xero's refusals → error kinds


def _messages(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    found = [str(v.get("Message", "")) for e in body.get("Elements") or [] for v in e.get("ValidationErrors") or []]
    return [m for m in found if m] or ([str(body["Message"])] if body.get("Message") else [])


# Words in Xero's validation message → the refusal's code, reason and fix ({said}: Xero's words; the others: what
# was sent). The first row whose words all appear wins.
REFUSALS = (
    (("already assigned to another contact",), "name_conflict",
     "Customer name conflict: Xero already has a contact named “{Name}”",
     "Change the customer's display name in fieldhub (e.g. add the city), or rename or archive the other contact "
     "in Xero, then retry."),
    (("item code", "already exists"), "name_conflict",
     "Item code conflict: Xero already has an item with code “{Code}”",
     "Change the item's SKU in fieldhub, or the other item's code in Xero, then retry."),
    (("account code",), "account", "Account not found: {said}; your chart of accounts changed", MAPPING_FIX),
    (("account with accountid",), "account", "Account not found: {said}; your chart of accounts changed", MAPPING_FIX),
    (("not a bank account",), "account", "Account not found: {said}; your chart of accounts changed", MAPPING_FIX),
    (("tax type",), "tax_type", "Invalid tax rate: {said}", "Check the tax rates set up in Xero, then retry."),
    (("invoice # must be unique",), "duplicate_number",
     "Duplicate invoice number: Xero already has an invoice numbered {InvoiceNumber}",
     "Change the number in Xero or in fieldhub, then retry."),
    (("payment or credit note allocated",), "has_payments", "Xero refused this: {said}",
     "Remove the payment or credit note from the invoice in Xero first, then retry."),
)  # fmt: skip


def explain(messages: list[str], sent: dict[str, Any] | None = None) -> Rejected:
    """Xero's validation messages in words a business owner can act on."""
    said = "; ".join(messages) or "Xero refused this"
    values = defaultdict(str, {k: v for k, v in (sent or {}).items() if isinstance(v, str)}, said=said)
    for words, code, reason, fix in REFUSALS:
        if all(word in said.lower() for word in words):
            return Rejected(code, reason.format_map(values), fix)
    return Rejected("validation", f"Xero refused this: {said}", DEFAULT_FIX)


def classify(response: httpx.Response) -> ProviderError | None:
    """ProviderClient's hook: Xero's statuses and its ValidationException as the engine's four kinds."""
    status = response.status_code
    if status < 400:
        return None
    if status == 429:
        problem = response.headers.get("x-rate-limit-problem", "minute")
        reason = (
            "Xero's daily limit for this organisation is used up" if problem == "day" else "Xero asked to slow down"
        )
        return RetryLater(reason, retry_after=parse_retry_after(response.headers.get("retry-after")), status=status)
    if status >= 500:
        return RetryLater(f"Xero had a temporary problem ({status})", status=status)
    if status in (401, 403):
        return NeedsReauth(
            "Xero no longer accepts fieldhub's access to this organisation. Click Reconnect.", status=status
        )
    if status == 404:
        return Rejected("not_found", "Xero no longer has this record", DEFAULT_FIX, status=status)
    try:
        body = response.json()
        sent = exactjson.loads(response.request.content or b"{}")
    except (ValueError, RuntimeError):
        return Rejected(f"http_{status}", "Xero refused this", DEFAULT_FIX, status=status)
    first = next((v[0] for v in sent.values() if isinstance(v, list) and v), sent) if isinstance(sent, dict) else {}
    return explain(_messages(body), first if isinstance(first, dict) else {})


# ----------------------------------------------------------------------------- fieldhub records → Xero JSON


def item_code(item: Any) -> str:
    """Xero's required item code (≤ 30): the SKU, else the name made into a code with a short hash."""
    if getattr(item, "sku", ""):
        return str(item.sku)[:30]
    base = re.sub(r"[^A-Za-z0-9]+", "-", item.name.strip()).strip("-").upper()[:21] or "ITEM"
    return f"{base}-{hashlib.sha256(item.name.strip().lower().encode()).hexdigest()[:8].upper()}"


def contact_body(customer: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": customer.display_name.strip()[:255],
        "ContactStatus": "ACTIVE" if customer.active else "ARCHIVED",
        "EmailAddress": customer.email or "",
        "Addresses": [],
    }
    for kind, prefix in (("POBOX", "billing"), ("STREET", "service")):  # Xero: POBOX bills, STREET is the site
        parts = {
            "AddressLine1": getattr(customer, f"{prefix}_line1"),
            "AddressLine2": getattr(customer, f"{prefix}_line2"),
            "City": getattr(customer, f"{prefix}_city"),
            "Region": getattr(customer, f"{prefix}_region"),
            "PostalCode": getattr(customer, f"{prefix}_postal_code"),
            "Country": getattr(customer, f"{prefix}_country"),
        }
        if any(parts.values()):
            body["Addresses"].append({"AddressType": kind, **{k: v or "" for k, v in parts.items()}})
    if customer.phone:
        body["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": customer.phone}]
    if customer.company:
        body["ContactPersons"] = []
    return body


def item_body(item: Any, accounts: dict[str, str], tax_type: str) -> dict[str, Any]:
    product = str(item.kind) == "product"
    body: dict[str, Any] = {
        "Code": item_code(item),
        "Name": item.name.strip()[:50],
        "IsSold": True,
        "SalesDetails": {
            "UnitPrice": to_money(item.unit_price),
            "AccountCode": accounts["product_revenue" if product else "service_revenue"],
            "TaxType": tax_type if item.taxable else "NONE",
        },
    }
    if item.description:
        body["Description"] = item.description[:4000]
    return body


def invoice_body(
    invoice: Any, refs: dict[tuple[str, int], str], accounts: dict[str, str], tax_type: str
) -> dict[str, Any]:
    """An ACCREC invoice, AUTHORISED, whose lines carry fieldhub's own tax so Xero's total is fieldhub's."""
    lines = sorted(invoice.lines, key=lambda ln: ln.position)
    taxable = [ln for ln in lines if ln.taxable]
    base = sum((ln.amount for ln in taxable), ZERO)
    left = to_money(invoice.tax_total)
    out: list[dict[str, Any]] = []
    for line in lines:
        tax = ZERO
        if line.taxable and base:
            tax = left if line is taxable[-1] else to_money(invoice.tax_total * line.amount / base)
            left -= tax
        entry: dict[str, Any] = {
            "Description": line.description or "Services",
            "Quantity": line.quantity.normalize(),
            "LineAmount": to_money(line.amount),
            "AccountCode": accounts["service_revenue"],
            "TaxType": tax_type if line.taxable else "NONE",
            "TaxAmount": tax,
        }
        if to_money(line.quantity * line.unit_price) == to_money(line.amount):
            entry["UnitAmount"] = to_money(line.unit_price)
        out.append(entry)
    if invoice.discount_total > 0:
        out.append(
            {
                "Description": "Discount",
                "Quantity": Decimal(1),
                "UnitAmount": -to_money(invoice.discount_total),
                "AccountCode": accounts["discounts"],
                "TaxType": "NONE",
                "TaxAmount": ZERO,
            }
        )
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": refs[("customer", invoice.customer_id)]},
        "InvoiceNumber": invoice.number[:255],
        "Reference": marker("invoice", invoice.id),
        "Date": invoice.issue_date.isoformat(),
        "DueDate": (invoice.due_date or invoice.issue_date).isoformat(),
        "LineAmountTypes": "Exclusive",
        "Status": "AUTHORISED",
        "LineItems": out,
    }
    return body


def payment_body(payment: Any, refs: dict[tuple[str, int], str], account: str) -> dict[str, Any]:
    reference = marker("payment", payment.id) + (f" · {payment.reference}" if payment.reference else "")
    return {
        "Invoice": {"InvoiceID": refs[("invoice", payment.invoice_id)]},
        "Account": {"Code": account},
        "Date": payment.received_on.isoformat(),
        "Amount": to_money(payment.amount),
        "Reference": reference[:255],
    }


def credit_note_body(
    refund: Any, invoice: Any, refs: dict[tuple[str, int], str], accounts: dict[str, str]
) -> dict[str, Any]:
    said = f"Refund on invoice {invoice.number}" + (f": {refund.reason}" if refund.reason else "")
    return {
        "Type": "ACCRECCREDIT",
        "Contact": {"ContactID": refs[("customer", invoice.customer_id)]},
        "Date": refund.refunded_on.isoformat(),
        "Status": "AUTHORISED",
        "LineAmountTypes": "NoTax",
        "Reference": marker("refund", refund.id),
        "LineItems": [
            {
                "Description": said[:4000],
                "Quantity": Decimal(1),
                "UnitAmount": to_money(refund.amount),
                "AccountCode": accounts["service_revenue"],
            }
        ],
    }


def payout_note(deposit: Any) -> str:
    return f"{marker('deposit', deposit.id)} · {deposit.source} payout {deposit.source_id}"


def bank_transaction_body(deposit: Any, accounts: dict[str, str]) -> dict[str, Any]:
    """One payout as a RECEIVE into the bank account: the money out of clearing, less the fees; total = payout."""
    moved = ZERO
    fees = ZERO
    lines: list[dict[str, Any]] = []
    for line in sorted(deposit.lines, key=lambda ln: ln.position):
        kind = DepositLineKind(line.kind)
        if kind == DepositLineKind.FEE:
            fees += line.amount
        elif kind in (DepositLineKind.PAYMENT, DepositLineKind.REFUND) and (line.payment_id or line.refund_id):
            moved += line.amount
        elif line.amount:
            account = accounts[FEES_KEY] if kind == DepositLineKind.ADJUSTMENT else accounts["service_revenue"]
            said = f"{deposit.source} {kind} {line.source_id} (no fieldhub record): {line.description}"
            lines.append(
                {
                    "Description": said[:4000],
                    "Quantity": Decimal(1),
                    "UnitAmount": to_money(line.amount),
                    "AccountCode": account,
                }
            )
    if moved:
        said = f"{deposit.source.capitalize()} payout {deposit.source_id}: payments less refunds"
        lines.insert(
            0,
            {
                "Description": said,
                "Quantity": Decimal(1),
                "UnitAmount": to_money(moved),
                "AccountCode": accounts[CLEARING_KEY],
            },
        )
    if fees:
        lines.append(
            {
                "Description": f"{deposit.source.capitalize()} processing fees",
                "Quantity": Decimal(1),
                "UnitAmount": to_money(fees),
                "AccountCode": accounts[FEES_KEY],
            }
        )
    return {
        "Type": "RECEIVE",
        "BankAccount": {"Code": accounts["bank_deposit"]},
        "Date": deposit.arrival_date.isoformat(),
        "Reference": payout_note(deposit)[:255],
        "LineAmountTypes": "NoTax",
        "LineItems": lines,
    }


# ----------------------------------------------------------------------------- the adapter


class XeroAdapter:
    batch_size = 1  # every create alone, under its own Idempotency-Key

    def __init__(self, connection: Any, client: ProviderClient, settings: Any) -> None:
        self.client = client
        self.tenant = str(connection.account_id)
        self.settings = dict(connection.settings or {})
        self.accounts = {k: str(v) for k, v in (self.settings.get("account_mapping") or {}).items() if v}
        self._tax_type: str | None = None
        self.day_left: int | None = None  # X-DayLimit-Remaining of the last reply

    async def _call(
        self, method: str, path: str, body: Any = None, *, key: str | None = None, **params: str
    ) -> dict[str, Any]:
        response = await self.client.request(
            method,
            path,
            bucket=self.tenant,
            content=exactjson.dumps(body) if body is not None else None,
            params=params or None,
            headers={
                "xero-tenant-id": self.tenant,
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if body is not None else {}),
            },
            idempotency_key=key,
            idempotent=True if method == "GET" else None,
        )
        left = response.headers.get("x-daylimit-remaining", "")
        if left.isdigit():
            self.day_left = int(left)
        reply: dict[str, Any] = exactjson.loads(response.content) if response.content else {}
        return reply

    def _within_budget(self) -> None:
        """Stop before the day's calls run out: the run's rows wait and try again later (no 429 met)."""
        if self.day_left is not None and self.day_left <= DAY_RESERVE:
            raise RetryLater(
                f"Xero's daily limit for this organisation is nearly used ({self.day_left} calls left today): "
                "syncing pauses and resumes by itself as the day's calls free up",
                retry_after=DAY_RECHECK,
            )

    async def prepare(self) -> None:
        if missing := [k.replace("_", " ") for k in ACCOUNT_KEYS if not self.accounts.get(k)]:
            fix = f"Open Xero → Field mapping and choose the accounts for {', '.join(missing)}."
            raise Rejected("mapping_required", "Map your chart of accounts first", fix)

    async def tax_type(self) -> str:
        """The organisation's sales tax (the first active rate Xero reports as OUTPUT), read once per run."""
        if self._tax_type is None:
            rates = (await self._call("GET", "/TaxRates")).get("TaxRates", [])
            self._tax_type = next(
                (
                    str(r["TaxType"])
                    for r in rates
                    if r.get("Status") == "ACTIVE" and r.get("ReportTaxType") == "OUTPUT"
                ),
                "NONE",
            )
        return self._tax_type

    def _account(self, key: str, what: str) -> str:
        found = self.accounts.get(key)
        if not found:
            label = key.replace("_", " ")
            raise Rejected(
                "mapping_required",
                f"Choose the account for {label} before {what} can sync",
                f"Open Xero → Field mapping, choose {label.capitalize()}, save, then retry.",
            )
        return found

    def _landing(self, item: PushItem) -> str:
        """Where a payment lands: a processor's in the clearing account (its payout moves it), others in the bank."""
        if item.related.get("processor"):
            return self._account(CLEARING_KEY, "card payments")
        return self.accounts["bank_deposit"]

    async def body(self, item: PushItem) -> dict[str, Any]:
        record, refs = item.record, dict(item.refs)
        if item.entity == "customer":
            return contact_body(record)
        if item.entity == "item":
            return item_body(record, self.accounts, await self.tax_type())
        if item.entity == "invoice":
            taxed = any(line.taxable for line in record.lines)
            return invoice_body(record, refs, self.accounts, await self.tax_type() if taxed else "NONE")
        if item.entity == "payment":
            return payment_body(record, refs, self._landing(item))
        if item.entity == "refund":
            return credit_note_body(record, item.related["invoice"], refs, self.accounts)
        if item.entity == "deposit":
            self._account(FEES_KEY, "payouts")
            self._account(CLEARING_KEY, "payouts")
            return bank_transaction_body(record, self.accounts)
        raise Rejected("unsupported", f"Xero sync does not send {item.entity} records", "")

    async def push(self, item: PushItem) -> PushResult:
        self._within_budget()
        resource = REMOTE[item.entity]
        if item.operation in (Operation.VOID, Operation.DELETE):
            return await self._void_or_delete(item, resource)
        body = await self.body(item)
        if item.is_create:
            reply = await self._call("PUT", f"/{resource}", {resource: [body]}, key=item.idempotency_key)
            result = self._result(resource, reply, "created", body)
            if item.entity == "refund":
                await self._settle_refund(item, result.remote_id)
            return result
        if item.entity in ("payment", "refund", "deposit"):
            # Xero keeps these as made: an edit here is not carried over (the history says so).
            return PushResult(str(item.remote_id), item.remote_version, "updated", body, {})
        try:
            reply = await self._call("POST", f"/{resource}/{item.remote_id}", {resource: [body]})
        except Rejected as e:
            if e.code != "has_payments":
                raise
            return await self._settled_invoice(item, body, e)
        return self._result(resource, reply, "updated", body)

    async def _settled_invoice(self, item: PushItem, body: dict[str, Any], refused: Rejected) -> PushResult:
        """Xero keeps an invoice with a payment or credit on it as it is. A change here that leaves its total as
        Xero has it (a payment recorded: its status and balance, which Xero keeps itself) is in step already;
        a change of what it charges is refused in words."""
        current = (await self._call("GET", f"/Invoices/{item.remote_id}")).get("Invoices", [{}])[0]
        if Decimal(str(current.get("Total", "0"))) == to_money(item.record.total):
            return PushResult(
                str(item.remote_id), str(current.get("UpdatedDateUTC", "")) or None, "updated", body, current
            )
        raise refused

    async def _settle_refund(self, item: PushItem, credit_id: str) -> None:
        """The credit note refunded in cash: a payment on it out of where the customer's payment landed (the clearing
        account for a card refund, which its payout nets; else the bank). Allocating it to the invoice instead would
        lower what the customer owes with no money leaving, and the month's receivables would no longer match
        fieldhub's (the reconciliation finds it). Its own Idempotency-Key: a retry does not pay it twice."""
        refund = item.record
        credit = (await self._call("GET", f"/CreditNotes/{credit_id}")).get("CreditNotes", [{}])[0]
        if Decimal(str(credit.get("RemainingCredit", 0))) < to_money(refund.amount):
            return  # refunded already (a retry that found it done)
        cash = {
            "CreditNote": {"CreditNoteID": credit_id},
            "Account": {"Code": self._landing(item)},
            "Amount": to_money(refund.amount),
            "Date": refund.refunded_on.isoformat(),
            "Reference": marker("refund", refund.id),
        }
        key = f"{item.idempotency_key}-refund" if item.idempotency_key else None
        await self._call("PUT", "/Payments", {"Payments": [cash]}, key=key)

    async def _void_or_delete(self, item: PushItem, resource: str) -> PushResult:
        void = item.operation == Operation.VOID
        if resource == "Items":
            await self._call("DELETE", f"/Items/{item.remote_id}")
            return PushResult(str(item.remote_id), None, "deleted", {}, {})
        body = {"Contacts": {"ContactStatus": "ARCHIVED"}, "Payments": {"Status": "DELETED"}}.get(resource) or {
            "Status": "VOIDED" if void and resource != "BankTransactions" else "DELETED"
        }
        reply = await self._call("POST", f"/{resource}/{item.remote_id}", {resource: [body]})
        return self._result(resource, reply, "voided" if void else "deleted", body)

    @staticmethod
    def _result(resource: str, reply: dict[str, Any], action: str, sent: dict[str, Any]) -> PushResult:
        obj = (reply.get(resource) or [{}])[0]
        if obj.get("HasErrors") or obj.get("HasValidationErrors") or obj.get("StatusAttributeString") == "ERROR":
            raise explain([str(v.get("Message", "")) for v in obj.get("ValidationErrors") or []], sent)
        return PushResult(
            remote_id=str(obj.get(ID_FIELD[resource], "")),
            remote_version=str(obj.get("UpdatedDateUTC", "")) or None,
            action=action,
            sent=sent,
            received=obj,
        )

    async def push_batch(self, items: Sequence[PushItem]) -> list[PushResult | ProviderError]:
        results: list[PushResult | ProviderError] = []
        for item in items:
            try:
                results.append(await self.push(item))
            except (Rejected, RetryLater) as e:
                results.append(e)
        return results

    async def find_existing(self, item: PushItem) -> PushResult | None:
        return None  # every create went alone under its Idempotency-Key: sending it again replays Xero's reply


def create_adapter(connection: Any, client: ProviderClient, settings: Any) -> XeroAdapter:
    return XeroAdapter(connection, client, settings)
