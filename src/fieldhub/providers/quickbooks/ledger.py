"""QuickBooks Online as an accounting `Ledger` (capabilities/accounting/protocol.py): QBO JSON → neutral records,
reads through the query language and Change Data Capture, and QBO's fault codes in plain words."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldhub.capabilities.accounting.protocol import (
    NOT_FOUND,
    Change,
    ChangePage,
    CursorTooOld,
    Link,
    Party,
    Problem,
    Product,
    Record,
    Txn,
)
from fieldhub.core.money import CENT, ZERO
from fieldhub.hub.errors import Rejected
from fieldhub.hub.sync.adapter import PushItem
from fieldhub.hub.sync.models import Operation
from fieldhub.providers.quickbooks.accounts import MAPPING_FIELDS
from fieldhub.providers.quickbooks.sync import REMOTE, QuickBooksAdapter, fault_error

KEY = "quickbooks"
NAME = "QuickBooks"
NAME_CONFLICT = "6240"  # the fault for a customer name another customer, vendor or employee has
NAME_RULE = "QuickBooks keeps one name across customers, vendors and employees"
PAGE = 1000  # QBO's largest MAXRESULTS
LOOKUP_CHUNK = 30  # ids per `WHERE Id IN (...)`
PACIFIC_OFFSET = "-08:00"
NAME_LISTS = ("Customer", "Vendor", "Employee")  # one name list in QBO across the three
IMPORTED_ITEM_TYPES = ("Service", "NonInventory", "Inventory")
# QBO has said ISO-3 country codes since late 2025; fieldhub keeps ISO-2.
COUNTRIES = {"USA": "US", "UNITED STATES": "US", "CAN": "CA", "CANADA": "CA", "GBR": "GB", "AUS": "AU", "NZL": "NZ"}
COUNTRIES |= {"IRL": "IE", "MEX": "MX", "IND": "IN"}
KIND_OF = {v: k for k, v in REMOTE.items()} | {"Vendor": "vendor", "Employee": "employee"}


# ----------------------------------------------------------------------------- QBO JSON → neutral records


def parse_time(value: Any) -> datetime | None:
    """`2026-11-21T12:00:00-08:00`, `…-0800` (classic webhooks), `…Z`, with or without fractions; aware UTC."""
    text = str(value or "").strip()
    if not text:
        return None
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text).replace("Z", "+00:00")
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # CloudEvents time has nanoseconds
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.fromisoformat("2000-01-01T00:00:00" + PACIFIC_OFFSET).tzinfo)
    return moment.astimezone(UTC)


def since_text(moment: datetime) -> str:
    """changedSince in UTC with an explicit offset (QBO reads a bare time as Pacific)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def money(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0)).quantize(CENT)
    except InvalidOperation:
        return ZERO


def day_of(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def quote(value: str) -> str:
    """A string literal for QBO's query language."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def updated_at(obj: dict[str, Any]) -> datetime | None:
    return parse_time((obj.get("MetaData") or {}).get("LastUpdatedTime"))


def is_void(obj: dict[str, Any]) -> bool:
    """QBO keeps a voided transaction with zero amounts; "Voided" is in its PrivateNote (anchors §3.10)."""
    if str(obj.get("TxnStatus", "")).lower() == "voided":
        return True
    return str(obj.get("PrivateNote") or "").startswith("Voided") and money(obj.get("TotalAmt")) == ZERO


def _country(value: Any) -> str | None:
    text = str(value or "").strip().upper()
    text = COUNTRIES.get(text, text)
    return text if len(text) == 2 and text.isalpha() else None


def customer_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A QBO Customer as fieldhub's customer fields; a country that isn't ISO-2 (or ISO-3 we know) is left out."""
    data: dict[str, Any] = {
        "display_name": str(obj.get("DisplayName") or "").strip(),
        "company": str(obj.get("CompanyName") or ""),
        "email": str((obj.get("PrimaryEmailAddr") or {}).get("Address") or "").strip(),
        "phone": str((obj.get("PrimaryPhone") or {}).get("FreeFormNumber") or ""),
        "active": obj.get("Active", True) not in (False, "false"),
    }
    for prefix, key in (("billing", "BillAddr"), ("service", "ShipAddr")):
        addr = obj.get(key) or {}
        data[f"{prefix}_line1"] = str(addr.get("Line1") or "")
        data[f"{prefix}_line2"] = str(addr.get("Line2") or "")
        data[f"{prefix}_city"] = str(addr.get("City") or "")
        data[f"{prefix}_region"] = str(addr.get("CountrySubDivisionCode") or "")
        data[f"{prefix}_postal_code"] = str(addr.get("PostalCode") or "")
        country = _country(addr.get("Country"))
        if country:
            data[f"{prefix}_country"] = country
    return data


def party(obj: dict[str, Any], entity: str = "Customer") -> Party:
    return Party(
        remote_id=str(obj.get("Id", "")),
        name=str(obj.get("DisplayName", "")),
        kind=KIND_OF.get(entity, entity.lower()),
        email=str((obj.get("PrimaryEmailAddr") or {}).get("Address", "")).strip(),
        version=str(obj.get("SyncToken", "")),
        active=obj.get("Active", True) not in (False, "false"),
        updated_at=updated_at(obj),
        fields=customer_fields(obj) if entity == "Customer" else {},
        raw=obj,
    )


def product(obj: dict[str, Any]) -> Product:
    price = money(obj.get("UnitPrice"))
    name = str(obj.get("Name", "")).strip()
    fields: dict[str, Any] = {
        "name": name,
        "sku": str(obj.get("Sku", "")),
        "description": str(obj.get("Description", "")),
        "unit_price": max(price, ZERO),
        "kind": "service" if obj.get("Type") == "Service" else "product",
        "taxable": bool(obj.get("Taxable", False)),
    }
    return Product(
        remote_id=str(obj.get("Id", "")),
        name=name,
        version=str(obj.get("SyncToken", "")),
        importable=obj.get("Type") in IMPORTED_ITEM_TYPES,
        updated_at=updated_at(obj),
        fields=fields,
        raw=obj,
    )


def _fee_lines(obj: dict[str, Any]) -> Decimal:
    """A Deposit's processor fees: its negative direct lines booked as fees (by account or wording)."""
    total = ZERO
    for line in obj.get("Line", []):
        if line.get("LinkedTxn"):
            continue
        amount = money(line.get("Amount"))
        account = (line.get("DepositLineDetail") or {}).get("AccountRef") or {}
        words = f"{line.get('Description', '')} {account.get('name', '')}".lower()
        if amount < ZERO and "fee" in words:
            total -= amount
    return total


def _words(obj: dict[str, Any]) -> frozenset[str]:
    """The words of its PrivateNote and DocNumber, where a marker or a payout id is found."""
    text = f"{obj.get('PrivateNote') or ''} {obj.get('DocNumber') or ''}"
    return frozenset(word.strip(".,;:()·") for word in text.split())


def txn(obj: dict[str, Any], entity: str) -> Txn:
    links = tuple(
        Link(str(link.get("TxnId")), money(line.get("Amount")), KIND_OF.get(str(link.get("TxnType")), ""))
        for line in obj.get("Line", [])
        for link in line.get("LinkedTxn", [])
        if link.get("TxnType")
    )
    return Txn(
        kind=KIND_OF.get(entity, entity.lower()),
        remote_id=str(obj.get("Id", "")),
        day=day_of(obj.get("TxnDate")),
        amount=money(obj.get("TotalAmt")),
        number=str(obj.get("DocNumber") or ""),
        balance=money(obj.get("Balance")) if "Balance" in obj else None,
        voided=is_void(obj),
        version=str(obj.get("SyncToken", "")),
        updated_at=updated_at(obj),
        customer_id=str((obj.get("CustomerRef") or {}).get("value", "")),
        links=links,
        fees=_fee_lines(obj) if entity == "Deposit" else ZERO,
        note=str(obj.get("PrivateNote") or ""),
        words=_words(obj),
        deposit_to=str((obj.get("DepositToAccountRef") or {}).get("value", "")),
        method=str((obj.get("PaymentMethodRef") or {}).get("name") or ""),
        reference=str(obj.get("PaymentRefNum") or ""),
        raw=obj,
    )


def newer_version(version: str, known: str | None) -> bool:
    """QuickBooks' SyncToken counts up with every change: is `version` later than the one we hold?"""
    if not known:
        return True
    if version.isdigit() and known.isdigit():
        return int(version) > int(known)
    return version != known


def _change(obj: dict[str, Any], entity: str) -> Change:
    gone = str(obj.get("status", "")).lower() == "deleted"
    return Change(KIND_OF[entity], str(obj.get("Id", "")), None if gone else record(obj, entity))


def record(obj: dict[str, Any], entity: str) -> Record:
    if entity in NAME_LISTS:
        return party(obj, entity)
    if entity == "Item":
        return product(obj)
    return txn(obj, entity)


def _between(start: date, end: date) -> str:
    return f"TxnDate >= '{start.isoformat()}' AND TxnDate <= '{end.isoformat()}'"


# ----------------------------------------------------------------------------- the ledger


class QuickBooksLedger:
    """One QuickBooks company, read and explained through the export adapter's client (its limits, its retries)."""

    name = NAME
    key = KEY
    mapping_fields = MAPPING_FIELDS
    lookback = timedelta(days=30)  # QBO refuses an older changedSince

    def __init__(self, adapter: QuickBooksAdapter) -> None:
        self.adapter = adapter
        self.reads = 0

    @staticmethod
    def normalise(name: str) -> str:
        """QuickBooks compares names ignoring case and runs of spaces."""
        return re.sub(r"\s+", " ", name or "").strip().casefold()

    def object_name(self, kind: str) -> str:
        return REMOTE[kind]

    def explain(self, code: str, sent: dict[str, Any] | None = None) -> Problem:
        if code == "income_account":
            fix = (
                "In QuickBooks, point the “Services” item at your Service Revenue account (or choose that account "
                "in the field mapping), then run the test again."
            )
            return Problem(code, "An invoice line books to another income account than Service Revenue", fix)
        error = fault_error({"code": code}, 400, "", sent or {})
        if isinstance(error, Rejected):
            return Problem(error.code, error.reason, error.fix)
        return Problem(code, error.reason or str(error), "")

    async def query(self, statement: str) -> dict[str, Any]:
        self.reads += 1
        return await self.adapter.query(statement)

    async def _rows(self, entity: str, where: str, page_size: int) -> AsyncIterator[tuple[list[Any], datetime]]:
        """A query's pages in id order (a page boundary must not move when something is created or deleted
        meanwhile), each with QuickBooks' time of the reply."""
        start, where = 1, f" WHERE {where}" if where else ""
        while True:
            statement = f"SELECT * FROM {entity}{where} ORDERBY Id STARTPOSITION {start} MAXRESULTS {page_size}"
            self.reads += 1
            reply = await self.adapter._call("GET", "query", query=statement)
            rows = [r for r in (reply.get("QueryResponse") or {}).get(entity) or [] if isinstance(r, dict)]
            yield rows, parse_time(reply.get("time")) or datetime.now(UTC)
            if len(rows) < page_size:
                return
            start += len(rows)

    async def _all(self, entity: str) -> list[dict[str, Any]]:
        return [o async for rows, _ in self._rows(entity, "", PAGE) for o in rows]

    async def _count(self, entity: str, where: str) -> int:
        return int((await self.query(f"SELECT COUNT(*) FROM {entity} WHERE {where}")).get("totalCount", 0))

    async def parties(self, *, others: bool = False) -> list[Party]:
        found = [party(o) for o in await self._all("Customer")]
        if others:
            for entity in NAME_LISTS[1:]:
                found += [party(o, entity) for o in await self._all(entity)]
        return found

    async def products(self) -> list[Product]:
        return [product(o) for o in await self._all("Item")]

    async def name_holder(self, name: str) -> Party | None:
        for entity in NAME_LISTS:
            found = (await self.query(f"SELECT * FROM {entity} WHERE DisplayName = {quote(name)}")).get(entity, [])
            if found:
                return party(found[0], entity)
        return None

    async def read(self, kind: str, remote_id: str) -> Record | None:
        entity = REMOTE[kind]
        self.reads += 1
        try:
            reply = await self.adapter._call("GET", f"{entity.lower()}/{remote_id}")
        except Rejected as e:
            if e.code in ("610", NOT_FOUND):
                return None
            raise
        obj = reply.get(entity)
        if not isinstance(obj, dict) or str(obj.get("status", "")).lower() == "deleted":
            return None
        return record(obj, entity)

    async def income_accounts(self, invoice: Txn) -> set[str]:
        """QBO books a sales line through its item: each line's item's IncomeAccountRef."""
        booked = set()
        for line in invoice.raw.get("Line", []):
            item_ref = ((line.get("SalesItemLineDetail") or {}).get("ItemRef") or {}).get("value")
            if item_ref:
                found = (await self.query(f"SELECT * FROM Item WHERE Id = {quote(str(item_ref))}")).get("Item", [])
                booked.add(str(((found[0] if found else {}).get("IncomeAccountRef") or {}).get("value", "")))
        return booked

    async def remove(self, kind: str, remote_id: str) -> None:
        item = PushItem(0, kind, 0, Operation.DELETE, None, 0, remote_id=remote_id)
        try:
            await self.adapter.push(item)
        except Rejected as e:
            if e.code == "610":  # Object Not Found
                raise Rejected(NOT_FOUND, e.reason, e.fix, status=e.status) from None
            raise

    async def changed_since(self, since: datetime, kinds: Iterable[str], limit: int = PAGE) -> ChangePage:
        """One Change Data Capture read (QBO keeps 30 days of changes and answers up to 1,000 objects)."""
        entities = [REMOTE[k] for k in kinds]
        self.reads += 1
        try:
            reply = await self.adapter._call("GET", "cdc", entities=",".join(entities), changedSince=since_text(since))
        except Rejected as e:
            if e.code == "2010" and "changedsince" in e.reason.lower():
                raise CursorTooOld(e.reason) from None
            raise
        changes: list[tuple[datetime, int, Change]] = []
        epoch = datetime.min.replace(tzinfo=UTC)
        for block in reply.get("CDCResponse") or []:
            for response in (block or {}).get("QueryResponse") or []:
                for entity in entities:
                    for obj in (response or {}).get(entity) or []:
                        if isinstance(obj, dict):
                            changes.append((updated_at(obj) or epoch, entities.index(entity), _change(obj, entity)))
        changes.sort(key=lambda c: (c[0], c[1]))
        if len(changes) < limit:
            return ChangePage([c[2] for c in changes], parse_time(reply.get("time")) or datetime.now(UTC))
        return ChangePage([c[2] for c in changes], max([since, *(c[0] for c in changes)]), complete=False)

    async def everything(self, kind: str, page_size: int = PAGE) -> AsyncIterator[ChangePage]:
        async for rows, at in self._rows(REMOTE[kind], "", page_size):
            yield ChangePage([_change(o, REMOTE[kind]) for o in rows], at)

    async def count(self, kind: str, start: date, end: date) -> int:
        return await self._count(REMOTE[kind], _between(start, end))

    async def _pages(self, entity: str, where: str, page_size: int) -> AsyncIterator[list[Txn]]:
        async for rows, _ in self._rows(entity, where, page_size):
            yield [txn(o, entity) for o in rows]

    def month(self, kind: str, start: date, end: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._pages(REMOTE[kind], _between(start, end), page_size)

    async def by_ids(self, kind: str, ids: Iterable[str], page_size: int = PAGE) -> AsyncIterator[Txn]:
        wanted = sorted(set(ids), key=lambda i: (len(i), i))
        for n in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = ", ".join(f"'{i}'" for i in wanted[n : n + LOOKUP_CHUNK])
            async for page in self._pages(REMOTE[kind], f"Id IN ({chunk})", page_size):
                for found in page:
                    yield found

    def open_invoices(self, by: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._pages("Invoice", f"TxnDate <= '{by.isoformat()}' AND Balance > '0'", page_size)

    def payments_after(self, day: date, page_size: int = PAGE) -> AsyncIterator[list[Txn]]:
        return self._pages("Payment", f"TxnDate > '{day.isoformat()}'", page_size)

    async def count_open_invoices(self, by: date) -> int:
        return await self._count("Invoice", f"TxnDate <= '{by.isoformat()}' AND Balance > '0'")

    async def count_payments_after(self, day: date) -> int:
        return await self._count("Payment", f"TxnDate > '{day.isoformat()}'")

    async def find_created(
        self, kind: str, key: str, *, customer_id: str = "", day: date | None = None
    ) -> list[Record]:
        entity = REMOTE[kind]
        if kind == "payment":
            statement = f"SELECT * FROM Payment WHERE CustomerRef = '{customer_id}' AND TxnDate = '{day}'"
            rows = (await self.query(statement)).get(entity, [])
            return [txn(p, entity) for p in rows if p.get("PrivateNote") == key]
        field = {"customer": "DisplayName", "item": "Name", "invoice": "DocNumber"}[kind]
        escaped = str(key).strip().replace("'", "\\'")
        rows = (await self.query(f"SELECT * FROM {entity} WHERE {field} = '{escaped}'")).get(entity, [])
        return [record(o, entity) for o in rows]


def open_ledger(connection: Any, client: Any, env: Any) -> QuickBooksLedger:
    return QuickBooksLedger(QuickBooksAdapter(connection, client, env.settings))
