"""Checkout Sessions: the API, the hosted payment page, and the card and ACH state machines behind it."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.providers.stripe.emulator import objects as build
from fieldhub.providers.stripe.emulator import pages
from fieldhub.providers.stripe.emulator.api import Ctx, StripeError, created_filter, invalid, paginate, required

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

METHODS = ("card", "us_bank_account")

# Stripe's documented test cards: number -> (decline code or None for success, brand, message).
TEST_CARDS: dict[str, tuple[str | None, str, str]] = {
    "4242424242424242": (None, "visa", ""),
    "4000056655665556": (None, "visa", ""),
    "5555555555554444": (None, "mastercard", ""),
    "4000000000000002": ("generic_decline", "visa", "Your card was declined."),
    "4000000000009995": ("insufficient_funds", "visa", "Your card has insufficient funds."),
    "4000000000009987": ("lost_card", "visa", "Your card was declined."),
    "4000000000000069": ("expired_card", "visa", "Your card has expired."),
}


class PageError(Exception):
    """A problem shown on the hosted page (a decline, a bad card number); the session stays open."""


def install(emu: StripeEmulator) -> None:
    # --- API --------------------------------------------------------------------------------------------
    def create(ctx: Ctx) -> dict[str, Any]:
        mode = ctx.str_param("mode", need=True)
        if mode != "payment":
            raise invalid("mode", f"The emulator supports mode=payment only (got {mode}).")
        success_url = ctx.str_param("success_url", need=True) or ""
        cancel_url = ctx.str_param("cancel_url")
        for name, url in (("success_url", success_url), ("cancel_url", cancel_url)):
            if url and not re.match(r"^https?://", url):
                raise invalid(name, f"Not a valid URL: {name}", code="url_invalid")
        methods = ctx.params.get("payment_method_types") or ["card"]
        if not isinstance(methods, list):
            raise invalid("payment_method_types", "Invalid array: payment_method_types")
        for method in methods:
            if method not in METHODS:
                raise invalid("payment_method_types", f"The payment method type provided: {method} is invalid.")
        items, currency = _line_items(emu, ctx)
        now = emu.now()
        expires_at = ctx.int_param("expires_at")
        if expires_at is None:
            expires_at = now + emu.timings.session_lifetime
        elif not now + 1800 <= expires_at <= now + 86400:
            raise invalid("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.")
        intent_data = ctx.dict_param("payment_intent_data")
        intent_metadata = intent_data.get("metadata") or {}
        if not isinstance(intent_metadata, dict):
            raise invalid("payment_intent_data[metadata]", "Invalid object")
        total = sum(item["amount_total"] for item in items)
        session_id = emu.new_id("cs_test", 58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "status": None},
            "billing_address_collection": None,
            "cancel_url": cancel_url,
            "client_reference_id": ctx.str_param("client_reference_id"),
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "currency_conversion": None,
            "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": ctx.str_param("customer_email"),
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": None,
            "livemode": False,
            "locale": None,
            "metadata": ctx.metadata(),
            "mode": "payment",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_options": {},
            "payment_method_types": list(methods),
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_details": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "url": f"{ctx.base_url}/c/pay/{session_id}",
        }
        emu.put(
            ctx.account,
            session,
            line_items=items,
            intent_metadata={str(k): str(v) for k, v in intent_metadata.items()},
            intent_description=intent_data.get("description"),
        )
        emu.schedule(expires_at - emu.clock.now(), "checkout.expire", ctx.account, session, None)
        return session

    def retrieve(ctx: Ctx, session: str) -> dict[str, Any]:
        return emu.get(ctx.account, session, "checkout.session", "session")

    def listing(ctx: Ctx) -> dict[str, Any]:
        intent = ctx.str_param("payment_intent")
        status = ctx.str_param("status")
        when = created_filter(ctx)
        items = emu.find(
            ctx.account,
            "checkout.session",
            lambda s: (
                (not intent or s["payment_intent"] == intent) and (not status or s["status"] == status) and when(s)
            ),
        )
        return paginate(ctx, items, "/v1/checkout/sessions")

    def line_items(ctx: Ctx, session: str) -> dict[str, Any]:
        emu.get(ctx.account, session, "checkout.session", "session")
        return paginate(ctx, emu.meta(session)["line_items"], f"/v1/checkout/sessions/{session}/line_items")

    def expire_api(ctx: Ctx, session: str) -> dict[str, Any]:
        obj = emu.get(ctx.account, session, "checkout.session", "session")
        if obj["status"] != "open":
            raise StripeError(
                400,
                f'Only Checkout Sessions with a status in ["open"] can be expired. This session has a status of '
                f'"{obj["status"]}".',
                code="checkout_session_expired" if obj["status"] == "expired" else None,
            )
        return expire(ctx.account, obj, ctx.request_info)

    def expire(account: str, session: dict[str, Any], request: dict[str, Any] | None) -> dict[str, Any]:
        if session["status"] != "open":
            return session
        session["status"] = "expired"
        session["url"] = None
        emu.emit(account, "checkout.session.expired", session, previous={"status": "open"}, request=request)
        return session

    emu.actions["checkout.expire"] = expire
    emu.actions["checkout.settle_bank"] = lambda account, session, outcome: settle_bank(emu, account, session, outcome)
    emu.api.add("POST", "/v1/checkout/sessions", create)
    emu.api.add("GET", "/v1/checkout/sessions", listing)
    emu.api.add("GET", "/v1/checkout/sessions/{session}", retrieve)
    emu.api.add("GET", "/v1/checkout/sessions/{session}/line_items", line_items)
    emu.api.add("POST", "/v1/checkout/sessions/{session}/expire", expire_api)

    # --- hosted page ------------------------------------------------------------------------------------
    def lookup(session_id: str) -> tuple[str, dict[str, Any]] | None:
        stored = emu.objects.get(session_id)
        if stored is None or stored.obj.get("object") != "checkout.session":
            return None
        return stored.account, stored.obj

    def render(
        request: Request, account: str, session: dict[str, Any], error: str = "", status: int = 200
    ) -> HTMLResponse:
        if session["status"] != "open":
            message = "Payment complete. Thank you!" if session["status"] == "complete" else "This link has expired."
            return HTMLResponse(pages.shell("Checkout", pages.notice(message)), status_code=200)
        merchant = emu.account_obj(account)["business_profile"]["name"] or "Stripe merchant"
        action = f"{emu.base_url(request)}/c/pay/{session['id']}"
        page = pages.checkout(session, emu.meta(session["id"])["line_items"], merchant, action, error)
        return HTMLResponse(page, status_code=status)

    async def page(session_id: str, request: Request) -> Response:
        found = lookup(session_id)
        if found is None:
            return HTMLResponse(pages.shell("Checkout", pages.notice("Something went wrong.")), status_code=404)
        return render(request, *found)

    async def pay(session_id: str, method: str, request: Request) -> Response:
        found = lookup(session_id)
        if found is None:
            return HTMLResponse(pages.shell("Checkout", pages.notice("Something went wrong.")), status_code=404)
        account, session = found
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            if method == "card":
                pay_card(emu, account, session, form)
            elif method == "bank":
                pay_bank(emu, account, session, form)
            else:
                return HTMLResponse(pages.shell("Checkout", pages.notice("Unknown payment method.")), 404)
        except PageError as exc:
            emu.webhooks.kick()
            return render(request, account, session, str(exc), status=402)
        emu.webhooks.kick()
        return RedirectResponse(success_redirect(session), status_code=303)

    emu.app.add_api_route("/c/pay/{session_id}", page, methods=["GET"])
    emu.app.add_api_route("/c/pay/{session_id}/{method}", pay, methods=["POST"])

    # --- control ----------------------------------------------------------------------------------------
    async def control_pay(session_id: str, request: Request) -> Response:
        """Pay without the page: JSON {"method": "card"|"bank", "number": …} (demos and tests)."""
        found = lookup(session_id)
        if found is None:
            return JSONResponse({"error": f"No such checkout.session: {session_id}"}, status_code=404)
        body = await request.json() if await request.body() else {}
        account, session = found
        try:
            if body.get("method", "card") == "bank":
                pay_bank(emu, account, session, body)
            else:
                pay_card(emu, account, session, {"number": "4242424242424242", **body})
        except PageError as exc:
            return JSONResponse({"error": str(exc), "session": session}, status_code=402)
        return JSONResponse({"redirect": success_redirect(session), "session": session})

    async def control_settle(session_id: str, outcome: str = "succeeded") -> Response:
        """Settle a processing ACH payment now, as the bank would after a few days."""
        found = lookup(session_id)
        if found is None:
            return JSONResponse({"error": f"No such checkout.session: {session_id}"}, status_code=404)
        if outcome not in ("succeeded", "failed"):
            return JSONResponse({"error": "outcome is succeeded or failed"}, status_code=400)
        account, session = found
        if not settle_bank(emu, account, session, outcome):
            return JSONResponse({"error": "No ACH payment is processing on this session"}, status_code=409)
        return JSONResponse({"session": session})

    emu.app.add_api_route(f"{CONTROL_PREFIX}/checkout/sessions/{{session_id}}/pay", control_pay, methods=["POST"])
    emu.app.add_api_route(f"{CONTROL_PREFIX}/checkout/sessions/{{session_id}}/settle", control_settle, methods=["POST"])


def success_redirect(session: dict[str, Any]) -> str:
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])


def _line_items(emu: StripeEmulator, ctx: Ctx) -> tuple[list[dict[str, Any]], str]:
    raw = ctx.params.get("line_items")
    if not raw:
        raise required("line_items")
    if not isinstance(raw, list):
        raise invalid("line_items", "Invalid array: line_items")
    items: list[dict[str, Any]] = []
    currency = ""
    for i, line in enumerate(raw):
        where = f"line_items[{i}]"
        if not isinstance(line, dict):
            raise invalid(where, f"Invalid object: {where}")
        price = line.get("price_data")
        if not isinstance(price, dict):
            if line.get("price"):
                raise invalid(f"{where}[price]", f"No such price: '{line['price']}'", code="resource_missing")
            raise required(f"{where}[price_data]")
        line_currency = str(price.get("currency") or "").lower()
        if not line_currency:
            raise required(f"{where}[price_data][currency]")
        if currency and line_currency != currency:
            raise invalid(f"{where}[price_data][currency]", "All line items must use the same currency.")
        currency = line_currency
        quantity = ctx.int_param(f"{where}[quantity]", line.get("quantity"), need=True, minimum=1) or 1
        if price.get("unit_amount") is not None:
            unit = ctx.int_param(f"{where}[price_data][unit_amount]", price["unit_amount"], minimum=0) or 0
            total = unit * quantity
        elif price.get("unit_amount_decimal") is not None:
            try:
                unit_decimal = Decimal(str(price["unit_amount_decimal"]))
            except InvalidOperation:
                raise invalid(f"{where}[price_data][unit_amount_decimal]", "Invalid decimal") from None
            # Stripe bills fractional cents rounded half up on the line total.
            total = int((unit_decimal * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        else:
            raise required(f"{where}[price_data][unit_amount]")
        product = price.get("product_data") or {}
        name = product.get("name") if isinstance(product, dict) else None
        if not name:
            raise required(f"{where}[price_data][product_data][name]")
        items.append(
            {
                "id": emu.new_id("li"),
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": total,
                "amount_tax": 0,
                "amount_total": total,
                "currency": currency,
                "description": name,
                "price": None,
                "quantity": quantity,
            }
        )
    if len(items) > 100:
        raise invalid("line_items", "A Checkout Session can have at most 100 line items.")
    return items, currency


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _billing(form: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    address = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {
        "address": address,
        "email": form.get("email") or session.get("customer_email"),
        "name": form.get("name") or None,
        "phone": None,
    }


def _ensure_intent(emu: StripeEmulator, account: str, session: dict[str, Any]) -> dict[str, Any]:
    if session["payment_intent"]:
        return emu.objects[session["payment_intent"]].obj
    meta = emu.meta(session["id"])
    intent = build.payment_intent(
        emu.new_id("pi"),
        created=emu.now(),
        amount=session["amount_total"],
        currency=session["currency"],
        methods=list(session["payment_method_types"]),
        metadata=dict(meta["intent_metadata"]),
        description=meta["intent_description"],
    )
    emu.put(account, intent, session=session["id"])
    emu.emit(account, "payment_intent.created", intent)
    session["payment_intent"] = intent["id"]
    return intent


def pay_card(emu: StripeEmulator, account: str, session: dict[str, Any], form: dict[str, Any]) -> None:
    """A card payment from the hosted page: succeeds or declines per Stripe's test card numbers."""
    if session["status"] != "open":
        raise PageError("This Checkout Session is no longer open.")
    digits = re.sub(r"\D", "", str(form.get("number", "")))
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        raise PageError("Your card number is invalid.")
    exp = re.findall(r"\d+", str(form.get("exp", "12/34")))
    exp_month, exp_year = (int(exp[0]), int(exp[1])) if len(exp) >= 2 else (12, 34)
    exp_year += 2000 if exp_year < 100 else 0
    decline, brand, message = TEST_CARDS.get(
        digits,
        (
            "card_declined",
            "visa",
            "Your card was declined. Your request was in test mode, but used a non test (live) card.",
        ),
    )
    intent = _ensure_intent(emu, account, session)
    now = emu.now()
    method_id = emu.new_id("pm")
    charge = build.charge(
        emu.new_id("ch"),
        created=now,
        amount=intent["amount"],
        currency=intent["currency"],
        payment_intent=intent["id"],
        payment_method=method_id,
        details=build.card_details(digits[-4:], exp_month, exp_year, brand),
        billing=_billing(form, session),
        metadata=dict(intent["metadata"]),
        status="failed" if decline else "succeeded",
        description=intent["description"],
        receipt_email=form.get("email") or session.get("customer_email"),
    )
    previous_intent = {"status": intent["status"], "latest_charge": intent["latest_charge"]}
    intent["latest_charge"] = charge["id"]
    intent["payment_method"] = method_id
    if decline:
        code = "expired_card" if decline == "expired_card" else "card_declined"
        charge["failure_code"] = code
        charge["failure_message"] = message
        charge["outcome"] = build.outcome("declined", reason=decline)
        emu.put(account, charge)
        intent["last_payment_error"] = {
            "charge": charge["id"],
            "code": code,
            "decline_code": decline,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": message,
            "type": "card_error",
        }
        intent["status"] = "requires_payment_method"
        intent["payment_method"] = None
        emu.emit(account, "charge.failed", charge)
        emu.emit(account, "payment_intent.payment_failed", intent, previous=previous_intent)
        raise PageError(message)
    fee = build.card_fee(charge["amount"])
    txn = build.balance_transaction(
        emu.new_id("txn"),
        created=now,
        amount=charge["amount"],
        fee=fee,
        type="charge",
        category="charge",
        source=charge["id"],
        available_on=now + emu.timings.card_available,
    )
    emu.put(account, txn)
    charge["balance_transaction"] = txn["id"]
    charge["outcome"] = build.outcome("authorized")
    emu.put(account, charge)
    intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
    _complete(session, form, payment_status="paid")
    emu.emit(account, "charge.succeeded", charge)
    emu.emit(account, "payment_intent.succeeded", intent, previous=previous_intent)
    emu.emit(account, "checkout.session.completed", session, previous={"status": "open"})


def pay_bank(emu: StripeEmulator, account: str, session: dict[str, Any], form: dict[str, Any]) -> None:
    """ACH Direct Debit with the test bank account: processing now, settled later (or by the control route)."""
    if session["status"] != "open":
        raise PageError("This Checkout Session is no longer open.")
    if "us_bank_account" not in session["payment_method_types"]:
        raise PageError("Bank payments are not accepted for this payment.")
    intent = _ensure_intent(emu, account, session)
    method_id = emu.new_id("pm")
    charge = build.charge(
        emu.new_id("py"),
        created=emu.now(),
        amount=intent["amount"],
        currency=intent["currency"],
        payment_intent=intent["id"],
        payment_method=method_id,
        details=build.bank_details(),
        billing=_billing(form, session),
        metadata=dict(intent["metadata"]),
        status="pending",
        description=intent["description"],
    )
    emu.put(account, charge)
    previous_intent = {"status": intent["status"], "latest_charge": intent["latest_charge"]}
    intent.update(status="processing", latest_charge=charge["id"], payment_method=method_id, last_payment_error=None)
    _complete(session, form, payment_status="unpaid")
    emu.meta(session["id"])["ach"] = "processing"
    emu.emit(account, "charge.pending", charge)
    emu.emit(account, "payment_intent.processing", intent, previous=previous_intent)
    emu.emit(account, "checkout.session.completed", session, previous={"status": "open"})
    emu.schedule(emu.timings.ach_settle, "checkout.settle_bank", account, session, "succeeded")


def settle_bank(emu: StripeEmulator, account: str, session: dict[str, Any], outcome: str) -> bool:
    meta = emu.meta(session["id"])
    if meta.get("ach") != "processing":
        return False
    meta["ach"] = outcome
    intent = emu.objects[session["payment_intent"]].obj
    charge = emu.objects[intent["latest_charge"]].obj
    previous_charge = {"status": charge["status"], "paid": charge["paid"]}
    previous_intent = {"status": intent["status"]}
    now = emu.now()
    if outcome == "succeeded":
        txn = build.balance_transaction(
            emu.new_id("txn"),
            created=now,
            amount=charge["amount"],
            fee=build.ach_fee(charge["amount"]),
            type="charge",
            category="charge",
            source=charge["id"],
            available_on=now + emu.timings.ach_available,
        )
        emu.put(account, txn)
        charge.update(status="succeeded", paid=True, amount_captured=charge["amount"], balance_transaction=txn["id"])
        charge["outcome"] = build.outcome("authorized")
        intent.update(status="succeeded", amount_received=intent["amount"])
        session["payment_status"] = "paid"
        emu.emit(account, "charge.succeeded", charge, previous=previous_charge)
        emu.emit(account, "payment_intent.succeeded", intent, previous=previous_intent)
        emu.emit(account, "checkout.session.async_payment_succeeded", session, previous={"payment_status": "unpaid"})
    else:
        message = "The customer's bank account has insufficient funds to cover this payment."
        charge.update(status="failed", failure_code="insufficient_funds", failure_message=message, captured=False)
        charge["outcome"] = build.outcome("declined", reason="insufficient_funds")
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error={
                "charge": charge["id"],
                "code": "insufficient_funds",
                "message": message,
                "payment_method_type": "us_bank_account",
                "type": "card_error",
            },
        )
        emu.emit(account, "charge.failed", charge, previous=previous_charge)
        emu.emit(account, "payment_intent.payment_failed", intent, previous=previous_intent)
        emu.emit(account, "checkout.session.async_payment_failed", session)
    return True


def _complete(session: dict[str, Any], form: dict[str, Any], *, payment_status: str) -> None:
    session["status"] = "complete"
    session["payment_status"] = payment_status
    session["url"] = None
    session["customer_details"] = {
        "address": None,
        "email": form.get("email") or session.get("customer_email"),
        "name": form.get("name") or None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


__all__ = ["TEST_CARDS", "install", "pay_bank", "pay_card", "settle_bank", "success_redirect"]
