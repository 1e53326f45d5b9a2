"""fieldhub records as QuickBooks Online JSON (Accounting API v3): pure functions, money as exact Decimal strings.

Internal notes (`notes` on customers, invoices and payments) are never read here, so they cannot leave
fieldhub. QBO wants every sales line to name an item; lines typed in by hand use the company's
"Services" item (the adapter finds or creates it). A line discount has no place in QBO's US/CA line
model, so such a line is sent with its net Amount and Qty and QBO derives the unit price; the
invoice-level discount becomes one DiscountLineDetail line booked to the mapped Discounts account.

Money that comes through a card processor (Stripe) is booked the way QuickBooks groups a payout: each
payment lands in Undeposited Funds, a processor's refund is paid from Undeposited Funds, and the payout
becomes one Deposit into the mapped bank account that links those payments (positive) and refund
receipts (negative) and adds one negative line for the processing fees, so the Deposit's total is the
payout, to the cent. The Deposit's PrivateNote names the payout: "fieldhub deposit #12 · stripe payout po_…".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fieldhub.core.money import ZERO, to_money
from fieldhub.core.payments.models import DepositLineKind

# The keys the field-mapping page saves in connection.settings["account_mapping"] (QBO Account Ids).
ACCOUNT_KEYS = ("service_revenue", "product_revenue", "sales_tax_payable", "discounts", "bank_deposit")
# Needed only to book a payout's fees: a mapping saved before this field existed still syncs the rest.
FEES_KEY = "processing_fees"
MARKER = "fieldhub"
PAYOUT_NOTE = re.compile(r"\b(?P<source>[a-z_]+) payout (?P<payout>\S+)$")


def amount(value: Decimal) -> Decimal:
    """Exact cents; the adapter writes Decimals as JSON numbers digit for digit (never through float)."""
    return to_money(value)


def ref(value: str) -> dict[str, str]:
    return {"value": str(value)}


def marker(entity: str, local_id: int) -> str:
    """Written in PrivateNote so the bookkeeper (and a reconciliation) can tell where a transaction came from."""
    return f"{MARKER} {entity} #{local_id}"


def _address(line1: str, line2: str, city: str, region: str, postal: str, country: str) -> dict[str, str] | None:
    parts = {"Line1": line1, "Line2": line2, "City": city, "CountrySubDivisionCode": region, "PostalCode": postal}
    body = {k: v for k, v in parts.items() if v}
    if not body:
        return None
    if country:
        body["Country"] = country
    return body


def customer_body(customer: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"DisplayName": customer.display_name.strip(), "Active": bool(customer.active)}
    if customer.company:
        body["CompanyName"] = customer.company
    if customer.email:
        body["PrimaryEmailAddr"] = {"Address": customer.email}
    if customer.phone:
        body["PrimaryPhone"] = {"FreeFormNumber": customer.phone}
    for key, prefix in (("BillAddr", "billing"), ("ShipAddr", "service")):
        parts = ("line1", "line2", "city", "region", "postal_code", "country")
        address = _address(*(getattr(customer, f"{prefix}_{part}") for part in parts))
        if address:
            body[key] = address
    return body


def item_body(item: Any, accounts: dict[str, str], *, us: bool) -> dict[str, Any]:
    product = str(item.kind) == "product"
    body: dict[str, Any] = {
        "Name": item.name.strip()[:100],
        "Type": "NonInventory" if product else "Service",
        "UnitPrice": amount(item.unit_price),
        "IncomeAccountRef": ref(accounts["product_revenue" if product else "service_revenue"]),
        "Active": bool(item.active),
    }
    if item.sku:
        body["Sku"] = item.sku
    if item.description:
        body["Description"] = item.description
    if us:
        body["Taxable"] = bool(item.taxable)
    return body


@dataclass(frozen=True)
class Tax:
    """How this company wants tax said: US `TAX`/`NON` per line plus one code, or a rate code per line."""

    us: bool
    txn_code: str = ""  # US: the sales tax code the TotalTax override is booked under
    taxable_code: str = ""  # non-US: the code matching the invoice's rate
    exempt_code: str = ""  # non-US: the code for lines without tax


def invoice_body(
    invoice: Any, refs: dict[tuple[str, int], str], accounts: dict[str, str], tax: Tax, default_item: str
) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    for line in sorted(invoice.lines, key=lambda ln: ln.position):
        detail: dict[str, Any] = {
            "ItemRef": ref(refs[("item", line.item_id)] if line.item_id is not None else default_item),
            "Qty": line.quantity.normalize(),
        }
        if to_money(line.quantity * line.unit_price) == to_money(line.amount):
            detail["UnitPrice"] = amount(line.unit_price)
        if tax.us:
            detail["TaxCodeRef"] = ref("TAX" if line.taxable else "NON")
        else:
            detail["TaxCodeRef"] = ref(tax.taxable_code if line.taxable and tax.taxable_code else tax.exempt_code)
        lines.append(
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount(line.amount),
                "Description": line.description,
                "SalesItemLineDetail": detail,
            }
        )
    if invoice.discount_total > 0:
        lines.append(
            {
                "DetailType": "DiscountLineDetail",
                "Amount": amount(invoice.discount_total),
                "DiscountLineDetail": {"PercentBased": False, "DiscountAccountRef": ref(accounts["discounts"])},
            }
        )
    body: dict[str, Any] = {
        "CustomerRef": ref(refs[("customer", invoice.customer_id)]),
        "DocNumber": invoice.number[:21],
        "TxnDate": invoice.issue_date.isoformat(),
        "Line": lines,
        "PrivateNote": marker("invoice", invoice.id),
    }
    if invoice.due_date:
        body["DueDate"] = invoice.due_date.isoformat()
    if invoice.memo:
        body["CustomerMemo"] = {"value": invoice.memo[:1000]}
    if tax.us:
        if any(line.taxable for line in invoice.lines) and tax.txn_code:
            # A code and an amount together override QBO's automated sales tax with fieldhub's figure.
            body["TxnTaxDetail"] = {"TxnTaxCodeRef": ref(tax.txn_code), "TotalTax": amount(invoice.tax_total)}
    else:
        body["GlobalTaxCalculation"] = "TaxExcluded"
    return body


def payment_body(payment: Any, refs: dict[tuple[str, int], str], deposit_to: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerRef": ref(refs[("customer", payment.customer_id)]),
        "TotalAmt": amount(payment.amount),
        "TxnDate": payment.received_on.isoformat(),
        "Line": [
            {
                "Amount": amount(payment.amount),
                "LinkedTxn": [{"TxnId": refs[("invoice", payment.invoice_id)], "TxnType": "Invoice"}],
            }
        ],
        "PrivateNote": marker("payment", payment.id),
    }
    if payment.reference:
        body["PaymentRefNum"] = payment.reference[:21]
    if deposit_to:
        body["DepositToAccountRef"] = ref(deposit_to)
    return body


def refund_body(
    refund: Any,
    invoice: Any,
    refs: dict[tuple[str, int], str],
    accounts: dict[str, str],
    tax: Tax,
    default_item: str,
    refund_from: str | None = None,
) -> dict[str, Any]:
    """A RefundReceipt paid from the bank account, or from `refund_from` (Undeposited Funds for a processor's
    refund, which its payout's Deposit then takes out of Undeposited Funds as a negative line)."""
    detail: dict[str, Any] = {"ItemRef": ref(default_item), "Qty": Decimal(1), "UnitPrice": amount(refund.amount)}
    body: dict[str, Any] = {
        "CustomerRef": ref(refs[("customer", invoice.customer_id)]),
        "TxnDate": refund.refunded_on.isoformat(),
        "DepositToAccountRef": ref(refund_from or accounts["bank_deposit"]),
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": amount(refund.amount),
                "Description": f"Refund on invoice {invoice.number}" + (f": {refund.reason}" if refund.reason else ""),
                "SalesItemLineDetail": detail,
            }
        ],
        "PrivateNote": marker("refund", refund.id),
    }
    if tax.us:
        detail["TaxCodeRef"] = ref("NON")
    else:
        body["GlobalTaxCalculation"] = "NotApplicable"
    if refund.reference:
        body["PaymentRefNum"] = refund.reference[:21]
    return body


def payout_note(deposit: Any) -> str:
    """The Deposit's PrivateNote: where it came from, and the payout it is (a reconciliation parses PAYOUT_NOTE)."""
    return f"{marker('deposit', deposit.id)} · {deposit.source} payout {deposit.source_id}"


def deposit_body(deposit: Any, refs: dict[tuple[str, int], str], accounts: dict[str, str]) -> dict[str, Any]:
    """One payout as one Deposit into the mapped bank account; its lines sum to the payout exactly.

    Payments and refund receipts it carries are linked (QBO moves them out of Undeposited Funds), the
    fees become one negative line to the processing-fees account. A movement with no fieldhub record
    (a charge taken outside fieldhub, an adjustment) becomes a direct line that says what it is: money
    in or out to the service revenue account, adjustments to the fees account.
    """
    lines: list[dict[str, Any]] = []
    fees = ZERO
    for line in sorted(deposit.lines, key=lambda ln: ln.position):
        kind = DepositLineKind(line.kind)
        if kind == DepositLineKind.FEE:
            fees += line.amount
        elif kind == DepositLineKind.PAYMENT and line.payment_id is not None:
            link = {"TxnId": refs[("payment", line.payment_id)], "TxnType": "Payment", "TxnLineId": "0"}
            lines.append({"Amount": amount(line.amount), "LinkedTxn": [link]})
        elif kind == DepositLineKind.REFUND and line.refund_id is not None:
            link = {"TxnId": refs[("refund", line.refund_id)], "TxnType": "RefundReceipt", "TxnLineId": "0"}
            lines.append({"Amount": amount(line.amount), "LinkedTxn": [link]})
        elif line.amount:
            account = accounts[FEES_KEY] if kind == DepositLineKind.ADJUSTMENT else accounts["service_revenue"]
            said = f"{deposit.source} {kind} {line.source_id} (no fieldhub record): {line.description}"
            lines.append(_direct(line.amount, account, said))
    if fees:
        lines.append(_direct(fees, accounts[FEES_KEY], f"{deposit.source.capitalize()} processing fees"))
    return {
        "DepositToAccountRef": ref(accounts["bank_deposit"]),
        "TxnDate": deposit.arrival_date.isoformat(),
        "Line": lines,
        "PrivateNote": payout_note(deposit),
    }


def _direct(value: Decimal, account: str, description: str) -> dict[str, Any]:
    return {
        "Amount": amount(value),
        "DetailType": "DepositLineDetail",
        "Description": description[:4000],
        "DepositLineDetail": {"AccountRef": ref(account)},
    }
