"""The emulator's hosted pages (Checkout, Connect onboarding), styled after Stripe's own."""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,
"Helvetica Neue",Ubuntu,sans-serif;color:#1a1f36;background:#fff}
.wrap{display:flex;min-height:100vh}.side{flex:1;background:#f6f9fc;padding:64px 48px;display:flex;
justify-content:flex-end}.main{flex:1;padding:64px 48px}.col{width:100%;max-width:380px}
.merchant{display:flex;align-items:center;gap:10px;font-weight:600;color:#3c4257}
.logo{width:28px;height:28px;border-radius:50%;background:#635bff;color:#fff;display:grid;place-items:center;
font-size:13px}.label{color:#697386;margin-top:28px}.amount{font-size:36px;font-weight:600;letter-spacing:-.5px}
.line{display:flex;justify-content:space-between;padding:10px 0;border-bottom:1px solid #e3e8ee;color:#3c4257}
h2{font-size:18px;font-weight:600;margin:0 0 16px}.field{margin-bottom:14px}.field label{display:block;
font-size:13px;color:#3c4257;margin-bottom:4px}input{width:100%;padding:10px 12px;border:1px solid #e0e6eb;
border-radius:6px;font:inherit;box-shadow:0 1px 1px #0000000d}input:focus{outline:2px solid #635bff55;
border-color:#635bff}.row{display:flex;gap:10px}.pay{width:100%;padding:12px;border:0;border-radius:6px;
background:#635bff;color:#fff;font:inherit;font-weight:600;cursor:pointer;margin-top:6px}
.pay.alt{background:#fff;color:#635bff;border:1px solid #635bff}.err{background:#fdecea;color:#b3093c;
border-radius:6px;padding:10px 12px;margin-bottom:14px}.ok{color:#0e6245}.sep{display:flex;align-items:center;
gap:10px;color:#8792a2;margin:22px 0;font-size:13px}.sep:before,.sep:after{content:"";flex:1;height:1px;
background:#e3e8ee}.note{font-size:12px;color:#8792a2;margin-top:18px}.bank{border:1px solid #e3e8ee;
border-radius:6px;padding:12px;margin-bottom:12px;color:#3c4257}.badge{display:inline-block;font-size:11px;
background:#ffde92;color:#5d4200;border-radius:4px;padding:1px 6px;margin-left:6px;font-weight:600}
.center{max-width:440px;margin:8vh auto;padding:0 24px}
@media(max-width:800px){.wrap{display:block}.side,.main{padding:28px 20px}.side{justify-content:flex-start}}
"""


def shell(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )


def notice(message: str) -> str:
    return f"<div class=center><h2>{escape(message)}</h2><p class=note>Stripe emulator</p></div>"


def money(amount: int, currency: str) -> str:
    symbol = "$" if currency.lower() == "usd" else currency.upper() + " "
    return f"{symbol}{amount // 100:,}.{amount % 100:02d}"


def checkout(session: dict[str, Any], items: list[dict[str, Any]], merchant: str, action: str, error: str = "") -> str:
    """The payment page; `action` is the absolute URL the forms post to (…/c/pay/{id}), so a re-render after a
    decline, served from …/card, still posts to the right place."""
    currency = session["currency"] or "usd"
    lines = "".join(
        f"<div class=line><span>{escape(item['description'])}"
        f"{' × ' + str(item['quantity']) if (item.get('quantity') or 1) > 1 else ''}</span>"
        f"<span>{money(item['amount_total'], currency)}</span></div>"
        for item in items
    )
    email = escape(session.get("customer_email") or "")
    error_html = f"<div class=err role=alert id=error>{escape(error)}</div>" if error else ""
    card = ""
    if "card" in session["payment_method_types"]:
        card = f"""
<form method=post action="{escape(action)}/card" id=card-form>
 <div class=field><label for=email>Email</label><input id=email name=email type=email value="{email}" required></div>
 <div class=field><label for=cardnumber>Card information</label>
  <input id=cardnumber name=number inputmode=numeric autocomplete=cc-number placeholder="1234 1234 1234 1234" required>
  <div class=row style="margin-top:6px"><input name=exp placeholder="MM / YY" value="12 / 34" required>
  <input name=cvc placeholder=CVC value="123" required></div></div>
 <div class=field><label for=name>Name on card</label><input id=name name=name autocomplete=cc-name></div>
 <button class=pay type=submit id=pay>Pay {money(session["amount_total"], currency)}</button>
</form>"""
    bank = ""
    if "us_bank_account" in session["payment_method_types"]:
        bank = f"""
{"<div class=sep>or</div>" if card else ""}
<form method=post action="{escape(action)}/bank" id=bank-form>
 <div class=bank>STRIPE TEST BANK •••• 6789 <span class=badge>TEST</span><br>
 <small>ACH Direct Debit. Funds take a few business days to arrive.</small></div>
 <input type=hidden name=email value="{email}">
 <button class="pay alt" type=submit id=pay-bank>Pay with test bank account</button>
</form>"""
    cancel = (
        f'<p class=note><a href="{escape(session["cancel_url"])}">← Back to {escape(merchant)}</a></p>'
        if session.get("cancel_url")
        else ""
    )
    body = f"""<div class=wrap><div class=side><div class=col>
<div class=merchant><div class=logo>{escape(merchant[:1] or "S")}</div>{escape(merchant)}
<span class=badge>TEST MODE</span></div><div class=label>Pay {escape(merchant)}</div>
<div class=amount id=amount>{money(session["amount_total"], currency)}</div>
<div style="margin-top:24px">{lines}</div>{cancel}</div></div>
<div class=main><div class=col><h2>Pay with card</h2>{error_html}{card}{bank}
<p class=note>Test cards: 4242 4242 4242 4242 succeeds · 4000 0000 0000 0002 is declined ·
4000 0000 0000 9995 has insufficient funds. Powered by the Stripe emulator.</p></div></div></div>"""
    return shell(f"Pay {merchant}", body)


def onboarding(account: dict[str, Any], token: str) -> str:
    name = escape(account["business_profile"].get("name") or "")
    body = f"""<div class=center><div class=merchant><div class=logo>S</div>Stripe
<span class=badge>TEST MODE</span></div>
<h2 style="margin-top:24px">Set up payments for your business</h2>
<p class=note>Account {escape(account["id"])} · {escape(account.get("email") or "")}</p>
<form method=post>
 <div class=field><label for=business_name>Business name</label>
 <input id=business_name name=business_name value="{name}" required></div>
 <div class=bank>Payouts to STRIPE TEST BANK •••• 6789 <span class=badge>TEST</span></div>
 <button class=pay type=submit id=submit>Agree and submit</button>
</form><p class=note>By submitting you agree to the Stripe Services Agreement (emulated).</p></div>"""
    return shell("Stripe onboarding", body)
