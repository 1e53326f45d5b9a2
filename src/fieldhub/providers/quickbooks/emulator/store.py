"""One emulated QuickBooks company: its objects, ids, SyncTokens, change log and business rules."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fieldhub.providers.quickbooks.emulator.errors import qbo_date, qbo_time
from fieldhub.providers.quickbooks.emulator.seed import CompanySeed


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

    # Not documented as an API rule; QBO's UI can refuse $0 invoices, so a company may opt in.
    refuse_zero_total_invoices: bool = False
    # "Warn if duplicate invoice number is used" (on by default in QBO): a duplicate DocNumber is 6140.
    duplicate_doc_number_check: bool = True


class Company:
    """Objects are stored as the JSON QBO answers with (amounts as Decimal); every write goes through here."""

    def __init__(self, seed: CompanySeed, now: Callable[[], float]) -> None:
        self.seed = seed
        self.realm_id = seed.realm_id
        self.now = now
        self.settings = Settings()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.tombstones: dict[str, dict[str, float]] = {}
        self.changes: list[Change] = []
        self.listeners: list[Callable[[Company, Change], None]] = []
        self._next_id = 100
        self._next_doc = 1001
        created = now() - 90 * 86400
        for entity, rows in seed.objects.items():
            for row in rows:
                obj = copy.deepcopy(row)
                obj.setdefault("domain", "QBO")
                obj.setdefault("sparse", False)
                obj["SyncToken"] = "0"
                obj["MetaData"] = {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(created)}
                self.objects.setdefault(entity, {})[obj["Id"]] = obj
        self.objects["CompanyInfo"] = {self.realm_id: self._company_info(created)}

    @property
    def is_us(self) -> bool:
        return self.seed.country in ("US", "USA")

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
            "DefaultTimeZone": "America/Chicago" if self.is_us else "America/Toronto",
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

    def get(self, entity: str, object_id: str) -> dict[str, Any] | None:
        return self.objects.get(entity, {}).get(object_id)
