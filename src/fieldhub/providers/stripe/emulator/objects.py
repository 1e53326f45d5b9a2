"""Stripe's objects as the 2023-08-16 API returns them, and the fees Stripe charges (exact integer cents)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

API_VERSION = "2023-08-16"

CARD_RATE = Decimal("0.029")
CARD_FIXED = 30
ACH_RATE = Decimal("0.008")
ACH_CAP = 500
DISPUTE_FEE = 1500


def card_fee(amount: int) -> int:
    """2.9% + 30¢ on a card charge, the percentage rounded half up to the cent."""
    return int((Decimal(amount) * CARD_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + CARD_FIXED


def ach_fee(amount: int) -> int:
    """0.8% on an ACH Direct Debit, rounded half up to the cent and capped at $5.00."""
    return min(int((Decimal(amount) * ACH_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP)), ACH_CAP)


def bank_account(id: str, account: str, *, last4: str, bank_name: str, routing: str) -> dict[str, Any]:
    return {
        "id": id,
        "object": "bank_account",
        "account": account,
        "account_holder_name": None,
        "account_holder_type": None,
        "account_type": None,
        "available_payout_methods": ["standard"],
        "bank_name": bank_name,
        "country": "US",
        "currency": "usd",
        "default_for_currency": True,
        "fingerprint": f"fp{id[-14:]}",
        "last4": last4,
        "metadata": {},
        "routing_number": routing,
        "status": "new",
    }


def account(
    id: str,
    *,
    created: int,
    type: str = "standard",
    email: str | None = None,
    country: str = "US",
    name: str | None = None,
    enabled: bool = False,
    capabilities: list[str] | None = None,
    bank: dict[str, Any] | None = None,
) -> dict[str, Any]:
    caps = capabilities if capabilities is not None else ["card_payments", "transfers"]
    due = [] if enabled else ["business_profile.url", "external_account", "tos_acceptance.date"]
    return {
        "id": id,
        "object": "account",
        "business_profile": {
            "mcc": "1711",
            "name": name,
            "product_description": None,
            "support_address": None,
            "support_email": email,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": "company",
        "capabilities": {c: "active" if enabled else "inactive" for c in caps},
        "charges_enabled": enabled,
        "controller": {"is_controller": True, "type": "application"} if type != "standard" else {"type": "account"},
        "country": country,
        "created": created,
        "default_currency": "usd",
        "details_submitted": enabled,
        "email": email,
        "external_accounts": {
            "object": "list",
            "data": [bank] if bank else [],
            "has_more": False,
            "url": f"/v1/accounts/{id}/external_accounts",
        },
        "future_requirements": _requirements([]),
        "metadata": {},
        "payouts_enabled": enabled,
        "requirements": _requirements(due),
        "settings": {
            "bacs_debit_payments": {},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": name, "timezone": "America/Denver"},
            "payments": {
                "statement_descriptor": (name or "")[:22].upper() or None,
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": created if enabled else None, "ip": None, "user_agent": None},
        "type": type,
    }


def _requirements(due: list[str]) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": "requirements.past_due" if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def balance_transaction(
    id: str,
    *,
    created: int,
    amount: int,
    fee: int,
    type: str,
    category: str,
    source: str | None,
    available_on: int,
    description: str | None = None,
    fee_description: str = "Stripe processing fees",
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": available_on,
        "created": created,
        "currency": "usd",
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": "usd",
                    "description": fee_description,
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available" if available_on <= created else "pending",
        "type": type,
    }


def payment_intent(
    id: str, *, created: int, amount: int, currency: str, methods: list[str], metadata: dict[str, str], **extra: Any
) -> dict[str, Any]:
    obj = {
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{id}_secret_{id[-12:]}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "description": None,
        "invoice": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_options": {},
        "payment_method_types": methods,
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    obj.update(extra)
    return obj


def charge(
    id: str,
    *,
    created: int,
    amount: int,
    currency: str,
    payment_intent: str,
    payment_method: str,
    details: dict[str, Any],
    billing: dict[str, Any],
    metadata: dict[str, str],
    status: str,
    description: str | None = None,
    receipt_email: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": billing,
        "calculated_statement_descriptor": "FIELDHUB DEMO",
        "captured": status != "failed",
        "created": created,
        "currency": currency,
        "customer": None,
        "description": description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "invoice": None,
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "outcome": None,
        "paid": status == "succeeded",
        "payment_intent": payment_intent,
        "payment_method": payment_method,
        "payment_method_details": details,
        "receipt_email": receipt_email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def outcome(kind: str, *, reason: str | None = None) -> dict[str, Any]:
    if kind == "authorized":
        return {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "network_status": "declined_by_network",
        "reason": reason,
        "risk_level": "normal",
        "risk_score": 40,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def card_details(last4: str, exp_month: int, exp_year: int, brand: str = "visa") -> dict[str, Any]:
    return {
        "card": {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": f"fp{last4}{exp_month:02d}{exp_year}",
            "funding": "credit",
            "installments": None,
            "last4": last4,
            "mandate": None,
            "network": brand,
            "network_token": {"used": False},
            "three_d_secure": None,
            "wallet": None,
        },
        "type": "card",
    }


def bank_details() -> dict[str, Any]:
    return {
        "type": "us_bank_account",
        "us_bank_account": {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "fingerprint": "fpTestBank6789",
            "last4": "6789",
            "routing_number": "110000000",
        },
    }


def refund(
    id: str,
    *,
    created: int,
    amount: int,
    currency: str,
    charge: str,
    payment_intent: str | None,
    reason: str | None,
    metadata: dict[str, str],
    balance_transaction: str | None,
    status: str = "succeeded",
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": charge,
        "created": created,
        "currency": currency,
        "metadata": metadata,
        "payment_intent": payment_intent,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def payout(id: str, *, created: int, amount: int, arrival_date: int, destination: str | None) -> dict[str, Any]:
    return {
        "id": id,
        "object": "payout",
        "amount": amount,
        "arrival_date": arrival_date,
        "automatic": True,
        "balance_transaction": None,
        "created": created,
        "currency": "usd",
        "description": "STRIPE PAYOUT",
        "destination": destination,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "reconciliation_status": "in_progress",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": "pending",
        "type": "bank_account",
    }


_EVIDENCE = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute(
    id: str, *, created: int, charge: dict[str, Any], reason: str, balance_transactions: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": balance_transactions,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "evidence": dict.fromkeys(_EVIDENCE),
        "evidence_details": {
            "due_by": created + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "status": "needs_response",
    }


def event(
    id: str,
    *,
    created: int,
    type: str,
    obj: dict[str, Any],
    account: str | None,
    previous: dict[str, Any] | None,
    request: dict[str, Any] | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous:
        data["previous_attributes"] = previous
    body: dict[str, Any] = {"id": id, "object": "event"}
    if account:
        body["account"] = account
    body.update(
        {
            "api_version": API_VERSION,
            "created": created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": request or {"id": None, "idempotency_key": None},
            "type": type,
        }
    )
    return body
