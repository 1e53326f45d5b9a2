"""The two sandbox companies a demo user can connect: a US one (line TAX/NON) and a Canadian one (rate codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

US_REALM = "9341453050001234"
CA_REALM = "9341453050005678"
# The hub's account mapping for the US company (account ids of its seeded chart, `_accounts` below): what a
# test or benchmark saves on a connection to it, as a user would pick on the mapping page.
US_MAPPING = {
    "service_revenue": "1",  # Services
    "product_revenue": "2",  # Sales of Product Income
    "sales_tax_payable": "5",  # Texas Comptroller Payable
    "discounts": "6",  # Discounts given
    "bank_deposit": "4",  # Checking
    "processing_fees": "7",  # Stripe Fees
}


@dataclass
class CompanySeed:
    realm_id: str
    name: str
    country: str  # ISO-3, as QBO writes CompanyInfo.Country since late 2025 (anchors §3.9)
    email: str
    currency: str
    address: dict[str, str]
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    default_tax_code: str = ""  # US: the automated sales tax jurisdiction used when none is given
    time_zone: str = "America/Chicago"  # CompanyInfo.DefaultTimeZone: the zone that dates transactions
    default_term: str = "3"  # Net 30 (TERMS below): new QBO companies' default for invoices


# QBO's standard terms (a new company's Term list): id, name, days until due.
TERMS = (("1", "Due on receipt", 0), ("2", "Net 15", 15), ("3", "Net 30", 30), ("4", "Net 60", 60))


def _terms() -> list[dict]:
    return [{"Id": i, "Name": name, "Active": True, "Type": "STANDARD", "DueDays": days} for i, name, days in TERMS]


def _account(id_: str, name: str, type_: str, subtype: str, classification: str, active: bool = True) -> dict:
    return {
        "Id": id_,
        "Name": name,
        "FullyQualifiedName": name,
        "AccountType": type_,
        "AccountSubType": subtype,
        "Classification": classification,
        "SubAccount": False,
        "Active": active,
        "CurrentBalance": Decimal("0"),
        "CurrentBalanceWithSubAccounts": Decimal("0"),
    }


def _accounts(tax_payable: str, fee_name: str) -> list[dict]:
    return [
        _account("1", "Services", "Income", "ServiceFeeIncome", "Revenue"),
        _account("2", "Sales of Product Income", "Income", "SalesOfProductIncome", "Revenue"),
        _account("3", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset"),
        _account("4", "Checking", "Bank", "Checking", "Asset"),
        _account("5", tax_payable, "Other Current Liability", "GlobalTaxPayable", "Liability"),
        _account("6", "Discounts given", "Income", "DiscountsRefundsGiven", "Revenue"),
        _account("7", fee_name, "Expense", "BankCharges", "Expense"),
        _account("8", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset"),
        _account("9", "Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense"),
        _account("10", "Inventory Asset", "Other Current Asset", "Inventory", "Asset"),
        _account("11", "Savings", "Bank", "Savings", "Asset"),
        _account("12", "Legacy Service Income", "Income", "ServiceFeeIncome", "Revenue", active=False),
    ]


def _item(id_: str, name: str, type_: str, price: str, income: str, taxable: bool = True, **extra: Any) -> dict:
    return {
        "Id": id_,
        "Name": name,
        "FullyQualifiedName": name,
        "Type": type_,
        "Active": True,
        "Taxable": taxable,
        "UnitPrice": Decimal(price),
        "IncomeAccountRef": {"value": income, "name": "Services" if income == "1" else "Sales of Product Income"},
        "TrackQtyOnHand": False,
        **extra,
    }


def _person(id_: str, display: str, given: str = "", family: str = "", **extra: Any) -> dict:
    body: dict[str, Any] = {"Id": id_, "DisplayName": display, "PrintOnCheckName": display, "Active": True}
    if given:
        body["GivenName"] = given
    if family:
        body["FamilyName"] = family
    return {**body, **extra}


def _rate(id_: str, name: str, value: str, agency: str) -> dict:
    return {
        "Id": id_,
        "Name": name,
        "Description": name,
        "Active": True,
        "RateValue": Decimal(value),
        "AgencyRef": {"value": agency},
        "SpecialTaxType": "NONE",
        "DisplayType": "ReadOnly",
    }


def _code(id_: str, name: str, rate_ids: list[str], taxable: bool = True) -> dict:
    return {
        "Id": id_,
        "Name": name,
        "Description": name,
        "Active": True,
        "Hidden": False,
        "Taxable": taxable,
        "TaxGroup": len(rate_ids) > 1,
        "SalesTaxRateList": {
            "TaxRateDetail": [
                {"TaxRateRef": {"value": r}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0} for r in rate_ids
            ]
        },
        "PurchaseTaxRateList": {"TaxRateDetail": []},
    }


def us_company() -> CompanySeed:
    return CompanySeed(
        realm_id=US_REALM,
        name="Riverbend Plumbing & Heating",
        country="USA",
        email="office@riverbend.example",
        currency="USD",
        address={"Line1": "1200 River Rd", "City": "Austin", "CountrySubDivisionCode": "TX", "PostalCode": "78701"},
        default_tax_code="2",
        objects={
            "Account": _accounts("Texas Comptroller Payable", "Stripe Fees"),
            "Item": [
                _item("1", "Services", "Service", "0", "1"),
                _item("2", "Drain cleaning", "Service", "149.00", "1"),
                _item("3", "Water heater install", "Service", "1200.00", "1"),
                _item("4", "PEX pipe 1/2in", "NonInventory", "2.50", "2"),
            ],
            "Customer": [
                _person("1", "Mason Realty", CompanyName="Mason Realty", Taxable=True, Balance=Decimal("0")),
                _person("2", "Jordan Smith", "Jordan", "Smith", Taxable=True, Balance=Decimal("0")),
            ],
            "Vendor": [_person("1", "Home Depot", CompanyName="Home Depot")],
            "Employee": [_person("1", "Emily Platt", "Emily", "Platt")],
            # Automated sales tax: one jurisdiction code whose rates QBO applies to lines marked TAX.
            "TaxRate": [
                _rate("1", "Texas State", "6.25", "1"),
                _rate("2", "Austin City", "1", "1"),
                _rate("3", "Austin MTA", "1", "1"),
            ],
            "TaxCode": [_code("2", "Austin", ["1", "2", "3"])],
            "TaxAgency": [{"Id": "1", "DisplayName": "Texas Comptroller", "TaxTrackedOnSales": True}],
            "Term": _terms(),
        },
    )


def ca_company() -> CompanySeed:
    return CompanySeed(
        realm_id=CA_REALM,
        name="Northern Lights Heating Ltd.",
        country="CAN",
        email="office@northernlights-heating.example",
        currency="CAD",
        address={"Line1": "45 King St W", "City": "Toronto", "CountrySubDivisionCode": "ON", "PostalCode": "M5H 1J8"},
        time_zone="America/Toronto",
        objects={
            "Account": _accounts("GST/HST Payable", "Stripe Fees"),
            "Item": [
                _item("1", "Services", "Service", "0", "1"),
                _item("2", "Furnace tune-up", "Service", "129.00", "1"),
                _item("3", "Filter MERV 11", "NonInventory", "24.00", "2"),
            ],
            "Customer": [
                _person("1", "Tremblay Property Group", CompanyName="Tremblay Property Group", Balance=Decimal("0")),
                _person("2", "Priya Natarajan", "Priya", "Natarajan", Balance=Decimal("0")),
            ],
            "Vendor": [_person("1", "Home Depot", CompanyName="Home Depot")],
            "Employee": [_person("1", "Luc Gagnon", "Luc", "Gagnon")],
            # Global editions: every line names its own rate code; there is no TAX/NON.
            "TaxRate": [
                _rate("1", "GST", "5", "1"),
                _rate("2", "HST ON", "13", "1"),
                _rate("3", "PST BC", "7", "2"),
                _rate("4", "Exempt", "0", "1"),
                _rate("5", "Zero-rated", "0", "1"),
            ],
            "TaxCode": [
                _code("2", "GST", ["1"]),
                _code("3", "HST ON", ["2"]),
                _code("4", "GST/PST BC", ["1", "3"]),
                _code("5", "Exempt", ["4"], taxable=False),
                _code("6", "Zero-rated", ["5"]),
            ],
            "TaxAgency": [
                {"Id": "1", "DisplayName": "Canada Revenue Agency", "TaxTrackedOnSales": True},
                {"Id": "2", "DisplayName": "Ministry of Finance (BC)", "TaxTrackedOnSales": True},
            ],
            "Term": _terms(),
        },
    )


def companies() -> list[CompanySeed]:
    return [us_company(), ca_company()]
