"""One emulated QuickBooks company: its objects, ids, SyncTokens, change log and business rules."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from fieldhub.providers.quickbooks.emulator.errors import (
    QBOFault,
    business,
    duplicate_name,
    not_found,
    qbo_date,
    qbo_time,
    required,
    stale,
    unsupported,
)
from fieldhub.providers.quickbooks.emulator.seed import CompanySeed

CENT = Decimal("0.01")
ENTITIES = {
    name.lower(): name
    for name in (
        "Customer",
        "Vendor",
        "Employee",
        "Item",
        "Invoice",
        "Payment",
        "Deposit",
        "RefundReceipt",
        "Account",
        "TaxCode",
        "TaxRate",
        "TaxAgency",
        "CompanyInfo",
        "Term",
    )
}
NAMES = ("Customer", "Vendor", "Employee")  # share one DisplayName namespace
LISTS = (*NAMES, "Item", "Account")  # inactivated, never deleted
DELETABLE = ("Invoice", "Payment", "Deposit", "RefundReceipt")
READ_ONLY_ENTITIES = ("TaxCode", "TaxRate", "TaxAgency", "CompanyInfo", "Term")
COMMON_READ_ONLY = {"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time"}
READ_ONLY = {
    "Customer": {"Balance", "BalanceWithJobs", "FullyQualifiedName"},
    "Vendor": {"Balance", "FullyQualifiedName"},
    "Employee": {"FullyQualifiedName"},
    "Item": {"FullyQualifiedName"},
    "Account": {"CurrentBalance", "CurrentBalanceWithSubAccounts", "FullyQualifiedName", "Classification"},
    "Invoice": {"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn"},
    "RefundReceipt": {"TotalAmt", "Balance", "HomeTotalAmt"},
    "Payment": {"UnappliedAmt"},
    "Deposit": {"TotalAmt", "HomeTotalAmt"},
}
CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
SUBTYPE_TYPE = {
    "Checking": "Bank",
    "Savings": "Bank",
    "UndepositedFunds": "Other Current Asset",
    "Inventory": "Other Current Asset",
    "ServiceFeeIncome": "Income",
    "SalesOfProductIncome": "Income",
    "DiscountsRefundsGiven": "Income",
    "BankCharges": "Expense",
    "SuppliesMaterialsCogs": "Cost of Goods Sold",
    "AccountsReceivable": "Accounts Receivable",
    "GlobalTaxPayable": "Other Current Liability",
}


@dataclass
class Change:
    """One create/update/delete/void/merge, for CDC and webhooks."""

    at: float
    entity: str
    id: str
    operation: str  # Create | Update | Delete | Void | Merge


@dataclass
class Settings:
    """Company preferences that change what the API accepts."""

    # QBO's docs state no API rule against $0 invoices; a company can opt in to refusing them for tests.
    refuse_zero_total_invoices: bool = False
    # "Warn if duplicate invoice number is used" (on by default in QBO): a duplicate DocNumber is 6140.
    duplicate_doc_number_check: bool = True


def money(value: Any, element: str = "Amount") -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise QBOFault("2010", "Request has invalid or unsupported property", f"Invalid {element}: {value!r}") from None
    if not amount.is_finite():
        raise QBOFault("2010", "Request has invalid or unsupported property", f"Invalid {element}: {value!r}")
    return amount


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _ref_value(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("value", "")).strip()
    return str(ref or "").strip()


def _norm_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class Company:
    """Objects are stored as the JSON QBO answers with (amounts as Decimal); every write goes through here."""

    def __init__(self, seed: CompanySeed, now: Callable[[], float]) -> None:
        self.seed = seed
        self.realm_id = seed.realm_id
        self.now = now
        self.settings = Settings()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITIES.values()}
        self.stamps: dict[tuple[str, str], float] = {}  # last change time, exact, for CDC
        self.tombstones: dict[str, dict[str, float]] = {}
        self.changes: list[Change] = []
        self.listeners: list[Callable[[Company, Change], None]] = []
        self._next_id = 100
        self._next_doc = 1001
        # (entity, DocNumber) -> ids that carried it: the duplicate check in O(1), not a scan of every
        # invoice per create (100,000 invoices would take hours). Entries are checked before use.
        self._docs: dict[tuple[str, str], set[str]] = {}
        created = now() - 90 * 86400
        for entity, rows in seed.objects.items():
            for row in rows:
                obj = copy.deepcopy(row)
                obj.setdefault("domain", "QBO")
                obj.setdefault("sparse", False)
                obj["SyncToken"] = "0"
                obj["MetaData"] = {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(created)}
                self.objects.setdefault(entity, {})[obj["Id"]] = obj
                self.stamps[(entity, obj["Id"])] = created
                self._index_doc(entity, obj)
        for customer in self.objects["Customer"].values():
            customer.setdefault("FullyQualifiedName", customer["DisplayName"])
        self.objects["CompanyInfo"] = {self.realm_id: self._company_info(created)}

    def __getstate__(self) -> dict[str, Any]:
        # The clock and the webhook listeners belong to the running emulator, which re-attaches them.
        return {k: v for k, v in self.__dict__.items() if k not in ("now", "listeners")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.listeners = []

    # --- facts about the company ----------------------------------------------------------------
    @property
    def is_us(self) -> bool:
        return self.seed.country in ("US", "USA")

    def today(self) -> str:
        """The date in the company's own time zone (CompanyInfo.DefaultTimeZone), which dates its transactions."""
        return datetime.fromtimestamp(self.now(), ZoneInfo(self.seed.time_zone)).date().isoformat()

    def _company_info(self, created: float) -> dict[str, Any]:
        s = self.seed
        addr = {"Id": "1", **s.address, "Country": s.country}
        return {
            "Id": self.realm_id,
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CompanyName": s.name,
            "LegalName": s.name,
            "CompanyAddr": addr,
            "CustomerCommunicationAddr": addr,
            "LegalAddr": addr,
            "CompanyEmailAddr": {"Address": s.email},
            "Email": {"Address": s.email},
            "PrimaryPhone": {"FreeFormNumber": "(512) 555-0100" if self.is_us else "(416) 555-0100"},
            "CompanyStartDate": qbo_date(created),
            "FiscalYearStartMonth": "January",
            "Country": s.country,
            "SupportedLanguages": "en",
            "DefaultTimeZone": s.time_zone,
            "NameValue": [
                {"Name": "NeoEnabled", "Value": "true"},
                {"Name": "IsQbdtMigrated", "Value": "false"},
                {"Name": "CompanyType", "Value": "Other"},
                {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                {"Name": "PayrollFeature", "Value": "false"},
                {"Name": "ItemCategoriesFeature", "Value": "false"},
            ],
            "MetaData": {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(created)},
        }

    # --- reading --------------------------------------------------------------------------------
    def get(self, entity: str, object_id: str) -> dict[str, Any] | None:
        return self.objects.get(entity, {}).get(object_id)

    def read(self, entity: str, object_id: str) -> dict[str, Any]:
        obj = self.get(entity, object_id)
        if obj is None:
            raise not_found(f"Object Not Found : {entity} {object_id} was not found.")
        return obj

    def account_named(self, subtype: str) -> dict[str, Any]:
        return next(a for a in self.objects["Account"].values() if a.get("AccountSubType") == subtype)

    # --- writing: the four operations -----------------------------------------------------------
    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        self._writable(entity)
        obj = self._clean(entity, body)
        obj["Id"] = self._new_id()
        self._prepare(entity, obj, None)
        return self._commit(entity, obj, None, "Create")

    def update(self, entity: str, body: dict[str, Any], *, bookkeeper: bool = False) -> dict[str, Any]:
        """Full update (omitted writable fields are cleared) or sparse (`"sparse": true`, omitted fields kept)."""
        self._writable(entity)
        old = self._existing(entity, body, bookkeeper=bookkeeper)
        if body.get("sparse") in (True, "true"):
            obj = {k: copy.deepcopy(v) for k, v in old.items() if k not in self._read_only(entity)}
            obj.update(self._clean(entity, body))
        else:
            obj = self._clean(entity, body)
        obj["Id"] = old["Id"]
        if entity in NAMES and old.get("DisplayName") and not str(obj.get("DisplayName", "")).strip():
            obj["DisplayName"] = old["DisplayName"]  # a name cannot be removed, only changed
        self._prepare(entity, obj, old)
        return self._commit(entity, obj, old, "Update")

    def delete(self, entity: str, body: dict[str, Any], *, bookkeeper: bool = False) -> dict[str, Any]:
        if entity not in DELETABLE:
            if entity in LISTS:
                raise unsupported(f"Operation Delete is not supported for {entity}; make it inactive (Active=false).")
            raise unsupported(f"Operation Delete is not supported for {entity}.")
        old = self._existing(entity, body, bookkeeper=bookkeeper)
        self._guard_deposited(entity, old)
        if entity == "Invoice":
            self._unlink_payments(old["Id"])
        del self.objects[entity][old["Id"]]
        now = self.now()
        self.stamps.pop((entity, old["Id"]), None)
        self.tombstones.setdefault(entity, {})[old["Id"]] = now
        self._record(entity, old["Id"], "Delete", now)
        self._settle()
        return {"Id": old["Id"], "status": "Deleted", "domain": "QBO"}

    def void(self, entity: str, body: dict[str, Any], *, bookkeeper: bool = False) -> dict[str, Any]:
        if entity not in ("Invoice", "Payment", "RefundReceipt"):
            raise unsupported(f"Operation Void is not supported for {entity}.")
        old = self._existing(entity, body, bookkeeper=bookkeeper)
        self._guard_deposited(entity, old)
        obj = copy.deepcopy(old)
        if entity == "Invoice":
            self._unlink_payments(old["Id"])
        for line in obj.get("Line", []):
            line["Amount"] = Decimal("0")
            for detail in ("SalesItemLineDetail", "DiscountLineDetail"):
                if detail in line and "Qty" in line[detail]:
                    line[detail]["Qty"] = Decimal("0")
        if "TxnTaxDetail" in obj:
            obj["TxnTaxDetail"] = {"TotalTax": Decimal("0")}
        obj["TotalAmt"] = Decimal("0")
        if entity == "Payment":
            obj["UnappliedAmt"] = Decimal("0")
        if entity in ("Invoice", "RefundReceipt"):
            obj["Balance"] = Decimal("0")
            obj["LinkedTxn"] = []
        obj["PrivateNote"] = "Voided"
        obj["TxnStatus"] = "Voided"
        return self._commit(entity, obj, old, "Void")

    # --- write plumbing -------------------------------------------------------------------------
    def _writable(self, entity: str) -> None:
        if entity in READ_ONLY_ENTITIES:
            raise unsupported(f"Operation Create/Update is not supported for {entity} through this endpoint.")

    def _read_only(self, entity: str) -> set[str]:
        return COMMON_READ_ONLY | READ_ONLY.get(entity, set())

    def _clean(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in body.items() if k not in self._read_only(entity)}

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _existing(self, entity: str, body: dict[str, Any], *, bookkeeper: bool) -> dict[str, Any]:
        object_id = str(body.get("Id", "")).strip()
        if not object_id:
            raise required("Id")
        old = self.get(entity, object_id)
        if old is None:
            raise not_found(f"Object Not Found : {entity} {object_id} was not found or was deleted.")
        if not bookkeeper:
            if "SyncToken" not in body or str(body["SyncToken"]).strip() == "":
                raise required("SyncToken")
            if str(body["SyncToken"]) != old["SyncToken"]:
                raise stale(entity, object_id)
        return old

    def _commit(self, entity: str, obj: dict[str, Any], old: dict[str, Any] | None, op: str) -> dict[str, Any]:
        now = self.now()
        obj["domain"] = "QBO"
        obj["sparse"] = False
        obj["SyncToken"] = "0" if old is None else str(int(old["SyncToken"]) + 1)
        created = old["MetaData"]["CreateTime"] if old else qbo_time(now)
        obj["MetaData"] = {"CreateTime": created, "LastUpdatedTime": qbo_time(now)}
        obj.pop("status", None)
        self.objects[entity][obj["Id"]] = obj
        self._index_doc(entity, obj)
        self.stamps[(entity, obj["Id"])] = now
        self._record(entity, obj["Id"], op, now)
        if old is None and entity == "Invoice":
            self._settle_new_invoice(obj)
        elif old is None and entity == "Payment":
            self._settle_new_payment(obj)
        else:
            self._settle()
        return self.objects[entity][obj["Id"]]

    def _record(self, entity: str, object_id: str, op: str, now: float) -> None:
        change = Change(now, entity, object_id, op)
        self.changes.append(change)
        for listener in self.listeners:
            listener(self, change)

    def _touch(self, entity: str, obj: dict[str, Any]) -> None:
        """A side effect changed an object (a payment applied to an invoice): new SyncToken, an Update event."""
        now = self.now()
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"]["LastUpdatedTime"] = qbo_time(now)
        self.stamps[(entity, obj["Id"])] = now
        self._record(entity, obj["Id"], "Update", now)

    # --- references -----------------------------------------------------------------------------
    def _ref(
        self, holder: dict[str, Any], key: str, entity: str, *, element: str = "", need: bool = True
    ) -> dict[str, Any] | None:
        """The object a `{"value": id}` reference names; 2020 when missing, 610 when unknown or inactive."""
        element = element or key
        value = _ref_value(holder.get(key))
        if not value:
            if need:
                raise required(element)
            return None
        target = self.get(entity, value)
        if target is None or target.get("Active") is False:
            what = "has been made inactive" if target is not None else "does not exist"
            hint = " Check the fields with accounts." if entity == "Account" else ""
            raise not_found(
                f"Object Not Found : Something you're trying to use {what}: {entity} {value}.{hint}", element
            )
        label = target.get("DisplayName") or target.get("Name") or target.get("FullyQualifiedName")
        holder[key] = {"value": value, **({"name": label} if label else {})}
        return target

    # --- business rules per entity --------------------------------------------------------------
    def _prepare(self, entity: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if entity in NAMES:
            self._prepare_name(entity, obj, old)
        elif entity == "Item":
            self._prepare_item(obj)
        elif entity == "Account":
            self._prepare_account(obj)
        elif entity == "Invoice":
            self._prepare_invoice(obj, old)
        elif entity == "RefundReceipt":
            self._prepare_refund(obj, old)
        elif entity == "Payment":
            self._prepare_payment(obj, old)
        elif entity == "Deposit":
            self._prepare_deposit(obj, old)

    def _prepare_name(self, entity: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        parts = [str(obj.get(k, "")).strip() for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
        display = str(obj.get("DisplayName", "")).strip()
        if not display:
            display = " ".join(p for p in parts if p)
        if not display:
            raise required("DisplayName")
        if entity == "Employee" and old is None and not (obj.get("GivenName") or obj.get("FamilyName")):
            raise required("GivenName")
        if ":" in display:
            raise QBOFault(
                "2040", "Invalid String", f"Invalid character : in DisplayName {display}", element="DisplayName"
            )
        if len(display) > 500:
            raise QBOFault(
                "2050", "Invalid String Length", f"Min: 1, Max: 500, Supplied length: {len(display)}", "DisplayName"
            )
        if obj.get("Active") is False and not display.endswith("(deleted)"):
            display = f"{display} (deleted)"  # QBO renames what it inactivates, which frees the name
        wanted = _norm_name(display)
        for kind in NAMES:
            for other in self.objects[kind].values():
                if (kind, other["Id"]) != (entity, obj["Id"]) and _norm_name(other.get("DisplayName", "")) == wanted:
                    raise duplicate_name(kind.lower(), other["Id"])
        obj["DisplayName"] = display
        obj.setdefault("PrintOnCheckName", display)
        obj["Active"] = obj.get("Active", True) is not False
        if entity in ("Customer", "Vendor"):
            obj["FullyQualifiedName"] = display
            obj["Balance"] = old.get("Balance", Decimal("0")) if old else Decimal("0")
        if entity == "Customer":
            obj["BalanceWithJobs"] = obj["Balance"]
            obj.setdefault("Taxable", self.is_us)
            if "DefaultTaxCodeRef" in obj:
                self._ref(obj, "DefaultTaxCodeRef", "TaxCode")
            if "SalesTermRef" in obj:
                self._ref(obj, "SalesTermRef", "Term")

    def _prepare_item(self, obj: dict[str, Any]) -> None:
        name = str(obj.get("Name", "")).strip()
        if not name:
            raise required("Name")
        if ":" in name:
            raise QBOFault("2040", "Invalid String", f"Invalid character : in Name {name}", element="Name")
        if len(name) > 100:
            raise QBOFault("2050", "Invalid String Length", f"Min: 1, Max: 100, Supplied length: {len(name)}", "Name")
        for other in self.objects["Item"].values():
            if other["Id"] != obj["Id"] and _norm_name(other["Name"]) == _norm_name(name):
                raise QBOFault(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another product or service is already using this name. "
                    f"Please use a different name. The item ID is : {other['Id']}",
                )
        kind = obj.get("Type")
        if not kind:
            raise required("Type")
        if kind not in ("Service", "NonInventory", "Inventory", "Category"):
            raise business(f"Items of Type {kind} cannot be created or changed through the API.", "Type")
        if kind in ("Service", "NonInventory", "Inventory"):
            self._ref(obj, "IncomeAccountRef", "Account")
        if kind == "Inventory":
            for key in ("QtyOnHand", "InvStartDate"):
                if obj.get(key) in (None, ""):
                    raise required(key)
            self._ref(obj, "AssetAccountRef", "Account")
            self._ref(obj, "ExpenseAccountRef", "Account")
            obj["TrackQtyOnHand"] = True
        elif "ExpenseAccountRef" in obj:
            self._ref(obj, "ExpenseAccountRef", "Account")
        for key in ("UnitPrice", "PurchaseCost", "QtyOnHand"):
            if key in obj:
                obj[key] = money(obj[key], key)
        obj["Name"] = name
        obj["FullyQualifiedName"] = name
        obj["Active"] = obj.get("Active", True) is not False
        obj.setdefault("Taxable", self.is_us)

    def _prepare_account(self, obj: dict[str, Any]) -> None:
        name = str(obj.get("Name", "")).strip()
        if not name:
            raise required("Name")
        if ":" in name or '"' in name:
            raise QBOFault("2040", "Invalid String", f"Invalid character in Name {name}", element="Name")
        for other in self.objects["Account"].values():
            if other["Id"] != obj["Id"] and _norm_name(other["Name"]) == _norm_name(name):
                raise QBOFault(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another account is already using this name. "
                    f"The account ID is : {other['Id']}",
                )
        kind, subtype = obj.get("AccountType"), obj.get("AccountSubType")
        if not kind and subtype in SUBTYPE_TYPE:
            kind = SUBTYPE_TYPE[subtype]
        if kind not in CLASSIFICATION:
            raise QBOFault(
                "6010",
                "Invalid Account.AccountType && Account.SubType",
                "Business Validation Error: You must select an account type or detail type.",
                element="AccountType",
            )
        obj.update(
            Name=name,
            FullyQualifiedName=name,
            AccountType=kind,
            Classification=CLASSIFICATION[kind],
            Active=obj.get("Active", True) is not False,
            SubAccount=bool(obj.get("ParentRef")),
            CurrentBalance=Decimal("0"),
            CurrentBalanceWithSubAccounts=Decimal("0"),
        )

    # --- sales transactions: lines, discount, tax, totals ---------------------------------------
    def _prepare_invoice(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        customer = self._ref(obj, "CustomerRef", "Customer")
        assert customer is not None
        obj.setdefault("TxnDate", self.today())
        term = self._terms(obj, customer)
        if "DueDate" not in obj:
            days = int(term.get("DueDays", 0))
            obj["DueDate"] = (date.fromisoformat(obj["TxnDate"][:10]) + timedelta(days=days)).isoformat()
        self._doc_number(obj, "Invoice")
        if "BillAddr" not in obj and customer.get("BillAddr"):
            obj["BillAddr"] = copy.deepcopy(customer["BillAddr"])
        if "BillEmail" not in obj and customer.get("PrimaryEmailAddr"):
            obj["BillEmail"] = copy.deepcopy(customer["PrimaryEmailAddr"])
        self._sales_lines(obj, old, customer)
        if self.settings.refuse_zero_total_invoices and obj["TotalAmt"] == 0:
            raise business("An invoice must have a total greater than zero.", "TotalAmt")
        # No payment can point at an invoice being created; an update sums what is applied to it.
        obj["Balance"] = obj["TotalAmt"] - (self._applied_to(obj["Id"]) if old else Decimal("0"))
        if obj["Balance"] < 0:
            raise business("This invoice already has payments larger than its new total.", "TotalAmt")
        obj["LinkedTxn"] = old.get("LinkedTxn", []) if old else []
        obj.setdefault("EmailStatus", "NotSet")
        obj.setdefault("PrintStatus", "NotSet")
        obj.setdefault("CurrencyRef", self._currency())

    def _terms(self, obj: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
        """The invoice's terms: its own SalesTermRef, else the customer's, else the company's default
        (Net 30, QBO's preference for new companies); the invoice records which it got."""
        term = self._ref(obj, "SalesTermRef", "Term", need=False)
        if term is None:
            wanted = _ref_value(customer.get("SalesTermRef")) or self.seed.default_term
            term = self.get("Term", wanted) or self.objects["Term"][self.seed.default_term]
            obj["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
        return term

    def _prepare_refund(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        customer = self._ref(obj, "CustomerRef", "Customer", need=False)
        account = self._ref(obj, "DepositToAccountRef", "Account")
        assert account is not None
        if account.get("AccountType") not in ("Bank", "Other Current Asset"):
            raise business("Select a bank or other current asset account to refund from.", "DepositToAccountRef")
        obj.setdefault("TxnDate", self.today())
        self._doc_number(obj, "RefundReceipt")
        if "PaymentMethodRef" in obj and not _ref_value(obj["PaymentMethodRef"]):
            del obj["PaymentMethodRef"]
        self._sales_lines(obj, old, customer)
        obj["Balance"] = Decimal("0")
        obj.setdefault("CurrencyRef", self._currency())

    def _currency(self) -> dict[str, str]:
        names = {"USD": "United States Dollar", "CAD": "Canadian Dollar"}
        return {"value": self.seed.currency, "name": names.get(self.seed.currency, self.seed.currency)}

    def _doc_number(self, obj: dict[str, Any], entity: str) -> None:
        number = str(obj.get("DocNumber") or "").strip()
        if not number:
            number = str(self._next_doc)
            self._next_doc += 1
        if len(number) > 21:
            raise QBOFault(
                "2050", "Invalid String Length", f"Min: 0, Max: 21, Supplied length: {len(number)}", "DocNumber"
            )
        if self.settings.duplicate_doc_number_check:
            for other_id in sorted(self._docs.get((entity, number), ())):
                other = self.objects[entity].get(other_id)
                if other is not None and other_id != obj["Id"] and other.get("DocNumber") == number:
                    raise QBOFault(
                        "6140",
                        "Duplicate Document Number Error",
                        f"Duplicate Document Number Error : You must specify a different number. "
                        f"This number has already been used. DocNumber={number} is assigned to "
                        f"TxnType={entity} with TxnId={other_id}",
                        element="DocNumber",
                    )
        obj["DocNumber"] = number

    def _index_doc(self, entity: str, obj: dict[str, Any]) -> None:
        number = obj.get("DocNumber")
        if number:
            self._docs.setdefault((entity, str(number)), set()).add(str(obj["Id"]))

    def _sales_lines(self, obj: dict[str, Any], old: dict[str, Any] | None, customer: dict[str, Any] | None) -> None:
        lines = obj.get("Line")
        if not isinstance(lines, list) or not any(
            isinstance(line, dict) and line.get("DetailType") in ("SalesItemLineDetail", "GroupLineDetail")
            for line in lines
        ):
            raise required("Line")
        mode = obj.get("GlobalTaxCalculation") or ("TaxExcluded" if not self.is_us else None)
        if self.is_us:
            obj.pop("GlobalTaxCalculation", None)
        elif mode not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
            raise QBOFault("2010", "Request has invalid or unsupported property", f"GlobalTaxCalculation {mode}")
        else:
            obj["GlobalTaxCalculation"] = mode
        old_ids = {line.get("Id") for line in (old or {}).get("Line", []) if line.get("Id")}
        next_line = max([int(i) for i in old_ids if str(i).isdigit()] or [0]) + 1
        out: list[dict[str, Any]] = []
        discount: dict[str, Any] | None = None
        subtotal = Decimal("0")
        net_by_code: dict[str, Decimal] = {}
        for raw in lines:
            if not isinstance(raw, dict):
                raise required("Line")
            line = copy.deepcopy(raw)
            kind = line.get("DetailType")
            if kind == "SubTotalLineDetail":
                continue  # recomputed below, as QBO does
            if kind not in ("SalesItemLineDetail", "DiscountLineDetail", "DescriptionOnly"):
                if not kind:
                    raise required("Line.DetailType")
                raise business(f"Line DetailType {kind} is not supported on this transaction.", "Line.DetailType")
            if str(line.get("Id", "")) not in old_ids:
                line["Id"] = str(next_line)
                next_line += 1
            if kind == "DiscountLineDetail":
                if discount is not None:
                    raise business("Only one discount line is allowed.", "Line")
                discount = line
                continue
            if kind == "DescriptionOnly":
                line["Amount"] = Decimal("0")
                line.setdefault("DescriptionLineDetail", {})
                out.append(line)
                continue
            detail = line.setdefault("SalesItemLineDetail", {})
            item = self._ref(detail, "ItemRef", "Item", element="Line.SalesItemLineDetail.ItemRef")
            assert item is not None
            if "Amount" not in line:
                raise required("Line.Amount")
            amount = money(line["Amount"], "Line.Amount")
            qty = money(detail["Qty"], "Qty") if "Qty" in detail else None
            price = money(detail["UnitPrice"], "UnitPrice") if "UnitPrice" in detail else None
            # A zero Qty is no quantity: python-quickbooks sends Qty 0 and UnitPrice 0 with every line it
            # builds (its README's invoice does), and QBO takes the Amount.
            if qty and price is not None and cents(qty * price) != cents(amount):
                raise QBOFault(
                    "6070",
                    "Amount calculation incorrect",
                    f"Amount calculation incorrect : Amount {amount} is not equal to UnitPrice {price} * Qty {qty}",
                    element="Line.Amount",
                )
            if qty is not None:
                detail["Qty"] = qty
            if price is not None:
                detail["UnitPrice"] = price
            elif qty:
                detail["UnitPrice"] = amount / qty
            tax_inclusive = detail.get("TaxInclusiveAmt")
            code = self._line_tax_code(detail, item, customer, mode)
            if mode == "TaxInclusive" and tax_inclusive is not None and code:
                rate = sum((r["RateValue"] for r in self._rates(code)), Decimal("0"))
                amount = cents(money(tax_inclusive, "TaxInclusiveAmt") / (1 + rate / 100))
            line["Amount"] = cents(amount)
            subtotal += line["Amount"]
            if code and code != "NON":
                net_by_code[code] = net_by_code.get(code, Decimal("0")) + line["Amount"]
            out.append(line)
        for number, line in enumerate(out, start=1):
            line["LineNum"] = number
        out.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        discount_amount = Decimal("0")
        if discount is not None:
            discount_amount = self._discount(discount, subtotal)
            out.append(discount)
        obj["Line"] = out
        tax = self._tax(obj, net_by_code, subtotal, discount_amount, mode)
        obj["TotalAmt"] = cents(subtotal - discount_amount + tax)

    def _discount(self, line: dict[str, Any], subtotal: Decimal) -> Decimal:
        detail = line.setdefault("DiscountLineDetail", {})
        if detail.get("PercentBased") in (True, "true"):
            if "DiscountPercent" not in detail:
                raise QBOFault("6090", "Invalid Discount", "Discount requires an amount or a percent", "Line")
            percent = money(detail["DiscountPercent"], "DiscountPercent")
            detail["DiscountPercent"] = percent
            amount = cents(subtotal * percent / 100)
        elif "Amount" in line:
            amount = cents(money(line["Amount"], "Line.Amount"))
            detail["PercentBased"] = False
        else:
            raise QBOFault("6090", "Invalid Discount", "Discount requires an amount or a percent", "Line")
        if amount < 0 or amount > subtotal:
            raise business("The discount cannot be negative or larger than the subtotal.", "Line.Amount")
        if not _ref_value(detail.get("DiscountAccountRef")):
            detail["DiscountAccountRef"] = {"value": self.account_named("DiscountsRefundsGiven")["Id"]}
        self._ref(detail, "DiscountAccountRef", "Account", element="Line.DiscountLineDetail.DiscountAccountRef")
        line["Amount"] = amount
        return amount

    def _line_tax_code(
        self, detail: dict[str, Any], item: dict[str, Any], customer: dict[str, Any] | None, mode: str | None
    ) -> str:
        """The line's tax code id: US lines say TAX or NON; other countries name a rate code on every line."""
        value = _ref_value(detail.get("TaxCodeRef"))
        if self.is_us:
            if not value:
                taxable = item.get("Taxable", True) and (customer or {}).get("Taxable", True)
                value = "TAX" if taxable else "NON"
            if value not in ("TAX", "NON"):
                raise QBOFault(
                    "6100",
                    "Invalid Tax Code",
                    f"Business Validation Error: Valid Line TaxCodes for US should be TAX or NON, not {value}. "
                    "Invalid tax rate.",
                    element="Line.SalesItemLineDetail.TaxCodeRef",
                )
            detail["TaxCodeRef"] = {"value": value}
            return value
        if mode == "NotApplicable":
            detail.pop("TaxCodeRef", None)
            return ""
        if not value:
            raise business(
                "Make sure all your transactions have a GST/HST rate before you save.",
                "Line.SalesItemLineDetail.TaxCodeRef",
            )
        code = self.get("TaxCode", value)
        if code is None or not code.get("Active", True):
            raise business(
                f"Invalid tax rate: tax code {value} is not set up in this company.",
                "Line.SalesItemLineDetail.TaxCodeRef",
            )
        detail["TaxCodeRef"] = {"value": value}
        return value

    def _rates(self, code_id: str) -> list[dict[str, Any]]:
        code = self.get("TaxCode", code_id)
        if code is None:
            return []
        details = code.get("SalesTaxRateList", {}).get("TaxRateDetail", [])
        return [r for d in details if (r := self.get("TaxRate", _ref_value(d.get("TaxRateRef")))) is not None]

    def _tax(
        self, obj: dict[str, Any], net_by_code: dict[str, Decimal], subtotal: Decimal, discount: Decimal, mode: Any
    ) -> Decimal:
        given = obj.get("TxnTaxDetail") or {}
        if mode == "NotApplicable":
            if given.get("TaxLine") or given.get("TxnTaxCodeRef"):
                raise QBOFault(
                    "6170",
                    "Invalid TxnTaxDetail",
                    "Business Validation Error: TxnTaxDetail is not allowed when GlobalTaxCalculation is NotApplicable",
                    element="TxnTaxDetail",
                )
            obj.pop("TxnTaxDetail", None)
            return Decimal("0")
        # Rate id -> taxable net amount. A discount reduces every code's base in proportion.
        share = (subtotal - discount) / subtotal if subtotal else Decimal("1")
        bases: dict[str, Decimal] = {}
        result: dict[str, Any] = {}
        if self.is_us:
            code_id = _ref_value(given.get("TxnTaxCodeRef")) or self.seed.default_tax_code
            if self.get("TaxCode", code_id) is None or code_id in ("TAX", "NON"):
                raise business(
                    f"Invalid tax rate: TxnTaxCodeRef {code_id} is not a sales tax code of this company.",
                    "TxnTaxDetail.TxnTaxCodeRef",
                )
            result["TxnTaxCodeRef"] = {"value": code_id}
            base = net_by_code.get("TAX", Decimal("0"))
            if obj.get("ApplyTaxAfterDiscount") in (True, "true"):
                base = cents(base * share)
            for rate in self._rates(code_id):
                bases[rate["Id"]] = bases.get(rate["Id"], Decimal("0")) + base
        else:
            for code_id, net in net_by_code.items():
                for rate in self._rates(code_id):
                    bases[rate["Id"]] = bases.get(rate["Id"], Decimal("0")) + cents(net * share)
        lines: list[dict[str, Any]] = []
        total = Decimal("0")
        for rate_id, base in bases.items():
            rate = self.objects["TaxRate"][rate_id]
            amount = cents(base * rate["RateValue"] / 100)
            total += amount
            lines.append(
                {
                    "Amount": amount,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": rate["RateValue"],
                        "NetAmountTaxable": base,
                    },
                }
            )
        if self.is_us and "TotalTax" in given and _ref_value(given.get("TxnTaxCodeRef")):
            # Automated sales tax is overridden only by a code and an amount together (anchors §3.6).
            override = cents(money(given["TotalTax"], "TotalTax"))
            if lines:
                lines[0]["TaxLineDetail"]["OverrideDeltaAmount"] = override - total
            total = override
        result["TotalTax"] = total
        result["TaxLine"] = lines
        obj["TxnTaxDetail"] = result
        return total

    # --- payments and deposits ------------------------------------------------------------------
    def _applied_to(self, invoice_id: str, *, excluding: str = "") -> Decimal:
        total = Decimal("0")
        for payment in self.objects["Payment"].values():
            if payment["Id"] == excluding:
                continue
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if link.get("TxnType") == "Invoice" and str(link.get("TxnId")) == invoice_id:
                        total += line["Amount"]
        return total

    def _deposited(self, kind: str = "Payment") -> dict[str, str]:
        """Payment (or RefundReceipt) id -> the deposit that moved it out of Undeposited Funds."""
        found: dict[str, str] = {}
        for deposit in self.objects["Deposit"].values():
            for line in deposit.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if link.get("TxnType") == kind:
                        found[str(link.get("TxnId"))] = deposit["Id"]
        return found

    def _guard_deposited(self, entity: str, old: dict[str, Any]) -> None:
        if entity in ("Payment", "RefundReceipt") and old["Id"] in self._deposited(entity):
            raise QBOFault(
                "6540",
                "Deposited Transaction cannot be changed",
                "Deposited Transaction cannot be changed : This transaction has been deposited. "
                "If you want to change or delete it, you must edit the deposit it appears on and remove it first.",
            )

    def _prepare_payment(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is not None:
            self._guard_deposited("Payment", old)
        customer = self._ref(obj, "CustomerRef", "Customer")
        assert customer is not None
        if "TotalAmt" not in obj:
            raise required("TotalAmt")
        total = cents(money(obj["TotalAmt"], "TotalAmt"))
        if total < 0:
            raise business("The payment amount cannot be negative.", "TotalAmt")
        if not _ref_value(obj.get("DepositToAccountRef")):
            obj["DepositToAccountRef"] = {"value": self.account_named("UndepositedFunds")["Id"]}
        account = self._ref(obj, "DepositToAccountRef", "Account")
        assert account is not None
        if account.get("AccountType") not in ("Bank", "Other Current Asset"):
            raise business("Select a bank or Undeposited Funds account for this payment.", "DepositToAccountRef")
        applied = Decimal("0")
        lines = obj.get("Line") or []
        for number, line in enumerate(lines, start=1):
            if "Amount" not in line:
                raise required("Line.Amount")
            line["Amount"] = cents(money(line["Amount"], "Line.Amount"))
            links = line.get("LinkedTxn") or []
            if not links:
                raise required("Line.LinkedTxn")
            for link in links:
                if link.get("TxnType") != "Invoice":
                    raise business(f"Payments in this company can be applied to invoices, not {link.get('TxnType')}.")
                invoice = self.get("Invoice", str(link.get("TxnId", "")))
                if invoice is None:
                    raise not_found(f"Object Not Found : Invoice {link.get('TxnId')} was not found.", "LinkedTxn")
                if _ref_value(invoice["CustomerRef"]) != customer["Id"]:
                    raise business(
                        f"Invoice {invoice['Id']} belongs to another customer; a payment applies only to its customer."
                    )
                # Every write settles balances, so a new payment reads the invoice's own; an update must
                # leave its own earlier amount out, and sums the others.
                open_balance = (
                    invoice["TotalAmt"] - self._applied_to(invoice["Id"], excluding=obj["Id"])
                    if old is not None
                    else invoice.get("Balance", invoice["TotalAmt"])
                )
                if line["Amount"] > open_balance:
                    raise business(
                        f"The payment amount {line['Amount']} is more than the open balance {open_balance} "
                        f"of invoice {invoice.get('DocNumber', invoice['Id'])}.",
                        "Line.Amount",
                    )
                link["TxnId"] = invoice["Id"]
            applied += line["Amount"]
            line.setdefault("Id", str(number))
        if applied > total:
            raise business(f"The amount applied ({applied}) is more than the payment's total ({total}).", "TotalAmt")
        obj["Line"] = lines
        obj["TotalAmt"] = total
        obj["UnappliedAmt"] = total - applied
        obj.setdefault("TxnDate", self.today())
        obj.setdefault("ProcessPayment", False)
        obj.setdefault("CurrencyRef", self._currency())

    def _prepare_deposit(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        account = self._ref(obj, "DepositToAccountRef", "Account")
        assert account is not None
        if account.get("AccountType") != "Bank":
            raise business("Select a bank account for this deposit.", "DepositToAccountRef")
        lines = obj.get("Line")
        if not isinstance(lines, list) or not lines:
            raise required("Line")
        deposited = {kind: self._deposited(kind) for kind in ("Payment", "RefundReceipt")}
        undeposited = self.account_named("UndepositedFunds")["Id"]
        seen: set[tuple[str, str]] = set()
        total = Decimal("0")
        for number, line in enumerate(lines, start=1):
            if "Amount" not in line:
                raise required("Line.Amount")
            line["Amount"] = cents(money(line["Amount"], "Line.Amount"))
            links = line.get("LinkedTxn") or []
            if links:
                for link in links:
                    # What funds (a payment) or draws on (a refund receipt) Undeposited Funds can be deposited;
                    # a refund receipt counts negative, as on QBO's Bank Deposit screen.
                    kind = link.get("TxnType")
                    if kind not in ("Payment", "RefundReceipt"):
                        raise business(f"Only payments and refund receipts can be linked to a deposit, not {kind}.")
                    txn_id = str(link.get("TxnId", ""))
                    txn = self.get(kind, txn_id)
                    if txn is None:
                        raise not_found(f"Object Not Found : {kind} {txn_id} was not found.", "LinkedTxn")
                    if _ref_value(txn["DepositToAccountRef"]) != undeposited:
                        raise business(f"{kind} {txn_id} was not recorded in Undeposited Funds.")
                    other = deposited[kind].get(txn_id)
                    if (other and other != obj["Id"]) or (kind, txn_id) in seen:
                        raise business(f"{kind} {txn_id} has already been deposited.")
                    full = txn["TotalAmt"] if kind == "Payment" else -txn["TotalAmt"]
                    if line["Amount"] != full:
                        raise business(f"The deposit line for {kind} {txn_id} must be its full amount {full}.")
                    seen.add((kind, txn_id))
                    link.setdefault("TxnLineId", "0")
            else:
                detail = line.get("DepositLineDetail")
                if not isinstance(detail, dict):
                    raise required("Line.DepositLineDetail")
                line["DetailType"] = "DepositLineDetail"
                self._ref(detail, "AccountRef", "Account", element="Line.DepositLineDetail.AccountRef")
                if "Entity" in detail and not _ref_value(detail["Entity"]):
                    del detail["Entity"]
            line.setdefault("Id", str(number))
            line["LineNum"] = number
            total += line["Amount"]
        cash_back = obj.get("CashBack")
        if isinstance(cash_back, dict) and cash_back.get("Amount") is not None:
            cash_back["Amount"] = cents(money(cash_back["Amount"], "CashBack.Amount"))
            self._ref(cash_back, "AccountRef", "Account", element="CashBack.AccountRef")
            total -= cash_back["Amount"]
        if total < 0:
            raise business("The deposit total cannot be negative.", "Line")
        obj["TotalAmt"] = total
        obj.setdefault("TxnDate", self.today())
        obj.setdefault("CurrencyRef", self._currency())

    def _unlink_payments(self, invoice_id: str) -> None:
        """A voided or deleted invoice releases its payments: what was applied becomes customer credit."""
        for payment in list(self.objects["Payment"].values()):
            kept = [
                line
                for line in payment.get("Line", [])
                if not any(
                    link.get("TxnType") == "Invoice" and str(link.get("TxnId")) == invoice_id
                    for link in line.get("LinkedTxn", [])
                )
            ]
            if len(kept) != len(payment.get("Line", [])):
                payment["Line"] = kept
                payment["UnappliedAmt"] = payment["TotalAmt"] - sum((line["Amount"] for line in kept), Decimal("0"))
                self._touch("Payment", payment)

    def _settle_new_invoice(self, invoice: dict[str, Any]) -> None:
        """`_settle` after creating an invoice, in O(1): no payment can link to a new id yet."""
        balance = invoice["TotalAmt"]
        if balance != invoice.get("Balance") or invoice.get("LinkedTxn", []) != []:
            invoice["Balance"] = balance
            invoice["LinkedTxn"] = []
            self._touch("Invoice", invoice)
        self._add_to_customer(_ref_value(invoice.get("CustomerRef")), balance)

    def _settle_new_payment(self, payment: dict[str, Any]) -> None:
        """`_settle` after creating a payment, in O(its lines): only the invoices it pays change.

        Every write settles, so the balances it starts from are the full recomputation's; a store of
        thousands of invoices (the backfill benchmarks) would otherwise rescan them all on every payment.
        """
        applied: dict[str, Decimal] = {}
        linking: list[str] = []
        for line in payment.get("Line", []):
            for link in line.get("LinkedTxn", []):
                if link.get("TxnType") == "Invoice":
                    invoice_id = str(link.get("TxnId"))
                    applied[invoice_id] = applied.get(invoice_id, Decimal("0")) + line["Amount"]
                    if line["Amount"]:
                        linking.append(invoice_id)
        for invoice_id, amount in applied.items():
            invoice = self.objects["Invoice"].get(invoice_id)
            if invoice is None:
                continue
            balance = invoice.get("Balance", invoice["TotalAmt"]) - amount
            linked = list(invoice.get("LinkedTxn", []))
            if invoice_id in linking and {"TxnId": payment["Id"], "TxnType": "Payment"} not in linked:
                linked.append({"TxnId": payment["Id"], "TxnType": "Payment"})
            if balance != invoice.get("Balance") or linked != invoice.get("LinkedTxn", []):
                invoice["Balance"] = balance
                invoice["LinkedTxn"] = linked
                self._touch("Invoice", invoice)
            self._add_to_customer(_ref_value(invoice.get("CustomerRef")), -amount)

    def _add_to_customer(self, customer_id: str, amount: Decimal) -> None:
        customer = self.objects["Customer"].get(customer_id)
        if customer is not None:
            balance = customer.get("Balance", Decimal("0")) + amount
            customer["Balance"] = balance
            customer["BalanceWithJobs"] = balance

    def _settle(self) -> None:
        """Derived fields after any write: invoice balances and links, customer balances."""
        links: dict[str, list[str]] = {}
        applied: dict[str, Decimal] = {}
        for payment in self.objects["Payment"].values():
            for line in payment.get("Line", []):
                for link in line.get("LinkedTxn", []):
                    if link.get("TxnType") == "Invoice":
                        invoice_id = str(link.get("TxnId"))
                        applied[invoice_id] = applied.get(invoice_id, Decimal("0")) + line["Amount"]
                        if line["Amount"]:  # a voided payment links nothing
                            links.setdefault(invoice_id, []).append(payment["Id"])
        open_by_customer: dict[str, Decimal] = {}
        for invoice in self.objects["Invoice"].values():
            balance = invoice["TotalAmt"] - applied.get(invoice["Id"], Decimal("0"))
            linked = [{"TxnId": pid, "TxnType": "Payment"} for pid in dict.fromkeys(links.get(invoice["Id"], []))]
            if balance != invoice.get("Balance") or linked != invoice.get("LinkedTxn", []):
                invoice["Balance"] = balance
                invoice["LinkedTxn"] = linked
                self._touch("Invoice", invoice)
            customer_id = _ref_value(invoice.get("CustomerRef"))
            open_by_customer[customer_id] = open_by_customer.get(customer_id, Decimal("0")) + balance
        for customer in self.objects["Customer"].values():
            balance = open_by_customer.get(customer["Id"], Decimal("0"))
            customer["Balance"] = balance
            customer["BalanceWithJobs"] = balance
