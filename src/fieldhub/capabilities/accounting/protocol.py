"""The accounting capability's seam: the neutral records and the small `Ledger` protocol a ledger implements.

Everything true of any ledger (QuickBooks, Xero, FreshBooks, Wave) lives in capabilities/accounting/: the
import wizard and its dry run, the $1 test sync, the name-conflict fix, inbound apply, the monthly
reconciliation, the settings page. A ledger's folder (providers/<key>/) supplies only:

- `ledger.py` defining NAME (how pages name it: "QuickBooks"), NAME_CONFLICT (the error code of a refused
  duplicate customer name) with NAME_RULE (how it keeps names unique, in words), `newer_version(version,
  known) -> bool` (rule 6), and
  `open_ledger(connection, client, env) -> Ledger` (the object below, over the connection's `ProviderClient`
  from hub/sync/clients.client_for); plus, as today, `sync.py`'s export adapter (create_adapter, EXPORTS;
  the engine in hub/sync does batching, retries, idempotency and the ledger rows), `accounts.py`
  (MAPPING_FIELDS: the five accounts and the fee account, with the ledger's account types, and
  list_accounts), `hooks.py` (connect) and `webhooks.py` (verify, parse).
- pure mappers both ways: fieldhub records → the ledger's JSON (in sync.py's adapter), the ledger's JSON →
  the neutral records here (`Party`, `Product`, `Txn`).

The rules every implementation keeps (the contract test, tests/capabilities/accounting/test_ledger_contract.py,
runs each ledger against its emulator through the same cases):

1. **Records are neutral, the raw object rides along.** Every record carries `remote_id`, `version` (the
   ledger's concurrency token: QBO SyncToken, Xero's UpdatedDateUTC as text; "" when it has none),
   `updated_at` (aware UTC, the ledger's last-modified time; None when unknown) and `raw` (the object as
   read, for the sync history). Flows never look into `raw` for decisions.
2. **Money is Decimal, quantized to cents** (core.money.to_money); a voided transaction reads `voided=True`
   whatever amounts the ledger keeps on it (QBO zeroes them, Xero keeps them with status VOIDED); a deleted
   one is not returned by reads (`read` gives None) and is named in `ChangePage.deleted`.
3. **Dates are the ledger's transaction dates** (`date`, the business's books date, no time zone); times are
   aware UTC.
4. **Customer fields** (`Party.fields`) use fieldhub's Customer column names (display_name, company, email,
   phone, billing_* and service_* address parts, country as ISO-2 or absent when the ledger's value can't be
   read as one, active) and hold every field fieldhub sends, blank when the ledger has none: comparing them
   with the local customer tells whether an edit there changed anything we own. **Item fields**
   (`Product.fields`) likewise: name, sku, description, unit_price (≥ 0), kind ("service" | "product"),
   taxable.
5. **Kinds** are fieldhub's entity names: "customer", "item", "invoice", "payment", "refund", "deposit";
   name holders that are not customers (QBO vendors and employees, which share the customer name list) are
   `Party.kind` "vendor" / "employee".
6. **Reads are cheap to repeat and never write.** `changed_since(since)` returns changes oldest first, and
   `until`: the ledger's own time of the reply when it is complete (the next read starts a little before
   it), else the newest change's time (`complete=False`: the reply was capped at `limit`). Re-reading from
   an older moment returns changes again; the capability's apply is idempotent on (remote_id, version),
   and `newer_version` (a function in ledger.py) says whether a version is later than the one held. A
   change feed that reaches back only so far says so in `lookback` (QuickBooks: 30 days) and raises
   CursorTooOld past it; the capability then reads `everything` and reads back what it no longer lists.
   `month` pages are in a stable order (by id) so a page boundary does not move while the month is read.
7. **Natural keys find a create whose reply was lost** (`find_created`): customers by display name, items by
   name, invoices by number, payments by the marker fieldhub writes in the ledger's note
   ("fieldhub payment #12") among the customer's payments of that date; only objects created no earlier than
   the first send (less clock skew) count. Creates sent alone carry an idempotency key and need no look-up.
8. **Faults in plain words.** Every refusal reaches the engine as hub.errors (NeedsReauth, RetryLater,
   Rejected(code, reason, fix)); `explain(code, sent)` gives the reason and the fix a business owner can act
   on for a ledger's own error code, and for the capability's own codes: "income_account" (an invoice line
   books to another income account than the mapped Service Revenue: how to point it there). Code NOT_FOUND
   ("not_found") is how `remove` says the object is gone.
9. **Names compare as the ledger compares them** (`normalise`): QuickBooks ignores case and runs of spaces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from fieldhub.hub.connections.mapping import MappingField

KINDS = ("customer", "item", "invoice", "payment", "refund", "deposit")
TXN_KINDS = ("invoice", "payment", "refund", "deposit")
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Party:
    """A customer (or another holder of a customer name: vendor, employee) as the ledger has it."""

    remote_id: str
    name: str
    kind: str = "customer"
    email: str = ""
    version: str = ""
    active: bool = True
    updated_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def a_kind(self) -> str:
        return ("an " if self.kind[:1] in "aeiou" else "a ") + self.kind


@dataclass(frozen=True)
class Product:
    """An item (service or product) as the ledger has it; `importable` False for kinds fieldhub does not keep
    (QBO bundles and categories)."""

    remote_id: str
    name: str
    version: str = ""
    importable: bool = True
    updated_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Link:
    """What a payment applies to one invoice (or a deposit to one payment or refund)."""

    remote_id: str
    amount: Decimal
    kind: str = "invoice"


@dataclass(frozen=True)
class Txn:
    """An invoice, payment, refund or deposit as the ledger has it.

    `amount` is the total (a deposit's net), `balance` what is still open on an invoice, `links` a payment's
    invoices (and a deposit's payments), `fees` a deposit's processor fees (its negative fee lines), `words`
    the free text that may name fieldhub's marker or a payout id (note, number, descriptions), `accounts`
    the income accounts its lines book to (read only where the test sync checks it), `deposit_to` the account
    a payment landed in ("" when the ledger's default holding account).
    """

    kind: str
    remote_id: str
    day: date | None
    amount: Decimal
    number: str = ""
    balance: Decimal | None = None
    voided: bool = False
    version: str = ""
    updated_at: datetime | None = None
    customer_id: str = ""
    links: tuple[Link, ...] = ()
    fees: Decimal = Decimal("0.00")
    note: str = ""
    words: frozenset[str] = frozenset()
    deposit_to: str = ""
    method: str = ""  # payments: how it was paid, in the ledger's words ("Visa", "Check")
    reference: str = ""  # payments: the check or reference number
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


Record = Party | Product | Txn


@dataclass(frozen=True)
class Change:
    """One object changed in the ledger: the record as it is now, or `record=None` when it was deleted."""

    kind: str
    remote_id: str
    record: Record | None


@dataclass(frozen=True)
class ChangePage:
    changes: list[Change]
    until: datetime  # aware UTC: what this page covers (rule 6)
    complete: bool = True


class CursorTooOld(Exception):
    """The ledger's change feed no longer reaches back to the moment asked for (rule 6)."""


@dataclass(frozen=True)
class Problem:
    """A refusal in words a business owner can act on."""

    code: str
    reason: str
    fix: str


@runtime_checkable
class Ledger(Protocol):
    """One connected company in a ledger. Every method may raise hub.errors (NeedsReauth, RetryLater, Rejected)."""

    name: str  # "QuickBooks": said on pages, in history lines and in the CSV's column
    key: str  # the provider key
    mapping_fields: tuple[MappingField, ...]  # the accounts to map and the account types each may be
    reads: int  # requests made so far (the reconciliation says how many it took)
    lookback: timedelta | None  # how far back changed_since reaches; None when it has no limit

    def object_name(self, kind: str) -> str:
        """What the ledger calls a kind of record ("RefundReceipt" for a refund in QuickBooks), for messages."""
        ...

    def normalise(self, name: str) -> str:
        """The form under which the ledger compares names: two names are the same when these are (rule 9)."""
        ...

    def explain(self, code: str, sent: dict[str, Any] | None = None) -> Problem:
        """A ledger error code (and what was sent) → the reason and the fix in plain words (rule 8)."""
        ...

    async def parties(self, *, others: bool = False) -> list[Party]:
        """Every customer; with `others`, every other holder of a customer name too (vendors, employees)."""
        ...

    async def products(self) -> list[Product]:
        """Every item."""
        ...

    async def name_holder(self, name: str) -> Party | None:
        """Who uses this customer name (a customer first, then any other holder), or None."""
        ...

    async def read(self, kind: str, remote_id: str) -> Record | None:
        """One object as it is now; None once it is deleted."""
        ...

    async def income_accounts(self, invoice: Txn) -> set[str]:
        """The income accounts an invoice's lines book to (through their items where the ledger books that way)."""
        ...

    async def remove(self, kind: str, remote_id: str) -> None:
        """Take a record out of the books: a transaction deleted, a customer or item made inactive (ledgers keep
        names). Rejected with code NOT_FOUND when it is gone already."""
        ...

    async def changed_since(self, since: datetime, kinds: Iterable[str], limit: int) -> ChangePage:
        """Objects of these kinds changed since a moment, at most `limit` of them (rule 6)."""
        ...

    def everything(self, kind: str, page_size: int) -> AsyncIterator[ChangePage]:
        """Every object of a kind, a page at a time in id order, each page's `until` the ledger's time (rule 6)."""
        ...

    async def count(self, kind: str, start: date, end: date) -> int:
        """How many transactions of a kind are dated in [start, end] (for a progress bar)."""
        ...

    def month(self, kind: str, start: date, end: date, page_size: int) -> AsyncIterator[list[Txn]]:
        """Transactions of a kind dated in [start, end], a page at a time, in id order."""
        ...

    def by_ids(self, kind: str, ids: Iterable[str], page_size: int) -> AsyncIterator[Txn]:
        """Transactions by remote id (the ones not found are left out)."""
        ...

    def open_invoices(self, by: date, page_size: int) -> AsyncIterator[list[Txn]]:
        """Invoices dated on or before `by` with an open balance."""
        ...

    async def count_open_invoices(self, by: date) -> int:
        """How many `open_invoices(by)` will give."""
        ...

    async def count_payments_after(self, day: date) -> int:
        """How many `payments_after(day)` will give."""
        ...

    def payments_after(self, day: date, page_size: int) -> AsyncIterator[list[Txn]]:
        """Payments dated after `day`, with the invoices they apply to."""
        ...

    async def find_created(
        self, kind: str, key: str, *, customer_id: str = "", day: date | None = None
    ) -> list[Record]:
        """Natural-key look-up for a create whose reply was lost (rule 7): every object carrying the key (a
        payment's: its marker among `customer_id`'s payments dated `day`); the caller checks when each was made."""
        ...
