"""Issue 15 item 9: the emulator reads queries and bodies as QBO does, and answers what Intuit's XSD allows.

Field lists in SELECT, QBO's 4001 for a property the entity lacks, "" / null / [] taken as absent
with QBO's defaults filled in (TxnDate today in the company's zone, DueDate by terms), values typed
as the XSD types them, 2010 for a property the entity lacks.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fieldhub.providers.quickbooks.emulator import US_REALM, QuickBooksEmulator
from fieldhub.providers.quickbooks.emulator.xsd import find_specs_dir, validate_response

from .conftest import QBO, connect
from .test_emulator import error, exact

SPECS = find_specs_dir(Path(__file__))
CHICAGO = ZoneInfo("America/Chicago")


def assert_valid(r) -> None:  # noqa: ANN001
    if SPECS is not None:
        assert validate_response(exact(r), SPECS) == []


def no_empty_strings(value) -> bool:  # noqa: ANN001
    if isinstance(value, dict):
        return all(no_empty_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(no_empty_strings(v) for v in value)
    return value != ""


async def test_issue15_item9_select_takes_field_lists(qbo: QBO) -> None:
    everything = await qbo.query("SELECT *, Sku FROM Item MAXRESULTS 100")  # python-quickbooks' Item.all()
    assert everything.status_code == 200, everything.text
    items = everything.json()["QueryResponse"]["Item"]
    assert {"Drain cleaning", "Services"} <= {i["Name"] for i in items}
    assert all(i["sparse"] is False and "IncomeAccountRef" in i for i in items)
    assert_valid(everything)

    names = await qbo.query("SELECT DisplayName, Id FROM Customer ORDERBY Id")
    assert names.status_code == 200, names.text
    rows = names.json()["QueryResponse"]["Customer"]
    assert rows == [
        {"domain": "QBO", "sparse": True, "DisplayName": "Mason Realty", "Id": "1"},
        {"domain": "QBO", "sparse": True, "DisplayName": "Jordan Smith", "Id": "2"},
    ]
    assert_valid(names)

    dotted = await qbo.query("select Id, metadata.createtime from Invoice")
    assert dotted.status_code == 200 and dotted.json()["QueryResponse"] == {}
    count = await qbo.query("SELECT COUNT(*) FROM Customer WHERE DisplayName LIKE 'J%'")
    assert count.json()["QueryResponse"] == {"totalCount": 1}


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("SELECT * FROM Customer WHERE Bogus = 'x'", "Bogus"),
        ("SELECT * FROM Customer ORDERBY Bogus", "Bogus"),
        ("SELECT DisplayName, Bogus FROM Customer", "Bogus"),
        ("SELECT * FROM Invoice WHERE MetaData.Bogus > '2026-01-01'", "MetaData.Bogus"),
    ],
)
async def test_issue15_item9_query_refuses_a_property_the_entity_lacks(qbo: QBO, statement: str, named: str) -> None:
    r = await qbo.query(statement)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"Fault", "time"}
    assert body["Fault"] == {
        "Error": [
            {
                "Message": "Invalid query",
                "Detail": f"QueryValidationError: property '{named}' is not queryable",
                "code": "4001",
                "element": "",
            }
        ],
        "type": "ValidationFault",
    }
    assert_valid(r)


async def test_issue15_item9_empty_values_are_absent_and_qbo_fills_its_defaults(qbo: QBO) -> None:
    # What python-quickbooks sends for an invoice whose dates, memo and custom fields were not set.
    line = {
        "Id": None,
        "LineNum": 0,
        "Amount": 149,
        "DetailType": "SalesItemLineDetail",
        "Description": None,
        "LinkedTxn": [],
        "CustomField": [],
        "SalesItemLineDetail": {
            "ItemRef": {"value": "2", "name": "", "type": ""},
            "Qty": 0,
            "UnitPrice": 0,
            "ServiceDate": "",
            "TaxInclusiveAmt": 0,
        },
    }
    body = {
        "CustomerRef": {"value": "2", "name": "Jordan Smith", "type": ""},
        "Line": [line],
        "TxnDate": "",
        "DueDate": "",
        "ShipDate": "",
        "TrackingNum": "",
        "PrivateNote": "",
        "TotalAmt": "",
        "InvoiceLink": "",
        "CustomField": [],
        "LinkedTxn": [],
        "DepartmentRef": {"value": "", "name": ""},
        "SyncToken": 0,
        "sparse": False,
        "domain": "QBO",
    }
    r = await qbo.post("invoice", body)
    assert r.status_code == 200, r.text
    invoice = exact(r)["Invoice"]
    assert no_empty_strings(invoice)
    today = datetime.now(CHICAGO).date()
    assert invoice["TxnDate"] == today.isoformat()
    assert invoice["DueDate"] == (today + timedelta(days=30)).isoformat()  # the company's default, Net 30
    assert invoice["SalesTermRef"] == {"value": "3", "name": "Net 30"}
    assert "DepartmentRef" not in invoice and "ShipDate" not in invoice and "CustomField" not in invoice
    assert invoice["TotalAmt"] == Decimal("161.29") and invoice["SyncToken"] == "0"
    assert_valid(r)

    # Terms decide DueDate: the invoice's own, else its customer's.
    net15 = await qbo.create("Customer", {"DisplayName": "Net Fifteen", "SalesTermRef": {"value": "2"}})
    r = await qbo.post("invoice", {**body, "CustomerRef": {"value": net15["Id"]}, "TxnDate": "2026-03-01"})
    assert (r.json()["Invoice"]["DueDate"], r.json()["Invoice"]["SalesTermRef"]["name"]) == ("2026-03-16", "Net 15")
    r = await qbo.post("invoice", {**body, "TxnDate": "2026-03-01", "SalesTermRef": {"value": "4"}})
    assert (r.json()["Invoice"]["DueDate"], r.json()["Invoice"]["SalesTermRef"]["name"]) == ("2026-04-30", "Net 60")
    assert_valid(r)
    terms = await qbo.query("SELECT * FROM Term")
    assert [t["Name"] for t in terms.json()["QueryResponse"]["Term"]] == [
        "Due on receipt",
        "Net 15",
        "Net 30",
        "Net 60",
    ]


async def test_issue15_item9_values_come_back_typed_as_the_xsd_types_them(qbo: QBO) -> None:
    invoice = await qbo.create(
        "Invoice",
        {
            "CustomerRef": {"value": 2},
            "Line": [
                {
                    "Amount": "149.00",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": 2}},
                }
            ],
        },
    )
    assert invoice["CustomerRef"]["value"] == "2" and invoice["Line"][0]["Amount"] == 149
    r = await qbo.post(
        "payment",
        {
            "CustomerRef": {"value": 2},
            "TotalAmt": "50.00",
            "Line": [
                {"Amount": "50", "LinkedTxn": [{"TxnId": int(invoice["Id"]), "TxnType": "Invoice", "TxnLineId": 0}]}
            ],
        },
    )
    assert r.status_code == 200, r.text
    payment = exact(r)["Payment"]
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice", "TxnLineId": "0"}]
    assert payment["TotalAmt"] == Decimal("50.00") and isinstance(payment["TotalAmt"], Decimal)
    assert '"TxnLineId":"0"' in r.text.replace(" ", "")
    assert_valid(r)

    customer = await qbo.create("Customer", {"DisplayName": "Typed", "Taxable": "false", "SyncToken": 0})
    assert customer["Taxable"] is False


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"DisplayName": "Bogus Co", "Bogus": "x"}, 'Unrecognized field "Bogus" (class com.intuit.schema.finance.v3'),
        ({"DisplayName": "Bad Date", "OpenBalanceDate": "tomorrow"}, "OpenBalanceDate"),
        ({"DisplayName": "Bad Flag", "Taxable": "maybe"}, "Taxable"),
        ({"DisplayName": "Bad Addr", "BillAddr": {"Street": "1 Main"}}, 'Unrecognized field "Street"'),
    ],
)
async def test_issue15_item9_a_property_or_value_qbo_cannot_read_is_2010(qbo: QBO, body: dict, detail: str) -> None:
    r = await qbo.post("customer", body)
    assert r.status_code == 400
    fault = error(r)
    assert fault["code"] == "2010" and fault["Message"] == "Request has invalid or unsupported property"
    assert fault["Detail"].startswith("Property Name:") and detail in fault["Detail"]
    names = await qbo.query(f"SELECT * FROM Customer WHERE DisplayName = '{body['DisplayName']}'")
    assert names.json()["QueryResponse"] == {}  # nothing written


async def test_issue15_item9_txn_date_is_today_in_the_companys_time_zone(http, emulator: QuickBooksEmulator) -> None:  # noqa: ANN001
    # 23:30 in California is already tomorrow in Austin (the company's zone, CompanyInfo.DefaultTimeZone).
    pacific = ZoneInfo("America/Los_Angeles")
    late = datetime.combine(date.today() + timedelta(days=2), datetime.min.time(), pacific).replace(hour=23, minute=30)
    emulator.clock.advance(late.timestamp() - emulator.clock.now())
    tokens = await connect(http)
    qbo = QBO(http, tokens["realmId"], tokens["access_token"])
    info = await qbo.get(f"companyinfo/{US_REALM}")
    assert info.json()["CompanyInfo"]["DefaultTimeZone"] == "America/Chicago"
    line = {"Amount": 10, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}
    invoice = await qbo.create("Invoice", {"CustomerRef": {"value": "2"}, "Line": [line]})
    assert invoice["TxnDate"] == (late.date() + timedelta(days=1)).isoformat()
    assert invoice["MetaData"]["CreateTime"].startswith(late.date().isoformat())  # MetaData stays in Pacific time


@pytest.mark.skipif(SPECS is None, reason="Intuit's XSDs (shared/specs/qbo) are not beside this checkout")
def test_issue15_item9_field_table_is_what_the_xsd_gives() -> None:
    """xsd_fields.json, which types what the emulator stores, is regenerated from the XSDs unchanged."""
    from fieldhub.providers.quickbooks.emulator.fields import TABLE_FILE
    from fieldhub.providers.quickbooks.emulator.xsd import field_table

    assert json.loads(TABLE_FILE.read_text()) == field_table(SPECS)
