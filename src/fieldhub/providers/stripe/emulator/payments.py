"""PaymentIntents, Charges, Refunds, Balance, Balance Transactions, Payouts, Disputes and Events."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.providers.stripe.emulator import objects as build
from fieldhub.providers.stripe.emulator.api import Ctx, StripeError, created_filter, invalid, missing, paginate

if TYPE_CHECKING:
    from fieldhub.providers.stripe.emulator.app import StripeEmulator

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def refresh_balance(emu: StripeEmulator, account: str) -> list[dict[str, Any]]:
    """Pending funds become available once their available_on passes (on the emulated clock)."""
    now = emu.now()
    txns = emu.find(account, "balance_transaction")
    for txn in txns:
        if txn["status"] == "pending" and txn["available_on"] <= now:
            txn["status"] = "available"
    return txns


def balance_of(emu: StripeEmulator, account: str) -> dict[str, Any]:
    txns = refresh_balance(emu, account)
    available = sum(t["net"] for t in txns if t["status"] == "available")
    pending = sum(t["net"] for t in txns if t["status"] == "pending")
    return {
        "object": "balance",
        "available": [{"amount": available, "currency": "usd", "source_types": {"card": available}}],
        "livemode": False,
        "pending": [{"amount": pending, "currency": "usd", "source_types": {"card": pending}}],
    }


def install(emu: StripeEmulator) -> None:
    payout_failures = emu.payout_failures

    # --- PaymentIntents and Charges -------------------------------------------------------------------
    def get_intent(ctx: Ctx, intent: str) -> dict[str, Any]:
        return emu.get(ctx.account, intent, "payment_intent", "intent")

    def list_intents(ctx: Ctx) -> dict[str, Any]:
        when = created_filter(ctx)
        return paginate(ctx, emu.find(ctx.account, "payment_intent", when), "/v1/payment_intents")

    def get_charge(ctx: Ctx, charge: str) -> dict[str, Any]:
        return emu.get(ctx.account, charge, "charge", "charge")

    def list_charges(ctx: Ctx) -> dict[str, Any]:
        when = created_filter(ctx)
        intent = ctx.str_param("payment_intent")
        items = emu.find(ctx.account, "charge", lambda c: when(c) and (not intent or c["payment_intent"] == intent))
        return paginate(ctx, items, "/v1/charges")

    # --- Refunds --------------------------------------------------------------------------------------
    def create_refund(ctx: Ctx) -> dict[str, Any]:
        charge_id = ctx.str_param("charge")
        intent_id = ctx.str_param("payment_intent")
        if not charge_id and not intent_id:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        if intent_id:
            intent = emu.get(ctx.account, intent_id, "payment_intent", "payment_intent")
            if not intent["latest_charge"] or intent["status"] != "succeeded":
                raise StripeError(
                    400,
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            if charge_id and charge_id != intent["latest_charge"]:
                raise invalid("charge", "The charge does not belong to this PaymentIntent.")
            charge_id = intent["latest_charge"]
        charge = emu.get(ctx.account, charge_id or "", "charge", "charge")
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has not succeeded and cannot be refunded.",
                code="charge_not_refundable",
                param="charge",
            )
        if charge["disputed"]:
            raise StripeError(
                400,
                f"Charge {charge['id']} has been charged back; it cannot be refunded.",
                code="charge_disputed",
                param="charge",
            )
        if charge["refunded"]:
            raise StripeError(
                400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded", param="charge"
            )
        refundable = charge["amount_captured"] - charge["amount_refunded"]
        amount = ctx.int_param("amount", minimum=1)
        if amount is None:
            amount = refundable
        if amount > refundable:
            raise StripeError(
                400,
                f"Refund amount ({_dollars(amount)}) is greater than unrefunded amount on charge "
                f"({_dollars(refundable)})",
                code="amount_too_large",
                param="amount",
            )
        reason = ctx.str_param("reason")
        if reason and reason not in REFUND_REASONS:
            raise invalid("reason", f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}")
        now = emu.now()
        refund_id = emu.new_id("re")
        txn = build.balance_transaction(
            emu.new_id("txn"),
            created=now,
            amount=-amount,
            fee=0,
            type="refund",
            category="refund",
            source=refund_id,
            available_on=now,
            description="REFUND FOR CHARGE" + (f" ({charge['description']})" if charge["description"] else ""),
        )
        emu.put(ctx.account, txn)
        refund = build.refund(
            refund_id,
            created=now,
            amount=amount,
            currency=charge["currency"],
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            reason=reason,
            metadata=ctx.metadata(),
            balance_transaction=txn["id"],
        )
        emu.put(ctx.account, refund)
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        emu.emit(ctx.account, "charge.refunded", charge, previous=previous, request=ctx.request_info)
        emu.emit(ctx.account, "refund.created", refund, request=ctx.request_info)
        return refund

    def get_refund(ctx: Ctx, refund: str) -> dict[str, Any]:
        return emu.get(ctx.account, refund, "refund", "refund")

    def list_refunds(ctx: Ctx) -> dict[str, Any]:
        charge = ctx.str_param("charge")
        intent = ctx.str_param("payment_intent")
        when = created_filter(ctx)
        items = emu.find(
            ctx.account,
            "refund",
            lambda r: (
                when(r) and (not charge or r["charge"] == charge) and (not intent or r["payment_intent"] == intent)
            ),
        )
        return paginate(ctx, items, "/v1/refunds")

    # --- Balance ----------------------------------------------------------------------------------------
    def get_balance(ctx: Ctx) -> dict[str, Any]:
        return balance_of(emu, ctx.account)

    def list_txns(ctx: Ctx) -> dict[str, Any]:
        refresh_balance(emu, ctx.account)
        payout = ctx.str_param("payout")
        if payout:
            emu.get(ctx.account, payout, "payout", "payout")
        kind = ctx.str_param("type")
        source = ctx.str_param("source")
        when = created_filter(ctx)
        items = emu.find(
            ctx.account,
            "balance_transaction",
            lambda t: (
                when(t)
                and (not payout or emu.meta(t["id"]).get("payout") == payout)
                and (not kind or t["type"] == kind)
                and (not source or t["source"] == source)
            ),
        )
        return paginate(ctx, items, "/v1/balance_transactions")

    def get_txn(ctx: Ctx, txn: str) -> dict[str, Any]:
        refresh_balance(emu, ctx.account)
        return emu.get(ctx.account, txn, "balance_transaction", "id")

    # --- Payouts ----------------------------------------------------------------------------------------
    def get_payout(ctx: Ctx, payout: str) -> dict[str, Any]:
        return emu.get(ctx.account, payout, "payout", "payout")

    def list_payouts(ctx: Ctx) -> dict[str, Any]:
        status = ctx.str_param("status")
        when = created_filter(ctx)
        arrival = created_filter(ctx, "arrival_date")
        items = emu.find(
            ctx.account, "payout", lambda p: when(p) and arrival(p) and (not status or p["status"] == status)
        )
        return paginate(ctx, items, "/v1/payouts")

    def start_payout(account: str, complete: bool) -> dict[str, Any] | None:
        txns = refresh_balance(emu, account)
        unpaid = [t for t in txns if t["status"] == "available" and not emu.meta(t["id"]).get("payout")]
        amount = sum(t["net"] for t in unpaid)
        if amount <= 0:
            return None
        now = emu.now()
        # Stripe dates arrivals at midnight UTC of the arrival day.
        arrival = (now + emu.timings.payout_arrival) // 86400 * 86400
        banks = emu.account_obj(account)["external_accounts"]["data"]
        payout = build.payout(
            emu.new_id("po"),
            created=now,
            amount=amount,
            arrival_date=arrival,
            destination=banks[0]["id"] if banks else None,
        )
        txn = build.balance_transaction(
            emu.new_id("txn"),
            created=now,
            amount=-amount,
            fee=0,
            type="payout",
            category="payout",
            source=payout["id"],
            available_on=now,
            description="STRIPE PAYOUT",
        )
        payout["balance_transaction"] = txn["id"]
        emu.put(account, txn, payout=payout["id"])
        for t in unpaid:
            emu.meta(t["id"])["payout"] = payout["id"]
        emu.put(account, payout, failure=payout_failures.pop(0) if payout_failures else None)
        emu.emit(account, "payout.created", payout)
        if complete:
            advance_payout(account, payout, "in_transit")
            advance_payout(account, payout, "paid")
        else:
            emu.schedule(emu.timings.payout_in_transit, "payout.advance", account, payout, "in_transit")
            emu.schedule(arrival - emu.clock.now(), "payout.advance", account, payout, "paid")
        return payout

    def advance_payout(account: str, payout: dict[str, Any], step: str) -> None:
        if payout["status"] in ("paid", "failed", "canceled"):
            return
        previous = {"status": payout["status"]}
        if step == "in_transit":
            if payout["status"] == "pending":
                payout["status"] = "in_transit"
                emu.emit(account, "payout.updated", payout, previous=previous)
            return
        failure = emu.meta(payout["id"]).get("failure")
        if failure:
            now = emu.now()
            reversal = build.balance_transaction(
                emu.new_id("txn"),
                created=now,
                amount=payout["amount"],
                fee=0,
                type="payout_failure",
                category="payout_reversal",
                source=payout["id"],
                available_on=now,
                description="STRIPE PAYOUT FAILURE",
            )
            emu.put(account, reversal)
            payout.update(
                status="failed",
                failure_code=failure,
                failure_message=_PAYOUT_FAILURES.get(failure, "The payout failed."),
                failure_balance_transaction=reversal["id"],
                reconciliation_status="not_applicable",
            )
            emu.emit(account, "payout.failed", payout, previous=previous)
            return
        payout["status"] = "paid"
        emu.emit(account, "payout.paid", payout, previous=previous)
        payout["reconciliation_status"] = "completed"
        emu.emit(account, "payout.reconciliation_completed", payout, previous={"reconciliation_status": "in_progress"})

    emu.actions["payout.advance"] = advance_payout

    async def control_run(account: str = "", complete: bool = True) -> dict[str, Any]:
        """Pay out each account's available balance (or one account's)."""
        accounts = [account] if account else [emu.platform_id, *sorted(emu.connected)]
        made = [p for a in accounts if (p := start_payout(a, complete))]
        emu.webhooks.kick()
        return {"payouts": made}

    async def control_fail_next(failure_code: str = "account_closed") -> dict[str, Any]:
        payout_failures.append(failure_code)
        return {"queued_failures": list(payout_failures)}

    # --- Disputes ---------------------------------------------------------------------------------------
    async def control_dispute(charge_id: str, reason: str = "fraudulent") -> Response:
        stored = emu.objects.get(charge_id)
        if stored is None or stored.obj.get("object") != "charge":
            return JSONResponse(missing("charge", charge_id).body(), status_code=404)
        charge = stored.obj
        if charge["status"] != "succeeded" or charge["disputed"]:
            return JSONResponse({"error": "Only an undisputed, succeeded charge can be disputed"}, status_code=409)
        account = stored.account
        now = emu.now()
        dispute_id = emu.new_id("du")
        txn = build.balance_transaction(
            emu.new_id("txn"),
            created=now,
            amount=-charge["amount"],
            fee=build.DISPUTE_FEE,
            type="adjustment",
            category="dispute",
            source=dispute_id,
            available_on=now,
            description=f"Chargeback withdrawal for {charge['id']}",
            fee_description="Dispute fee",
        )
        emu.put(account, txn)
        dispute = build.dispute(dispute_id, created=now, charge=charge, reason=reason, balance_transactions=[txn])
        emu.put(account, dispute)
        charge["disputed"] = True
        emu.emit(account, "charge.dispute.created", dispute)
        emu.emit(account, "charge.dispute.funds_withdrawn", dispute)
        emu.webhooks.kick()
        return JSONResponse(dispute)

    def get_dispute(ctx: Ctx, dispute: str) -> dict[str, Any]:
        return emu.get(ctx.account, dispute, "dispute", "dispute")

    def list_disputes(ctx: Ctx) -> dict[str, Any]:
        charge = ctx.str_param("charge")
        items = emu.find(ctx.account, "dispute", lambda d: not charge or d["charge"] == charge)
        return paginate(ctx, items, "/v1/disputes")

    # --- Events -----------------------------------------------------------------------------------------
    def list_events(ctx: Ctx) -> dict[str, Any]:
        single = ctx.str_param("type")
        several = ctx.params.get("types") or []
        if single and several:
            raise invalid("types", "You may only specify one of these parameters: type, types.")
        patterns = [single] if single else list(several)
        when = created_filter(ctx)
        items = emu.find(
            ctx.account,
            "event",
            lambda e: when(e) and (not patterns or any(fnmatch.fnmatchcase(e["type"], p) for p in patterns)),
        )
        return paginate(ctx, items, "/v1/events")

    def get_event(ctx: Ctx, id: str) -> dict[str, Any]:
        return emu.get(ctx.account, id, "event", "id")

    for method, path, handler in (
        ("GET", "/v1/payment_intents", list_intents),
        ("GET", "/v1/payment_intents/{intent}", get_intent),
        ("GET", "/v1/charges", list_charges),
        ("GET", "/v1/charges/{charge}", get_charge),
        ("POST", "/v1/refunds", create_refund),
        ("GET", "/v1/refunds", list_refunds),
        ("GET", "/v1/refunds/{refund}", get_refund),
        ("GET", "/v1/balance", get_balance),
        ("GET", "/v1/balance_transactions", list_txns),
        ("GET", "/v1/balance_transactions/{txn}", get_txn),
        ("GET", "/v1/payouts", list_payouts),
        ("GET", "/v1/payouts/{payout}", get_payout),
        ("GET", "/v1/disputes", list_disputes),
        ("GET", "/v1/disputes/{dispute}", get_dispute),
        ("GET", "/v1/events", list_events),
        ("GET", "/v1/events/{id}", get_event),
    ):
        emu.api.add(method, path, handler)
    emu.app.add_api_route(f"{CONTROL_PREFIX}/payouts/run", control_run, methods=["POST"])
    emu.app.add_api_route(f"{CONTROL_PREFIX}/payouts/fail_next", control_fail_next, methods=["POST"])
    emu.app.add_api_route(f"{CONTROL_PREFIX}/charges/{{charge_id}}/dispute", control_dispute, methods=["POST"])


_PAYOUT_FAILURES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "invalid_account_number": "The bank account number appears to be invalid.",
    "no_account": "The bank account could not be located.",
}


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"
