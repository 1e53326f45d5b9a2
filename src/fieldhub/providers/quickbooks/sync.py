"""QuickBooks Online export adapter: customers, items, invoices, payments, voids, refund receipts and deposits.

Every create carries `requestid=<the ledger's idempotency key>` (QBO answers a repeat with the
original object) and every call `minorversion=75`. Updates are sparse with the stored SyncToken; on
5010 (someone changed it in QuickBooks since) the object is re-read and the update re-applied once.
Backfills of customers, items, invoices and payments go through the batch endpoint, 30 per request.
A batched create whose reply was lost has no requestid of its own to replay, so `find_existing`
recognises it: customers, items and invoices by their natural key (DisplayName, Name, DocNumber),
payments by the marker in PrivateNote among the customer's payments of that date (CustomerRef and
TxnDate are filterable; PrivateNote is not). Refunds always go one by one under their own requestid,
and so do deposits (a payout's, linking its payments and refund receipts, which the engine syncs first).

A payment or refund that went through a card processor (the engine says so in `related["processor"]`)
stays in Undeposited Funds until its payout's Deposit moves it to the bank; see mapping.deposit_body.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from fieldhub import exactjson
from fieldhub.hub import registry
from fieldhub.hub.errors import NeedsReauth, NoSlot, ProviderError, Rejected, RetryLater
from fieldhub.hub.http import DEFAULT_FIX, ProviderClient, parse_retry_after
from fieldhub.hub.sync.adapter import PushItem, PushResult
from fieldhub.hub.sync.models import Operation
from fieldhub.providers.quickbooks import mapping
from fieldhub.providers.quickbooks.mapping import ACCOUNT_KEYS, FEES_KEY, Tax

MINOR_VERSION = "75"
REMOTE = {
    "customer": "Customer",
    "item": "Item",
    "invoice": "Invoice",
    "payment": "Payment",
    "refund": "RefundReceipt",
    "deposit": "Deposit",
}
# What this adapter sends (fieldhub check holds provider.toml's export directions to it).
EXPORTS = tuple(REMOTE)
BATCHED = ("customer", "item", "invoice", "payment")
# A record found by its natural key counts as ours only if QuickBooks created it after we first sent it.
CLOCK_SKEW = timedelta(minutes=5)
# Seconds a batch waits for one of the company's 40 batch slots a minute before its records go one by one.
BATCH_SLOT_WAIT = 1.0
MAPPING_FIX = "Open QuickBooks → Field mapping, choose the accounts again and save, then retry."
# What a run reads from the company before it sends (its tax codes and rates, and its "Services" item for
# hand-typed lines), read once per connection and kept this long across runs: a run per invoice
# (real-time sync) would otherwise spend up to three more requests on every invoice. A refused record
# drops them, so a fix made in QuickBooks is seen by the retry; a reconnect is a new key.
COMPANY_CACHE_TTL = 600.0
# (realm, connection id, connected at) → what was read ("tax", "services") → (expires at, value).
_company_cache: dict[tuple[str, int, str], dict[str, tuple[float, Any]]] = {}


# ----------------------------------------------------------------------------- faults → error kinds


def _fault(body: Any) -> tuple[dict[str, Any], str] | None:
    """The first error of a Fault body (either casing) and its type."""
    if not isinstance(body, dict):
        return None
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return None
    errors = fault.get("Error") or fault.get("error") or [{}]
    first = {k.lower(): v for k, v in (errors[0] if isinstance(errors[0], dict) else {}).items()}
    return first, str(fault.get("type", ""))


def fault_error(error: dict[str, Any], status: int | None, entity: str = "", sent: Any = None) -> ProviderError:
    """One QBO error as the engine's kind, with a reason and fix a business owner can act on."""
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    detail = str(error.get("detail") or "")
    element = str(error.get("element") or "")
    said = detail or message
    sent = sent if isinstance(sent, dict) else {}
    if code == "3200" or status == 401:
        return NeedsReauth("QuickBooks no longer accepts fieldhub's access. Click Reconnect.", status=status)
    if status == 429 or code in ("3001", "003001"):
        return RetryLater("QuickBooks asked fieldhub to slow down", status=status)
    if (status or 0) >= 500 or code == "10000":
        return RetryLater(f"QuickBooks had a temporary problem ({status})", status=status)
    if code == "6240":
        if entity == "Item" or "Name" in sent and "DisplayName" not in sent:
            name = sent.get("Name", "")
            return Rejected(
                code,
                f"Item name conflict: an item named “{name}” already exists in QuickBooks; "
                "rename it here or merge it there",
                "Rename the item in fieldhub (or rename or inactivate the one in QuickBooks), then retry.",
                status=status,
            )
        name = sent.get("DisplayName", "")
        return Rejected(
            code,
            f"Customer name conflict: a customer, vendor or employee named “{name}” already exists in "
            "QuickBooks; rename it here or merge it there",
            "Change the customer's display name in fieldhub (e.g. add the city), or rename or merge the "
            "other one in QuickBooks, then retry.",
            status=status,
        )
    if code == "6100" or (code == "6000" and "tax" in said.lower()):
        return Rejected(
            code,
            f"Invalid tax rate: {said}",
            "Check the invoice's tax rate matches a sales tax set up in QuickBooks (Taxes → Sales tax), then retry.",
            status=status,
        )
    if code == "610":
        return Rejected(
            code,
            "Account not found: your chart of accounts changed; re-run the field mapping",
            MAPPING_FIX,
            status=status,
        )
    if code == "2020":
        return Rejected(
            code,
            f"QuickBooks needs a value that is missing: {element or said}",
            "Fill in the missing detail on the record in fieldhub, then retry.",
            status=status,
        )
    if code == "5010":
        return Rejected(code, "Someone changed this record in QuickBooks at the same time", DEFAULT_FIX, status=status)
    if code == "6140":
        number = sent.get("DocNumber", "")
        return Rejected(
            code,
            f"Duplicate invoice number: QuickBooks already has a transaction numbered {number}",
            "Change the number in QuickBooks or in fieldhub, then retry.",
            status=status,
        )
    return Rejected(code or f"http_{status}", f"QuickBooks refused this: {said or message}", DEFAULT_FIX, status=status)


def classify(response: httpx.Response) -> ProviderError | None:
    """ProviderClient's hook: QBO puts its Fault in 4xx replies and sometimes in a 200."""
    status = response.status_code
    if status == 429 or status >= 500:
        return RetryLater(
            "QuickBooks asked fieldhub to slow down"
            if status == 429
            else f"QuickBooks had a temporary problem ({status})",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            status=status,
        )
    if status == 401:
        return NeedsReauth("QuickBooks no longer accepts fieldhub's access. Click Reconnect.", status=status)
    if status < 400 and b'"Fault"' not in response.content and b'"fault"' not in response.content:
        return None  # the common case, told without parsing the reply (the caller parses it once, exactly)
    try:
        body = response.json()
    except ValueError:
        return None if status < 400 else Rejected(f"http_{status}", "QuickBooks refused this", DEFAULT_FIX)
    found = _fault(body)
    if found is None:
        return None if status < 400 else Rejected(f"http_{status}", "QuickBooks refused this", DEFAULT_FIX)
    sent: Any = None
    with contextlib.suppress(ValueError, RuntimeError):
        sent = json.loads(response.request.content or b"{}")
    entity = next((v for k, v in REMOTE.items() if response.request.url.path.lower().endswith("/" + v.lower())), "")
    return fault_error(found[0], status, entity, sent)


# ----------------------------------------------------------------------------- the adapter


class QuickBooksAdapter:
    def __init__(self, connection: Any, client: ProviderClient, settings: Any) -> None:
        api = registry.get("quickbooks").api
        self.batch_size = (api.batch_size if api else None) or 1  # provider.toml [api] batch_size
        self.client = client
        self.realm = connection.account_id
        self.settings = dict(connection.settings or {})
        self.accounts: dict[str, str] = {
            k: str(v) for k, v in (self.settings.get("account_mapping") or {}).items() if v
        }
        self.country = str((connection.account_details or {}).get("country", ""))
        self._default_item: str | None = None
        self._tax: Tax | None = None
        self._codes: list[dict[str, Any]] | None = None
        self._undeposited: str | None = None
        self._cache_key = (str(self.realm), int(connection.id), str(connection.connected_at))

    # --- plumbing -------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        max_wait: float | None = None,
        **params: str,
    ) -> dict[str, Any]:
        query = {"minorversion": MINOR_VERSION, **params}
        if key:
            query["requestid"] = key
        response = await self.client.request(
            method,
            path,
            bucket=self.realm,
            content=exactjson.dumps(body) if body is not None else None,
            params=query,
            headers={
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if body is not None else {}),
            },
            # A requestid makes a create safe to repeat; updates are guarded by SyncToken.
            idempotent=True if (key or method == "GET") else None,
            batch=path == "batch",  # also metered against batch_per_minute
            max_wait=max_wait,
        )
        reply = exactjson.loads(response.content)
        found = _fault(reply)
        if found is not None:  # a Fault inside a 200
            entity = next((v for v in REMOTE.values() if v.lower() == path), "")
            raise fault_error(found[0], response.status_code, entity, body)
        return reply

    async def query(self, statement: str) -> dict[str, Any]:
        reply = await self._call("GET", "query", query=statement)
        return reply.get("QueryResponse", {})

    async def prepare(self) -> None:
        missing = [k for k in ACCOUNT_KEYS if not self.accounts.get(k)]
        if missing:
            raise Rejected(
                "mapping_required",
                "Map your chart of accounts first",
                "Open QuickBooks → Field mapping and choose the accounts for "
                + ", ".join(k.replace("_", " ") for k in missing)
                + ".",
            )
        if not self.country:
            info = await self._call("GET", f"companyinfo/{self.realm}")
            self.country = str(info.get("CompanyInfo", {}).get("Country", ""))

    @property
    def us(self) -> bool:
        return self.country.upper() in ("US", "USA", "")

    async def default_item(self) -> str:
        """The item hand-typed lines and refunds are booked under: the company's "Services", made if missing."""
        if self._default_item is None:
            self._default_item = self._kept("services")
        if self._default_item is None:
            found = (await self.query("SELECT * FROM Item WHERE Name = 'Services'")).get("Item", [])
            if found:
                self._default_item = str(found[0]["Id"])
            else:
                body = {
                    "Name": "Services",
                    "Type": "Service",
                    "IncomeAccountRef": mapping.ref(self.accounts["service_revenue"]),
                }
                key = "fh-item-services-" + hashlib.sha256(self.realm.encode()).hexdigest()[:20]
                self._default_item = str((await self._call("POST", "item", body, key=key))["Item"]["Id"])
            self._keep("services", self._default_item)
        return self._default_item

    async def undeposited_funds(self) -> str:
        """The company's Undeposited Funds account (every QBO company has exactly one; its subtype says which)."""
        if self._undeposited is None:
            found = (await self.query("SELECT * FROM Account WHERE AccountType = 'Other Current Asset'")).get(
                "Account", []
            )
            match = next((a for a in found if a.get("AccountSubType") == "UndepositedFunds"), None)
            if match is None:
                raise Rejected(
                    "610",
                    "Account not found: QuickBooks has no Undeposited Funds account",
                    "Turn on Undeposited Funds in QuickBooks (Settings → Account and settings → Advanced), then retry.",
                )
            self._undeposited = str(match["Id"])
        return self._undeposited

    async def tax_for(self, item: PushItem) -> Tax:
        if self.us:
            if self._tax is None:
                code = str(self.settings.get("tax_code") or "")
                if not code:
                    codes = await self._tax_codes()
                    code = next(
                        (str(c["Id"]) for c in codes if str(c["Id"]) not in ("TAX", "NON") and c.get("Taxable", True)),
                        "",
                    )
                self._tax = Tax(us=True, txn_code=code)
            return self._tax
        codes = await self._tax_codes()
        rates = {str(c["Id"]): await self._code_rate(c) for c in codes}
        exempt = next((cid for cid, r in rates.items() if r == 0), "")
        rate = item.related.get("tax_rate")
        taxable = ""
        if rate is not None and any(line.taxable for line in getattr(item.record, "lines", [])):
            want = Decimal(rate.rate)
            taxable = next((cid for cid, r in rates.items() if r == want and r != 0), "")
            if not taxable:
                raise Rejected(
                    "tax_rate",
                    f"Invalid tax rate: QuickBooks has no sales tax code at {want.normalize()} % ({rate.name})",
                    "Set up that rate in QuickBooks (Taxes → Sales tax) or pick another rate on the invoice, "
                    "then retry.",
                )
        return Tax(us=False, taxable_code=taxable, exempt_code=exempt)

    async def _tax_codes(self) -> list[dict[str, Any]]:
        if self._codes is None:
            kept = self._kept("tax")
            if kept is not None:
                self._codes, self._rates = kept
            else:
                self._codes = (await self.query("SELECT * FROM TaxCode")).get("TaxCode", [])
                rates = (await self.query("SELECT * FROM TaxRate")).get("TaxRate", [])
                self._rates = {str(r["Id"]): r for r in rates}
                self._keep("tax", (self._codes, self._rates))
        return self._codes

    def _kept(self, what: str) -> Any:
        """What an earlier run of this connection read from the company and kept, or None once it expired."""
        entry = _company_cache.get(self._cache_key, {}).get(what)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def _keep(self, what: str, value: Any) -> None:
        _company_cache.setdefault(self._cache_key, {})[what] = (time.monotonic() + COMPANY_CACHE_TTL, value)

    def _forget_company_cache(self, outcomes: Sequence[Any]) -> None:
        if any(isinstance(o, Rejected) for o in outcomes):
            _company_cache.pop(self._cache_key, None)

    async def _code_rate(self, code: dict[str, Any]) -> Decimal:
        details = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail", [])
        total = Decimal(0)
        for d in details:
            rate = self._rates.get(str((d.get("TaxRateRef") or {}).get("value")))
            if rate is not None:
                total += Decimal(str(rate.get("RateValue", 0)))
        return total

    # --- bodies ---------------------------------------------------------------------------------
    async def body(self, item: PushItem) -> dict[str, Any]:
        record, refs = item.record, dict(item.refs)
        if item.entity == "customer":
            return mapping.customer_body(record)
        if item.entity == "item":
            return mapping.item_body(record, self.accounts, us=self.us)
        if item.entity == "invoice":
            default = await self.default_item() if any(ln.item_id is None for ln in record.lines) else ""
            return mapping.invoice_body(record, refs, self.accounts, await self.tax_for(item), default)
        if item.entity == "payment":
            # A processor's payment waits in Undeposited Funds (QBO's default) for its payout's Deposit.
            to_bank = self.settings.get("deposit_payments_to") == "bank" and not item.related.get("processor")
            return mapping.payment_body(record, refs, self.accounts["bank_deposit"] if to_bank else None)
        if item.entity == "refund":
            invoice = item.related["invoice"]
            refund_from = await self.undeposited_funds() if item.related.get("processor") else None
            return mapping.refund_body(
                record, invoice, refs, self.accounts, await self.tax_for(item), await self.default_item(), refund_from
            )
        if item.entity == "deposit":
            if not self.accounts.get(FEES_KEY):
                raise Rejected(
                    "mapping_required",
                    "Choose the account for payment processing fees before deposits can sync",
                    "Open QuickBooks → Field mapping, choose Payment processing fees, save, then retry.",
                )
            return mapping.deposit_body(record, refs, self.accounts)
        raise Rejected("unsupported", f"QuickBooks sync does not send {item.entity} records", "")

    # --- pushes ---------------------------------------------------------------------------------
    async def push(self, item: PushItem, *, stale: bool = False) -> PushResult:
        try:
            return await self._push(item, stale=stale)
        except Rejected as e:
            self._forget_company_cache([e])
            raise

    async def _push(self, item: PushItem, *, stale: bool = False) -> PushResult:
        entity = REMOTE[item.entity]
        path = entity.lower()
        if item.operation in (Operation.VOID, Operation.DELETE):
            return await self._void_or_delete(item, entity, path)
        body = await self.body(item)
        if item.is_create:
            reply = await self._call("POST", path, body, key=item.idempotency_key)
            return self._result(entity, reply, "created", body)
        if not stale:
            try:
                return await self._update(item, entity, path, body, item.remote_version)
            except Rejected as e:
                if e.code != "5010":
                    raise
        # Stale SyncToken: someone changed it in QuickBooks. Re-read, re-apply our fields, once.
        current = await self._call("GET", f"{path}/{item.remote_id}")
        return await self._update(item, entity, path, body, str(current[entity]["SyncToken"]))

    async def _update(
        self, item: PushItem, entity: str, path: str, body: dict[str, Any], token: str | None
    ) -> PushResult:
        sparse = {**body, "Id": item.remote_id, "SyncToken": token or "0", "sparse": True}
        reply = await self._call("POST", path, sparse)
        return self._result(entity, reply, "updated", sparse)

    async def _void_or_delete(self, item: PushItem, entity: str, path: str) -> PushResult:
        current = await self._call("GET", f"{path}/{item.remote_id}")
        token = str(current[entity]["SyncToken"])
        body: dict[str, Any] = {"Id": item.remote_id, "SyncToken": token}
        if entity in ("Customer", "Item"):  # names are never deleted in QBO, only made inactive
            body |= {"Active": False, "sparse": True}
            reply = await self._call("POST", path, body)
            return self._result(entity, reply, "deleted", body)
        if item.operation == Operation.VOID and entity == "Payment":
            reply = await self._call("POST", path, {**body, "sparse": True}, operation="update", include="void")
        elif item.operation == Operation.VOID:
            reply = await self._call("POST", path, body, operation="void")
        else:
            reply = await self._call("POST", path, body, operation="delete")
        action = "voided" if item.operation == Operation.VOID else "deleted"
        return self._result(entity, reply, action, body)

    @staticmethod
    def _result(entity: str, reply: dict[str, Any], action: str, sent: dict[str, Any]) -> PushResult:
        obj = reply.get(entity) or {}
        return PushResult(
            remote_id=str(obj.get("Id", "")),
            remote_version=str(obj.get("SyncToken", "")) or None,
            action=action,
            sent=sent,  # the engine turns amounts into strings when it writes the history
            received=obj,
            remote_updated_at=last_updated(obj),
            touched=touched_by(entity, obj),
        )

    async def push_batch(self, items: Sequence[PushItem]) -> list[PushResult | ProviderError]:
        results: list[PushResult | ProviderError | None] = [None] * len(items)
        ops: list[tuple[int, str, dict[str, Any]]] = []
        for index, item in enumerate(items):
            if item.entity not in BATCHED or item.operation != Operation.UPSERT:
                continue
            try:
                body = await self.body(item)
            except (Rejected, RetryLater) as e:
                results[index] = e
                continue
            if not item.is_create:
                body = {**body, "Id": item.remote_id, "SyncToken": item.remote_version or "0", "sparse": True}
            ops.append((index, "create" if item.is_create else "update", body))
        if ops:
            request = {
                "BatchItemRequest": [
                    {"bId": f"b{n}", "operation": op, REMOTE[items[i].entity]: body}
                    for n, (i, op, body) in enumerate(ops)
                ]
            }
            keys = "|".join(
                items[i].idempotency_key or f"{items[i].ledger_id}:{items[i].local_version}" for i, _, _ in ops
            )
            batch_key = "fh-b-" + hashlib.sha256(keys.encode()).hexdigest()[:31]
            try:
                reply = await self._call("POST", "batch", request, key=batch_key, max_wait=BATCH_SLOT_WAIT)
            except NoSlot as e:
                if not e.bucket.endswith(":batch"):
                    raise
                # The company's 40 batches a minute are spent (a catch-up after a crash re-sends what the kill
                # cut): its 500 requests a minute are not, so these go one by one, each create under its own
                # requestid, rather than wait up to a minute for a batch slot. Nothing of the batch was sent.
                reply = {}
                ops = []
            answers = {a.get("bId"): a for a in reply.get("BatchItemResponse", [])}
            for n, (index, op, body) in enumerate(ops):
                item = items[index]
                entity = REMOTE[item.entity]
                answer = answers.get(f"b{n}", {})
                fault = _fault(answer)
                if fault is not None:
                    results[index] = fault_error(fault[0], 400, entity, body)
                elif entity in answer:
                    results[index] = self._result(entity, answer, "created" if op == "create" else "updated", body)
                else:
                    results[index] = RetryLater("QuickBooks did not answer for this record in the batch")
        throttled: RetryLater | None = None
        for index, item in enumerate(items):
            outcome = results[index]
            # Not batchable, or a stale update: one by one (push re-reads on 5010).
            if outcome is None or (isinstance(outcome, Rejected) and outcome.code == "5010"):
                if throttled is not None:
                    results[index] = throttled  # QuickBooks said wait (Retry-After): nothing more goes now
                    continue
                try:
                    # The batch said stale already: re-read first rather than send the same SyncToken again.
                    results[index] = await self.push(item, stale=isinstance(outcome, Rejected))
                except (Rejected, RetryLater) as e:
                    results[index] = e
                    if isinstance(e, RetryLater) and e.retry_after:
                        throttled = e
        found = [r for r in results if r is not None]
        self._forget_company_cache(found)
        return found

    async def find_existing(self, item: PushItem) -> PushResult | None:
        """A create whose reply was lost inside a batch: the object QuickBooks made from it, if any."""
        if item.entity not in BATCHED:
            return None  # sent alone under its requestid: pushing again replays the original reply
        record = item.record
        entity = REMOTE[item.entity]
        if item.entity == "payment":
            customer = item.refs.get(("customer", record.customer_id), "")
            statement = f"SELECT * FROM Payment WHERE CustomerRef = '{customer}' AND TxnDate = '{record.received_on}'"
            note = mapping.marker("payment", record.id)
            candidates = [p for p in (await self.query(statement)).get(entity, []) if p.get("PrivateNote") == note]
        else:
            field, value = {
                "customer": ("DisplayName", getattr(record, "display_name", "")),
                "item": ("Name", getattr(record, "name", "")),
                "invoice": ("DocNumber", getattr(record, "number", "")),
            }[item.entity]
            escaped = str(value).strip().replace("'", "\\'")
            candidates = (await self.query(f"SELECT * FROM {entity} WHERE {field} = '{escaped}'")).get(entity, [])
        for obj in candidates:
            created = _parse_time((obj.get("MetaData") or {}).get("CreateTime"))
            if item.sent_at is None or (created is not None and created >= item.sent_at - CLOCK_SKEW):
                return self._result(entity, {entity: obj}, "created", {})
        return None


def last_updated(obj: dict[str, Any]) -> datetime | None:
    """MetaData.LastUpdatedTime (`2026-11-21T12:00:00-08:00`) as aware UTC; None when absent or unreadable."""
    moment = _parse_time((obj.get("MetaData") or {}).get("LastUpdatedTime"))
    return moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None


def touched_by(entity: str, obj: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The objects QuickBooks changed with this one: a payment's invoices (their Balance and LinkedTxn move,
    with a new SyncToken and an Update webhook at the payment's time)."""
    if entity != "Payment":
        return ()
    ids = {
        str(link.get("TxnId"))
        for line in obj.get("Line") or []
        for link in line.get("LinkedTxn") or []
        if link.get("TxnType") == "Invoice" and link.get("TxnId")
    }
    return tuple(("invoice", i) for i in sorted(ids))


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def create_adapter(connection: Any, client: ProviderClient, settings: Any) -> QuickBooksAdapter:
    return QuickBooksAdapter(connection, client, settings)
