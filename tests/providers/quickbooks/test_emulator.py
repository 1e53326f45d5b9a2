"""The QuickBooks emulator's API: entities, computed totals, business rules and their Fault bodies."""

from __future__ import annotations

import json
from decimal import Decimal

from fieldhub.providers.quickbooks.emulator import CA_REALM, US_REALM

from .conftest import QBO, connect


def error(r) -> dict:
    body = r.json()
    assert set(body) == {"Fault", "time"}, body
    assert body["Fault"]["type"] == "ValidationFault"
    return body["Fault"]["Error"][0]


def exact(r) -> dict:
    """The body with its numbers as Decimal, as the emulator wrote them."""
    return json.loads(r.text, parse_float=Decimal)


def invoice_body(customer="1", lines=None, **extra) -> dict:
    return {
        "CustomerRef": {"value": customer},
        "Line": lines
        or [
            {
                "Amount": 298.00,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "2"},
                    "Qty": 2,
                    "UnitPrice": 149.00,
                    "TaxCodeRef": {"value": "TAX"},
                },
            },
            {
                "Amount": 25.00,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "4"},
                    "Qty": 10,
                    "UnitPrice": 2.50,
                    "TaxCodeRef": {"value": "NON"},
                },
            },
        ],
        **extra,
    }


async def test_customer_create_read_and_cross_list_name_uniqueness(qbo: QBO) -> None:
    customer = await qbo.create("Customer", {"DisplayName": "Ada Park", "PrimaryEmailAddr": {"Address": "ada@x.test"}})
    assert customer["SyncToken"] == "0" and customer["Active"] is True and customer["domain"] == "QBO"
    assert customer["MetaData"]["CreateTime"].endswith(("-07:00", "-08:00"))
    r = await qbo.get(f"customer/{customer['Id']}")
    assert r.json()["Customer"]["DisplayName"] == "Ada Park"

    # The vendor "Home Depot" and the employee "Emily Platt" hold those names for customers too.
    for taken in ("Home Depot", "emily  platt", "ada park"):
        r = await qbo.post("customer", {"DisplayName": taken})
        assert r.status_code == 400
        assert error(r)["code"] == "6240" and error(r)["Message"] == "Duplicate Name Exists Error"

    r = await qbo.post("customer", {"CompanyName": "No Name Given"})
    assert r.status_code == 400 and error(r)["code"] == "2020" and error(r)["element"] == "DisplayName"
    built = await qbo.create("Customer", {"GivenName": "Lin", "FamilyName": "Wu"})
    assert built["DisplayName"] == "Lin Wu"
    r = await qbo.post("customer", {"DisplayName": "Acme: East"})
    assert error(r)["code"] == "2040"


async def test_sparse_and_full_update_and_stale_synctoken(qbo: QBO) -> None:
    c = await qbo.create("Customer", {"DisplayName": "Bo Chen", "Notes": "gate code 1234", "CompanyName": "Chen Co"})
    r = await qbo.post("customer", {"Id": c["Id"], "SyncToken": "0", "sparse": True, "Notes": "new gate code"})
    assert r.status_code == 200
    updated = r.json()["Customer"]
    assert updated["SyncToken"] == "1" and updated["Notes"] == "new gate code" and updated["CompanyName"] == "Chen Co"

    r = await qbo.post("customer", {"Id": c["Id"], "SyncToken": "0", "sparse": True, "Notes": "late"})
    assert r.status_code == 400
    assert error(r)["code"] == "5010" and error(r)["Message"] == "Stale Object Error"

    r = await qbo.post("customer", {"Id": c["Id"], "SyncToken": "1", "DisplayName": "Bo Chen"})  # full update
    full = r.json()["Customer"]
    assert full["SyncToken"] == "2" and "CompanyName" not in full and "Notes" not in full

    r = await qbo.post("customer", {"Id": c["Id"], "sparse": True, "Notes": "x"})
    assert error(r)["code"] == "2020" and error(r)["element"] == "SyncToken"
    r = await qbo.post("customer", {"Id": "9999", "SyncToken": "0", "sparse": True})
    assert error(r)["code"] == "610"


async def test_inactivated_customer_is_renamed_and_cannot_be_invoiced(qbo: QBO) -> None:
    c = await qbo.create("Customer", {"DisplayName": "Gone Soon"})
    r = await qbo.post("customer", {"Id": c["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert r.json()["Customer"]["DisplayName"] == "Gone Soon (deleted)"
    assert (await qbo.post("customer", {"DisplayName": "Gone Soon"})).status_code == 200  # the name is free again
    r = await qbo.post("invoice", invoice_body(customer=c["Id"]))
    assert r.status_code == 400 and error(r)["code"] == "610" and error(r)["element"] == "CustomerRef"
    r = await qbo.post("invoice", invoice_body(customer="424242"))
    assert error(r)["code"] == "610"
    r = await qbo.post("customer", {"Id": c["Id"], "SyncToken": "1"}, operation="delete")
    assert r.status_code == 400 and error(r)["code"] == "500"


async def test_us_invoice_totals_tax_discount_and_doc_numbers(qbo: QBO) -> None:
    body = invoice_body()
    body["Line"].append(
        {
            "Amount": 10,
            "DetailType": "DiscountLineDetail",
            "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
        }
    )
    r = await qbo.post("invoice", body)
    assert r.status_code == 200, r.text
    inv = exact(r)["Invoice"]
    kinds = [line["DetailType"] for line in inv["Line"]]
    assert kinds == ["SalesItemLineDetail", "SalesItemLineDetail", "SubTotalLineDetail", "DiscountLineDetail"]
    assert inv["Line"][2]["Amount"] == Decimal("323.00")
    assert inv["Line"][3]["Amount"] == Decimal("32.30")
    assert inv["Line"][3]["DiscountLineDetail"]["DiscountAccountRef"]["name"] == "Discounts given"
    # Austin: 6.25 + 1 + 1 = 8.25 % on the TAX line only (298.00), per rate, each rounded half up.
    tax = inv["TxnTaxDetail"]
    assert tax["TxnTaxCodeRef"]["value"] == "2"
    assert [line["Amount"] for line in tax["TaxLine"]] == [Decimal("18.63"), Decimal("2.98"), Decimal("2.98")]
    assert tax["TotalTax"] == Decimal("24.59")
    assert inv["TotalAmt"] == Decimal("315.29") == Decimal("323.00") - Decimal("32.30") + Decimal("24.59")
    assert inv["Balance"] == inv["TotalAmt"]
    assert inv["DocNumber"] == "1001" and inv["DueDate"] > inv["TxnDate"]

    second = await qbo.create("Invoice", invoice_body())
    assert second["DocNumber"] == "1002"
    r = await qbo.post("invoice", invoice_body(DocNumber="1001"))
    assert r.status_code == 400 and error(r)["code"] == "6140"

    customer = (await qbo.get("customer/1")).json()["Customer"]
    assert Decimal(str(customer["Balance"])) == inv["TotalAmt"] + Decimal(str(second["TotalAmt"]))


async def test_amount_must_equal_qty_times_price_and_refs_must_exist(qbo: QBO) -> None:
    lines = [
        {
            "Amount": 300,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 2, "UnitPrice": 149},
        }
    ]
    r = await qbo.post("invoice", invoice_body(lines=lines))
    assert error(r)["code"] == "6070"
    lines[0]["Amount"] = 298
    lines[0]["SalesItemLineDetail"]["ItemRef"] = {"value": "77"}
    assert error(await qbo.post("invoice", invoice_body(lines=lines)))["code"] == "610"
    r = await qbo.post("invoice", {"CustomerRef": {"value": "1"}})
    assert error(r)["code"] == "2020" and error(r)["element"] == "Line"
    r = await qbo.post("invoice", {"Line": invoice_body()["Line"]})
    assert error(r)["code"] == "2020" and error(r)["element"] == "CustomerRef"


async def test_us_lines_take_only_tax_or_non(qbo: QBO) -> None:
    body = invoice_body()
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "3"}
    r = await qbo.post("invoice", body)
    assert r.status_code == 400 and error(r)["code"] == "6100" and "TAX or NON" in error(r)["Detail"]
    body = invoice_body(TxnTaxDetail={"TxnTaxCodeRef": {"value": "99"}})
    r = await qbo.post("invoice", body)
    assert error(r)["code"] == "6000" and "Invalid tax rate" in error(r)["Detail"]
    # Overriding automated sales tax takes a code and an amount together.
    body = invoice_body(TxnTaxDetail={"TxnTaxCodeRef": {"value": "2"}, "TotalTax": 20.00})
    inv = exact(await qbo.post("invoice", body))["Invoice"]
    assert inv["TxnTaxDetail"]["TotalTax"] == Decimal("20.00") and inv["TotalAmt"] == Decimal("343.00")


async def test_non_us_company_uses_rate_codes_per_line(http) -> None:
    tokens = await connect(http, CA_REALM)
    qbo = QBO(http, CA_REALM, tokens["access_token"])
    line = {"Amount": 129, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}
    r = await qbo.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line]})
    assert error(r)["code"] == "6000" and "GST/HST" in error(r)["Detail"]
    line["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "TAX"}
    r = await qbo.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line]})
    assert error(r)["code"] == "6000" and "Invalid tax rate" in error(r)["Detail"]

    filters = {
        "Amount": 48,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "Qty": 2, "UnitPrice": 24, "TaxCodeRef": {"value": "4"}},
    }
    line["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "3"}
    inv = exact(await qbo.post("invoice", {"CustomerRef": {"value": "1"}, "Line": [line, filters]}))["Invoice"]
    assert inv["GlobalTaxCalculation"] == "TaxExcluded"
    by_rate = {t["TaxLineDetail"]["TaxRateRef"]["value"]: t["Amount"] for t in inv["TxnTaxDetail"]["TaxLine"]}
    assert by_rate == {"2": Decimal("16.77"), "1": Decimal("2.40"), "3": Decimal("3.36")}
    assert inv["TotalAmt"] == Decimal("177.00") + Decimal("22.53")
    assert "TxnTaxCodeRef" not in inv["TxnTaxDetail"]

    info = (await qbo.get(f"companyinfo/{CA_REALM}")).json()["CompanyInfo"]
    assert info["Country"] == "CAN"
    codes = (await qbo.query("select * from TaxCode")).json()["QueryResponse"]["TaxCode"]
    assert {c["Name"] for c in codes} >= {"GST", "HST ON", "Exempt"}


async def test_payment_applies_to_invoice_and_deposit_moves_it_to_the_bank(qbo: QBO) -> None:
    inv = await qbo.create("Invoice", invoice_body())
    total = Decimal(str(inv["TotalAmt"]))
    r = await qbo.post(
        "payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 100.00,
            "Line": [{"Amount": 100.00, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert r.status_code == 200, r.text
    payment = exact(r)["Payment"]
    assert payment["DepositToAccountRef"] == {"value": "3", "name": "Undeposited Funds"}
    assert payment["UnappliedAmt"] == Decimal("0.00")
    after = exact(await qbo.get(f"invoice/{inv['Id']}"))["Invoice"]
    assert after["Balance"] == total - 100
    assert after["SyncToken"] == "1" and after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]

    too_much = {
        "CustomerRef": {"value": "1"},
        "TotalAmt": 1000,
        "Line": [{"Amount": 1000, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
    }
    assert error(await qbo.post("payment", too_much))["code"] == "6000"
    other_customer = {**too_much, "CustomerRef": {"value": "2"}, "TotalAmt": 1}
    other_customer["Line"] = [{"Amount": 1, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]
    assert error(await qbo.post("payment", other_customer))["code"] == "6000"
    assert error(await qbo.post("payment", {"CustomerRef": {"value": "1"}}))["element"] == "TotalAmt"

    deposit = {
        "DepositToAccountRef": {"value": "4"},
        "Line": [
            {"Amount": 100.00, "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment", "TxnLineId": "0"}]},
            {"Amount": -3.20, "DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": "7"}}},
        ],
    }
    r = await qbo.post("deposit", {**deposit, "DepositToAccountRef": {"value": "3"}})
    assert error(r)["code"] == "6000" and "bank account" in error(r)["Detail"]
    no_account = json.loads(json.dumps(deposit))
    no_account["Line"][1]["DepositLineDetail"] = {}
    assert error(await qbo.post("deposit", no_account))["code"] == "2020"
    inactive = json.loads(json.dumps(deposit))
    inactive["Line"][1]["DepositLineDetail"]["AccountRef"] = {"value": "12"}
    r = await qbo.post("deposit", inactive)
    assert error(r)["code"] == "610" and "accounts" in error(r)["Detail"]
    r = await qbo.post("deposit", deposit)
    assert r.status_code == 200, r.text
    assert exact(r)["Deposit"]["TotalAmt"] == Decimal("96.80")
    r = await qbo.post("deposit", deposit)
    assert error(r)["code"] == "6000" and "already been deposited" in error(r)["Detail"]

    r = await qbo.post("payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]}, operation="delete")
    assert error(r)["code"] == "6540"


async def test_void_and_delete_invoice(qbo: QBO) -> None:
    inv = await qbo.create("Invoice", invoice_body())
    r = await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]}, operation="void")
    assert r.status_code == 200
    voided = exact(r)["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0 and voided["PrivateNote"] == "Voided"
    assert voided["SyncToken"] == "1"
    r = await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": "0"}, operation="delete")
    assert error(r)["code"] == "5010"
    r = await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": "1"}, operation="delete")
    assert r.json()["Invoice"] == {"Id": inv["Id"], "status": "Deleted", "domain": "QBO"}
    assert error(await qbo.get(f"invoice/{inv['Id']}"))["code"] == "610"


async def test_voiding_a_paid_invoice_leaves_the_payment_as_credit(qbo: QBO, http) -> None:
    inv = await qbo.create("Invoice", invoice_body())
    r = await http.post(f"/_emulator/companies/{US_REALM}/invoice/{inv['Id']}/pay", json={})
    payment = r.json()["Payment"]
    assert (await qbo.get(f"invoice/{inv['Id']}")).json()["Invoice"]["Balance"] == 0
    inv = (await qbo.get(f"invoice/{inv['Id']}")).json()["Invoice"]
    await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]}, operation="void")
    payment = exact(await qbo.get(f"payment/{payment['Id']}"))["Payment"]
    assert payment["Line"] == [] and payment["UnappliedAmt"] == payment["TotalAmt"]


async def test_refund_receipt_needs_an_account_to_refund_from(qbo: QBO) -> None:
    line = invoice_body()["Line"][:1]
    r = await qbo.post("refundreceipt", {"CustomerRef": {"value": "1"}, "Line": line})
    assert error(r)["code"] == "2020" and error(r)["element"] == "DepositToAccountRef"
    r = await qbo.post(
        "refundreceipt", {"CustomerRef": {"value": "1"}, "Line": line, "DepositToAccountRef": {"value": "4"}}
    )
    refund = exact(r)["RefundReceipt"]
    assert refund["TotalAmt"] == Decimal("298.00") + Decimal("24.59") and refund["Balance"] == 0


async def test_zero_total_invoices_are_a_company_setting(qbo: QBO, http) -> None:
    zero = [{"Amount": 0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]
    assert (await qbo.post("invoice", invoice_body(lines=zero))).status_code == 200
    await http.post(f"/_emulator/companies/{US_REALM}/settings", json={"refuse_zero_total_invoices": True})
    r = await qbo.post("invoice", invoice_body(lines=zero))
    assert error(r)["code"] == "6000"


async def test_items_and_accounts(qbo: QBO) -> None:
    item = await qbo.create(
        "Item", {"Name": "Camera inspection", "Type": "Service", "IncomeAccountRef": {"value": "1"}, "UnitPrice": 250}
    )
    assert item["IncomeAccountRef"]["name"] == "Services"
    r = await qbo.post("item", {"Name": "camera inspection", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert error(r)["code"] == "6240"
    r = await qbo.post("item", {"Name": "Thing", "Type": "Service"})
    assert error(r)["code"] == "2020" and error(r)["element"] == "IncomeAccountRef"
    r = await qbo.post("item", {"Name": "Thing", "Type": "Service", "IncomeAccountRef": {"value": "12"}})
    assert error(r)["code"] == "610"
    r = await qbo.post("account", {"Name": "Tips"})
    assert error(r)["code"] == "6010"
    account = await qbo.create("Account", {"Name": "Tips", "AccountSubType": "ServiceFeeIncome"})
    assert account["AccountType"] == "Income" and account["Classification"] == "Revenue"
    r = await qbo.post("taxcode", {"Name": "Mine"})
    assert r.status_code == 400 and error(r)["code"] == "500"


async def test_read_only_fields_in_requests_are_ignored(qbo: QBO) -> None:
    r = await qbo.post("invoice", invoice_body(TotalAmt=1, Balance=1))
    inv = exact(r)["Invoice"]
    assert inv["TotalAmt"] == Decimal("347.59") and inv["Balance"] == inv["TotalAmt"]


async def test_malformed_json_and_unknown_resources(qbo: QBO) -> None:
    r = await qbo.http.post(qbo.url("customer"), content=b"{nope", headers=qbo.headers)
    assert r.status_code == 400 and error(r)["code"] == "2010"
    r = await qbo.get("widget/1")
    assert r.status_code == 400 and error(r)["code"] == "500"


async def test_payment_void_uses_include_void_and_reopens_the_invoice(qbo: QBO) -> None:
    inv = await qbo.create("Invoice", invoice_body())
    payment = await qbo.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": inv["TotalAmt"],
            "Line": [{"Amount": inv["TotalAmt"], "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}],
        },
    )
    assert (await qbo.get(f"invoice/{inv['Id']}")).json()["Invoice"]["Balance"] == 0
    r = await qbo.post(
        "payment", {"Id": payment["Id"], "SyncToken": "0", "sparse": True}, operation="update", include="void"
    )
    assert r.status_code == 200 and r.json()["Payment"]["TotalAmt"] == 0
    reopened = (await qbo.get(f"invoice/{inv['Id']}")).json()["Invoice"]
    assert reopened["Balance"] == reopened["TotalAmt"] and reopened["LinkedTxn"] == []


async def test_length_and_discount_faults_name_their_element(qbo: QBO) -> None:
    r = await qbo.post("invoice", invoice_body(DocNumber="X" * 22))
    assert error(r)["code"] == "2050" and error(r)["element"] == "DocNumber"
    r = await qbo.post("customer", {"DisplayName": "n" * 501})
    assert error(r)["code"] == "2050" and error(r)["element"] == "DisplayName"
    body = invoice_body()
    body["Line"].append({"DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": True}})
    r = await qbo.post("invoice", body)
    assert error(r)["code"] == "6090" and error(r)["element"] == "Line"
