"""Every request the tests send and every reply the emulator gives validates against Intuit's XSDs."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from fieldhub.providers.quickbooks.emulator import CA_REALM, US_REALM
from fieldhub.providers.quickbooks.emulator.store import ENTITIES
from fieldhub.providers.quickbooks.emulator.xsd import find_specs_dir, validate_request, validate_response

from .conftest import QBO, connect
from .test_emulator import invoice_body

SPECS = find_specs_dir(Path(__file__))
pytestmark = pytest.mark.skipif(SPECS is None, reason="Intuit's XSDs (shared/specs/qbo) are not beside this checkout")


async def scenario(qbo: QBO, ca: QBO) -> None:
    """One of everything the emulator answers: entities, errors, query, batch, CDC, void, delete."""
    customer = await qbo.create(
        "Customer",
        {
            "DisplayName": "Schema Check",
            "GivenName": "Schema",
            "FamilyName": "Check",
            "PrimaryEmailAddr": {"Address": "s@x.test"},
            "PrimaryPhone": {"FreeFormNumber": "555-0100"},
            "BillAddr": {"Line1": "1 Main St", "City": "Austin", "CountrySubDivisionCode": "TX", "PostalCode": "78701"},
            "Notes": "side gate",
        },
    )
    await qbo.create(
        "Item", {"Name": "Schema item", "Type": "Service", "IncomeAccountRef": {"value": "1"}, "UnitPrice": 99}
    )
    body = invoice_body(customer=customer["Id"], CustomerMemo={"value": "Thanks!"}, PrivateNote="job 42")
    body["Line"].append(
        {"Amount": 5, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}}
    )
    body["Line"].append({"Amount": 0, "DetailType": "DescriptionOnly", "Description": "Parts warranty 1 year"})
    inv = await qbo.create("Invoice", body)
    payment = await qbo.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 50,
            "PaymentRefNum": "ch_123",
            "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    await qbo.create(
        "Deposit",
        {
            "DepositToAccountRef": {"value": "4"},
            "PrivateNote": "payout po_1",
            "Line": [
                {"Amount": 50, "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment", "TxnLineId": "0"}]},
                {
                    "Amount": -1.75,
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": {"value": "7"}},
                    "Description": "Stripe fee",
                },
            ],
        },
    )
    await qbo.create(
        "RefundReceipt",
        {"CustomerRef": {"value": customer["Id"]}, "DepositToAccountRef": {"value": "4"}, "Line": body["Line"][:1]},
    )
    await qbo.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "front door"})
    await qbo.post("customer", {"DisplayName": "Home Depot"})  # 6240
    await qbo.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True})  # 5010
    await qbo.post("invoice", {"CustomerRef": {"value": "999"}, "Line": body["Line"]})  # 610
    second = await qbo.create("Invoice", invoice_body())
    await qbo.post("invoice", {"Id": second["Id"], "SyncToken": "0"}, operation="void")
    third = await qbo.create("Invoice", invoice_body())
    await qbo.post("invoice", {"Id": third["Id"], "SyncToken": "0"}, operation="delete")
    for statement in (
        "select * from Customer",
        "select count(*) from Invoice",
        "select * from Invoice where Balance > '0' orderby MetaData.LastUpdatedTime",
        "select * from Account",
        "select * from TaxCode",
        "select * from TaxRate",
        "select * from Item",
        "select * from Vendor",
        "select * from Employee",
        "select * from Payment",
        "select * from Deposit",
        "select * from RefundReceipt",
        "select * from CompanyInfo",
    ):
        await qbo.query(statement)
    await qbo.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch Schema"}},
                {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Home Depot"}},
                {"bId": "3", "Query": "select * from Item"},
            ]
        },
    )
    await qbo.get("cdc", entities="Customer,Invoice,Payment,Deposit", changedSince="2000-01-01")  # a Fault
    await qbo.get("cdc", entities="Customer,Invoice,Payment,Deposit", changedSince=inv["MetaData"]["CreateTime"])
    await qbo.get(f"companyinfo/{US_REALM}")
    await qbo.get(f"invoice/{inv['Id']}")
    ca_line = {
        "Amount": 129,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "TaxCodeRef": {"value": "3"}},
    }
    await ca.create(
        "Invoice", {"CustomerRef": {"value": "1"}, "Line": [ca_line], "GlobalTaxCalculation": "TaxExcluded"}
    )
    await ca.post(
        "invoice",
        {"CustomerRef": {"value": "1"}, "Line": [{**ca_line, "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}]},
    )


async def test_every_request_and_reply_validates(http, emulator) -> None:
    us = await connect(http, US_REALM)
    ca = await connect(http, CA_REALM)
    await scenario(QBO(http, US_REALM, us["access_token"]), QBO(http, CA_REALM, ca["access_token"]))

    checked = 0
    problems: list[str] = []
    for entry in emulator.requests:
        if not entry.path.startswith("/v3/company/"):
            continue
        resource = entry.path.rstrip("/").split("/")[4].lower()
        operation = parse_qs(entry.query).get("operation", [""])[0]
        if entry.method == "POST" and entry.body and (resource in ENTITIES or resource == "batch"):
            body = json.loads(entry.body, parse_float=Decimal)
            name = "batch" if resource == "batch" else ENTITIES[resource]
            if operation not in ("delete", "void"):  # those bodies are only Id + SyncToken
                problems += [f"request {entry.method} {entry.path}: {p}" for p in validate_request(name, body, SPECS)]
        reply = json.loads(entry.response, parse_float=Decimal)
        problems += [f"reply {entry.method} {entry.path}?{entry.query}: {p}" for p in validate_response(reply, SPECS)]
        checked += 1
    assert checked > 30
    assert problems == []


def test_the_validator_catches_what_the_schema_forbids() -> None:
    invoice = {
        "CustomerRef": {"value": "1"},
        "Line": [{"Amount": "ten", "DetailType": "SalesItemLine", "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}],
        "Bogus": True,
    }
    problems = " | ".join(validate_request("Invoice", invoice, SPECS))
    assert "xs:decimal" in problems and "Bogus" in problems and "SalesItemLine" in problems
    reply = {
        "QueryResponse": {"Customer": [{"DisplayName": "x", "Active": "maybe"}]},
        "time": "2026-01-01T00:00:00-08:00",
    }
    assert validate_response(reply, SPECS)
