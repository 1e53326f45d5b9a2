"""Xero as an accounting `Ledger` (capabilities/accounting/protocol.py): Xero JSON → neutral records, reads through
`where`, `If-Modified-Since` and pages of 100, and Xero's refusals in plain words.

Kinds map to Xero's resources as the export adapter sends them (sync.REMOTE): a refund is a credit note, a deposit
a RECEIVE bank transaction. A record's version is its UpdatedDateUTC. Deleted objects (Status DELETED) are not
returned by reads and come back from `changed_since` as deletions; a voided invoice reads `voided=True`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldhub.capabilities.accounting.protocol import (
    NOT_FOUND,
    Change,
    ChangePage,
    Party,
    Problem,
    Product,
    Record,
    Txn,
)
from fieldhub.capabilities.accounting.protocol import (
    Link as Applied,
)
from fieldhub.core.money import ZERO, to_money
from fieldhub.hub.errors import Rejected
from fieldhub.hub.sync.adapter import PushItem
from fieldhub.hub.sync.models import Operation
from fieldhub.providers.xero.accounts import MAPPING_FIELDS
from fieldhub.providers.xero.sync import FEES_KEY, ID_FIELD, REMOTE, XeroAdapter, explain

KEY = "xero"
NAME = "Xero"
PAGE = 100  # Xero's page
IDS_CHUNK = 40  # GUIDs per `IDs=` (URL length)
KIND_OF = {v: k for k, v in REMOTE.items()}
ADDRESS = {
    "line1": "AddressLine1",
    "line2": "AddressLine2",
    "city": "City",
    "region": "Region",
    "postal_code": "PostalCode",
}
_MS = re.compile(r"/Date\((-?\d+)")
PROBLEMS = {  # a code sync.explain gives → the words it gives
    "name_conflict": ["is already assigned to another contact"],
    "account": ["Account code '' is not a valid code for this document."],
    "tax_type": ["Tax type is not valid"],
    "duplicate_number": ["Invoice # must be unique."],
    "has_payments": ["This document cannot be edited as it has a payment or credit note allocated to it."],
}


def moment(value: Any) -> datetime | None:
    """Xero's `/Date(1765152000000+0000)/` (or an ISO time) as aware UTC."""
    found = _MS.match(str(value or ""))
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day_of(value: Any) -> date | None:
    found = moment(value)
    return found.date() if found else None


def money(value: Any) -> Decimal:
    """An amount as Xero writes it (a JSON number, or nothing) in cents; anything else reads as zero."""
    with contextlib.suppress(InvalidOperation, ValueError):
        return to_money(Decimal(str(value or 0)))
    return ZERO


def customer_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A Xero contact as fieldhub's customer fields (POBOX is the billing address, STREET the site)."""
    data: dict[str, Any] = {
        "display_name": str(obj.get("Name") or "").strip(),
        "company": "",
        "email": str(obj.get("EmailAddress") or "").strip(),
        "phone": next(
            (str(p.get("PhoneNumber") or "") for p in obj.get("Phones") or [] if p.get("PhoneType") == "DEFAULT"), ""
        ),
        "active": obj.get("ContactStatus", "ACTIVE") == "ACTIVE",
    }
    addresses = {a.get("AddressType"): a for a in obj.get("Addresses") or []}
    for prefix, kind in (("billing", "POBOX"), ("service", "STREET")):
        addr = addresses.get(kind) or {}
        data |= {f"{prefix}_{ours}": str(addr.get(theirs) or "") for ours, theirs in ADDRESS.items()}
        country = str(addr.get("Country") or "").strip().upper()
        if len(country) == 2 and country.isalpha():
            data[f"{prefix}_country"] = country
    return data


def party(obj: dict[str, Any]) -> Party:
    return Party(
        remote_id=str(obj.get("ContactID", "")),
        name=str(obj.get("Name", "")),
        kind="customer" if obj.get("IsCustomer") or not obj.get("IsSupplier") else "vendor",
        email=str(obj.get("EmailAddress") or "").strip(),
        version=str(obj.get("UpdatedDateUTC", "")),
        active=obj.get("ContactStatus", "ACTIVE") == "ACTIVE",
        updated_at=moment(obj.get("UpdatedDateUTC")),
        fields=customer_fields(obj),
        raw=obj,
    )


def product(obj: dict[str, Any]) -> Product:
    sales = obj.get("SalesDetails") or {}
    name = str(obj.get("Name") or obj.get("Code") or "").strip()
    fields = {
        "name": name,
        "sku": str(obj.get("Code", "")),
        "description": str(obj.get("Description") or ""),
        "unit_price": max(money(sales.get("UnitPrice")), ZERO),
        "kind": "product" if obj.get("IsTrackedAsInventory") else "service",
        "taxable": str(sales.get("TaxType") or "NONE") != "NONE",
    }
    return Product(
        remote_id=str(obj.get("ItemID", "")),
        name=name,
        version=str(obj.get("UpdatedDateUTC", "")),
        updated_at=moment(obj.get("UpdatedDateUTC")),
        fields=fields,
        raw=obj,
    )


def _words(*texts: Any) -> frozenset[str]:
    return frozenset(word.strip(".,;:()·") for text in texts for word in str(text or "").split())


def txn(obj: dict[str, Any], kind: str, fees_account: str = "") -> Txn:
    contact = str((obj.get("Contact") or {}).get("ContactID", ""))
    links: tuple[Applied, ...] = ()
    fees = ZERO
    amount = money(obj.get("Total"))
    if kind == "payment":
        invoice = obj.get("Invoice") or {}
        amount = money(obj.get("Amount"))
        contact = str((invoice.get("Contact") or {}).get("ContactID", ""))
        links = (Applied(str(invoice.get("InvoiceID", "")), amount, "invoice"),) if invoice else ()
    elif kind == "refund":
        links = tuple(
            Applied(str((a.get("Invoice") or {}).get("InvoiceID", "")), money(a.get("Amount")), "invoice")
            for a in obj.get("Allocations") or []
        )
    elif kind == "deposit":
        for line in obj.get("LineItems") or []:
            value = money(line.get("LineAmount"))
            if value < ZERO and (
                line.get("AccountCode") == fees_account or "fee" in str(line.get("Description", "")).lower()
            ):
                fees -= value
    reference = str(obj.get("Reference") or "")
    return Txn(
        kind=kind,
        remote_id=str(obj.get(ID_FIELD[REMOTE[kind]], "")),
        day=day_of(obj.get("Date")),
        amount=amount,
        number=str(obj.get("InvoiceNumber") or obj.get("CreditNoteNumber") or ""),
        balance=money(obj.get("AmountDue")) if "AmountDue" in obj else None,
        voided=obj.get("Status") == "VOIDED",
        version=str(obj.get("UpdatedDateUTC", "")),
        updated_at=moment(obj.get("UpdatedDateUTC")),
        customer_id=contact,
        links=links,
        fees=fees,
        note=reference,
        words=_words(reference, obj.get("InvoiceNumber")),
        deposit_to=str((obj.get("Account") or obj.get("BankAccount") or {}).get("Code", "")),
        reference=reference.split(" · ", 1)[1] if " · " in reference else "",
        raw=obj,
    )


def newer_version(version: str, known: str | None) -> bool:
    """A Xero version is its UpdatedDateUTC (`/Date(ms+0000)/`): is `version` later than the one we hold?"""
    if not known:
        return True
    ours, theirs = moment(version), moment(known)
    return ours > theirs if ours and theirs else version != known


def _date(day: date) -> str:
    return f"DateTime({day.year}, {day.month:02d}, {day.day:02d})"


class XeroLedger:
    """One Xero organisation, read and explained through the export adapter's client (its limits, its retries)."""

    name, key, mapping_fields = NAME, KEY, MAPPING_FIELDS
    lookback: timedelta | None = None  # If-Modified-Since reaches any moment

    def __init__(self, adapter: XeroAdapter, reads: int = 0) -> None:
        self.adapter, self.reads = adapter, reads

    @staticmethod
    def normalise(name: str) -> str:
        """Xero holds contact names unique whatever their case and spacing."""
        return " ".join((name or "").split()).casefold()

    def object_name(self, kind: str) -> str:
        return {"refund": "CreditNote", "deposit": "BankTransaction"}.get(kind, REMOTE[kind][:-1])

    def explain(self, code: str, sent: dict[str, Any] | None = None) -> Problem:
        if code == "income_account":
            return Problem(
                code,
                "An invoice line books to another revenue account than Service Revenue",
                "Choose the revenue account in Xero → Field mapping, then run the test again.",
            )
        error = explain(PROBLEMS.get(code, [code]), sent or {})
        return Problem(error.code, error.reason, error.fix)

    def record(self, obj: dict[str, Any], kind: str) -> Record:
        if kind == "customer":
            return party(obj)
        if kind == "item":
            return product(obj)
        return txn(obj, kind, self.adapter.accounts.get(FEES_KEY, ""))

    async def _get(self, path: str, **params: str) -> dict[str, Any]:
        self.reads += 1
        return await self.adapter._call("GET", path, **params)

    async def _pages(self, kind: str, page_size: int = PAGE, **params: str) -> AsyncIterator[list[dict[str, Any]]]:
        resource = REMOTE[kind]
        if kind == "item":  # Xero pages neither items nor accounts
            yield list((await self._get(f"/{resource}", **params)).get(resource, []))
            return
        page = 1
        while True:
            rows = list(
                (await self._get(f"/{resource}", page=str(page), pageSize=str(page_size), **params)).get(resource, [])
            )
            yield rows
            if len(rows) < page_size:
                return
            page += 1

    async def _all(self, kind: str, **params: str) -> list[dict[str, Any]]:
        return [row async for rows in self._pages(kind, PAGE, **params) for row in rows]

    async def parties(self, *, others: bool = False) -> list[Party]:
        found = [party(o) for o in await self._all("customer", includeArchived="true")]
        return found if others else [p for p in found if p.kind == "customer"]

    async def products(self) -> list[Product]:
        return [product(o) for o in await self._all("item")]

    async def name_holder(self, name: str) -> Party | None:
        escaped = name.strip().replace('"', "")
        rows = (await self._get("/Contacts", where=f'Name=="{escaped}"')).get("Contacts", [])
        return party(rows[0]) if rows else None

    async def read(self, kind: str, remote_id: str) -> Record | None:
        resource = REMOTE[kind]
        try:
            rows = (await self._get(f"/{resource}/{remote_id}")).get(resource, [])
        except Rejected as e:
            if e.code == NOT_FOUND:
                return None
            raise
        if not rows or rows[0].get("Status") == "DELETED":
            return None
        return self.record(rows[0], kind)

    async def income_accounts(self, invoice: Txn) -> set[str]:
        return {str(line.get("AccountCode", "")) for line in invoice.raw.get("LineItems") or []}

    async def remove(self, kind: str, remote_id: str) -> None:
        """Take away what a test sync made: a payment deleted, an invoice voided, a contact archived."""
        operation = Operation.VOID if kind == "invoice" else Operation.DELETE
        item = PushItem(0, kind, 0, operation, None, 0, remote_id=remote_id)
        await self.adapter.push(item)

    async def changed_since(self, since: datetime, kinds: Iterable[str], limit: int = 1000) -> ChangePage:
        """Every object of these kinds whose UpdatedDateUTC is at or after `since` (If-Modified-Since), oldest first.
        Xero keeps no change log to run out of (lookback None); deletions are objects with Status DELETED."""
        started = datetime.now(UTC)
        header = since.isoformat()
        changes: list[tuple[datetime, int, Change]] = []
        for order, kind in enumerate(kinds):
            params = {"includeArchived": "true"} if kind == "customer" else {}
            async for rows in self._pages_since(kind, header, **params):
                changes += [(moment(o.get("UpdatedDateUTC")) or since, order, self._change(o, kind)) for o in rows]
                if len(changes) >= limit:
                    break
        changes.sort(key=lambda c: (c[0], c[1]))
        if len(changes) >= limit:
            kept = changes[:limit]
            return ChangePage([c[2] for c in kept], kept[-1][0], False)
        return ChangePage([c[2] for c in changes], started, True)

    def _change(self, obj: dict[str, Any], kind: str) -> Change:
        gone = obj.get("Status") == "DELETED"
        return Change(kind, str(obj.get(ID_FIELD[REMOTE[kind]], "")), None if gone else self.record(obj, kind))

    async def everything(self, kind: str, page_size: int = PAGE) -> AsyncIterator[ChangePage]:
        params = {"includeArchived": "true"} if kind == "customer" else {}
        if kind != "item":
            params["order"] = ID_FIELD[REMOTE[kind]]
        async for rows in self._pages(kind, page_size, **params):
            yield ChangePage([self._change(o, kind) for o in rows], datetime.now(UTC))

    async def _pages_since(self, kind: str, since: str, **params: str) -> AsyncIterator[list[dict[str, Any]]]:
        resource = REMOTE[kind]
        page = 1
        while True:
            self.reads += 1
            query = params | ({} if kind == "item" else {"page": str(page)})
            response = await self.adapter.client.request(
                "GET",
                f"/{resource}",
                bucket=self.adapter.tenant,
                params=query,
                headers={
                    "xero-tenant-id": self.adapter.tenant,
                    "Accept": "application/json",
                    "If-Modified-Since": since,
                },
                idempotent=True,
            )
            rows = list(response.json().get(resource, []))
            yield rows
            if kind == "item" or len(rows) < PAGE:
                return
            page += 1

    @staticmethod
    def _dated(kind: str, where: str) -> str:
        """Deposits are RECEIVE bank transactions; payments, customers' payments on invoices (a cash refund of a
        credit note is a payment too, read as the refund it settles)."""
        if kind == "deposit":
            return f'Type=="RECEIVE" AND {where}'
        return f'PaymentType=="ACCRECPAYMENT" AND {where}' if kind == "payment" else where

    async def _count(self, kind: str, where: str) -> int:
        reply = await self._get(f"/{REMOTE[kind]}", where=where, page="1", pageSize="1")
        return int((reply.get("pagination") or {}).get("itemCount", 0))

    async def count(self, kind: str, start: date, end: date) -> int:
        return await self._count(kind, self._dated(kind, f"Date>={_date(start)} AND Date<={_date(end)}"))

    async def _txns(self, kind: str, page_size: int, **params: str) -> AsyncIterator[list[Txn]]:
        async for rows in self._pages(kind, page_size, order=ID_FIELD[REMOTE[kind]], **params):
            yield [
                t for t in (self.record(o, kind) for o in rows if o.get("Status") != "DELETED") if isinstance(t, Txn)
            ]

    def month(self, kind: str, start: date, end: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._txns(kind, page_size, where=self._dated(kind, f"Date>={_date(start)} AND Date<={_date(end)}"))

    async def by_ids(self, kind: str, ids: Iterable[str], page_size: int = PAGE) -> AsyncIterator[Txn]:
        wanted = sorted(set(ids))
        for n in range(0, len(wanted), IDS_CHUNK):
            async for page in self._txns(kind, page_size, IDs=",".join(wanted[n : n + IDS_CHUNK])):
                for found in page:
                    yield found

    @staticmethod
    def _open(by: date) -> str:
        return f'Type=="ACCREC" AND Status=="AUTHORISED" AND Date<={_date(by)}'

    def open_invoices(self, by: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._txns("invoice", page_size, where=self._open(by))

    async def count_open_invoices(self, by: date) -> int:
        return await self._count("invoice", self._open(by))

    async def count_payments_after(self, day: date) -> int:
        return await self._count("payment", self._dated("payment", f"Date>{_date(day)}"))

    def payments_after(self, day: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._txns("payment", page_size, where=self._dated("payment", f"Date>{_date(day)}"))

    async def find_created(
        self, kind: str, key: str, *, customer_id: str = "", day: date | None = None
    ) -> list[Record]:
        escaped = str(key).strip().replace('"', "")
        if kind == "payment":
            where = f"Date=={_date(day)}" if day else ""
            rows = await self._all("payment", **({"where": where} if where else {}))
            return [
                self.record(p, kind)
                for p in rows
                if str(p.get("Reference", "")).split(" · ")[0] == key
                and (not customer_id or ((p.get("Invoice") or {}).get("Contact") or {}).get("ContactID") == customer_id)
            ]
        if kind == "invoice":
            rows = (await self._get("/Invoices", InvoiceNumbers=escaped)).get("Invoices", [])
        elif kind == "item":
            rows = [o for o in await self._all("item") if self.normalise(o.get("Name", "")) == self.normalise(key)]
        else:
            rows = (await self._get("/Contacts", where=f'Name=="{escaped}"')).get("Contacts", [])
        return [self.record(o, kind) for o in rows]


def open_ledger(connection: Any, client: Any, env: Any) -> XeroLedger:
    return XeroLedger(XeroAdapter(connection, client, env.settings))
