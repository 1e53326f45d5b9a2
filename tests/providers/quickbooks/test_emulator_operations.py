"""The QuickBooks emulator's query language, batch, CDC, requestid replay, rate limits and injected faults."""

from __future__ import annotations

import asyncio

import pytest

from fieldhub.hub.emulator import EmulatorConfig, FaultRule
from fieldhub.hub.emulator.core import EmulatedDrop
from fieldhub.providers.quickbooks.emulator import US_REALM, create_emulator
from fieldhub.providers.quickbooks.emulator.errors import qbo_time

from .conftest import QBO, connect, emu_client
from .test_emulator import error, invoice_body


async def test_query_where_order_paging_and_count(qbo: QBO) -> None:
    for name in ("Zed Lee", "Abe Moss", "Kim Ng"):
        await qbo.create("Customer", {"DisplayName": name})
    r = await qbo.query("SELECT * FROM Customer ORDERBY DisplayName DESC STARTPOSITION 2 MAXRESULTS 2")
    page = r.json()["QueryResponse"]
    assert [c["DisplayName"] for c in page["Customer"]] == ["Mason Realty", "Kim Ng"]
    assert page["startPosition"] == 2 and page["maxResults"] == 2 and "time" in r.json()

    r = await qbo.query("select * from Customer where DisplayName LIKE 'k%'")
    assert [c["DisplayName"] for c in r.json()["QueryResponse"]["Customer"]] == ["Kim Ng"]
    r = await qbo.query("select * from Customer where DisplayName = 'Nobody'")
    assert r.json()["QueryResponse"] == {}
    r = await qbo.query("select count(*) from Customer")
    assert r.json()["QueryResponse"] == {"totalCount": 5}
    r = await qbo.query("select * from Customer where Id in ('1', '2') and Active = true")
    assert [c["Id"] for c in r.json()["QueryResponse"]["Customer"]] == ["1", "2"]
    r = await qbo.query("select * from Vendor where DisplayName = 'Home Depot'")
    assert r.json()["QueryResponse"]["Vendor"][0]["Id"] == "1"

    # POST with the statement as the body (Content-Type application/text) works too.
    r = await qbo.http.post(
        qbo.url("query"),
        content="select * from Employee",
        headers={**qbo.headers, "Content-Type": "application/text"},
    )
    assert r.json()["QueryResponse"]["Employee"][0]["DisplayName"] == "Emily Platt"


async def test_query_hides_inactive_names_unless_asked_and_filters_by_time(qbo: QBO, emulator) -> None:
    c = await qbo.create("Customer", {"DisplayName": "Old Client"})
    await qbo.post("customer", {"Id": c["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    all_active = (await qbo.query("select * from Customer")).json()["QueryResponse"]["Customer"]
    assert c["Id"] not in [x["Id"] for x in all_active]
    r = await qbo.query("select * from Customer where Active = false")
    assert [x["Id"] for x in r.json()["QueryResponse"]["Customer"]] == [c["Id"]]

    emulator.clock.advance(120)
    stamp = (await qbo.create("Customer", {"DisplayName": "Fresh Client"}))["MetaData"]["LastUpdatedTime"]
    r = await qbo.query(f"select * from Customer where MetaData.LastUpdatedTime >= '{stamp}'")
    assert [x["DisplayName"] for x in r.json()["QueryResponse"]["Customer"]] == ["Fresh Client"]
    inv = await qbo.create("Invoice", invoice_body())
    r = await qbo.query(f"select * from Invoice where DocNumber = '{inv['DocNumber']}'")
    assert r.json()["QueryResponse"]["Invoice"][0]["Id"] == inv["Id"]


async def test_query_errors(qbo: QBO) -> None:
    assert error(await qbo.query("select * from Nothing"))["code"] == "4000"
    assert error(await qbo.query("select * from Customer MAXRESULTS 1001"))["code"] == "4001"
    assert error(await qbo.query("delete from Customer"))["code"] == "4000"
    assert error(await qbo.query("select * from Customer where DisplayName = 'a' or Id = '1'"))["code"] == "4000"


async def test_batch_runs_each_item_with_its_own_fault(qbo: QBO) -> None:
    inv = await qbo.create("Invoice", invoice_body())
    body = {
        "BatchItemRequest": [
            {"bId": "b1", "operation": "create", "Customer": {"DisplayName": "Batch One"}},
            {"bId": "b2", "operation": "create", "Customer": {"DisplayName": "Home Depot"}},
            {"bId": "b3", "operation": "update", "Invoice": {"Id": inv["Id"], "SyncToken": "7", "sparse": True}},
            {"bId": "b4", "Query": "select * from Customer where DisplayName = 'Batch One'"},
            {"bId": "b5", "operation": "delete", "Invoice": {"Id": inv["Id"], "SyncToken": "0"}},
        ]
    }
    r = await qbo.post("batch", body)
    assert r.status_code == 200
    items = {item["bId"]: item for item in r.json()["BatchItemResponse"]}
    assert items["b1"]["Customer"]["DisplayName"] == "Batch One"
    assert items["b2"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["b3"]["Fault"]["Error"][0]["code"] == "5010"
    assert items["b4"]["QueryResponse"]["Customer"][0]["DisplayName"] == "Batch One"
    assert items["b5"]["Invoice"]["status"] == "Deleted"

    too_many = {"BatchItemRequest": [{"bId": f"b{i}", "Query": "select * from Item"} for i in range(31)]}
    r = await qbo.post("batch", too_many)
    assert r.status_code == 400 and error(r)["code"] == "1040"


async def test_cdc_reports_changes_and_deletions_within_30_days(qbo: QBO, emulator) -> None:
    since = "2000-01-01T00:00:00-08:00"
    r = await qbo.get("cdc", entities="Customer", changedSince=since)
    assert r.status_code == 400 and "30 days" in error(r)["Detail"]

    emulator.clock.advance(60)
    mark = qbo_time(emulator.clock.now())
    emulator.clock.advance(1)
    c = await qbo.create("Customer", {"DisplayName": "Changed Lately"})
    inv = await qbo.create("Invoice", invoice_body(customer=c["Id"]))
    await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": "0"}, operation="delete")
    r = await qbo.get("cdc", entities="Customer,Invoice,Payment", changedSince=mark)
    assert r.status_code == 200, r.text
    responses = r.json()["CDCResponse"][0]["QueryResponse"]
    assert [x["Id"] for x in responses[0]["Customer"]] == [c["Id"]]
    assert responses[1]["Invoice"] == [
        {"domain": "QBO", "status": "Deleted", "Id": inv["Id"], "MetaData": responses[1]["Invoice"][0]["MetaData"]}
    ]
    assert responses[2] == {}
    assert error(await qbo.get("cdc", entities="Customer"))["element"] == "changedSince"


async def test_cdc_caps_at_1000_objects_oldest_first(qbo: QBO, emulator) -> None:
    mark = qbo_time(emulator.clock.now() - 1)
    company = emulator.companies[US_REALM]
    for i in range(1005):
        company.create("Customer", {"DisplayName": f"Bulk {i}"})
    r = await qbo.get("cdc", entities="Customer", changedSince=mark)
    rows = r.json()["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert len(rows) == 1000 and rows[0]["DisplayName"] == "Bulk 0"


async def test_requestid_replays_the_original_reply_without_creating_twice(qbo: QBO, emulator) -> None:
    body = {"DisplayName": "Only Once"}
    first = await qbo.post("customer", body, requestid="rq-1")
    again = await qbo.post("customer", body, requestid="rq-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    r = await qbo.query("select count(*) from Customer where DisplayName = 'Only Once'")
    assert r.json()["QueryResponse"]["totalCount"] == 1
    # Without the requestid the retry is a new create, and here a name clash.
    assert error(await qbo.post("customer", body))["code"] == "6240"


async def test_drop_after_commit_then_retry_with_same_requestid(qbo: QBO, emulator) -> None:
    emulator.faults.append(FaultRule(kind="drop_after_commit", count=1, path="/invoice$"))
    with pytest.raises(EmulatedDrop):
        await qbo.post("invoice", invoice_body(), requestid="inv-77")
    r = await qbo.post("invoice", invoice_body(), requestid="inv-77")
    assert r.status_code == 200
    assert (await qbo.query("select count(*) from Invoice")).json()["QueryResponse"]["totalCount"] == 1


async def test_injected_faults_use_qbo_bodies_on_data_endpoints(qbo: QBO, http) -> None:
    for path, status in (("/customer$", 503), ("/query$", 500), ("/batch$", 502), ("/cdc$", 500)):
        await http.post("/_emulator/faults", json={"kind": "status", "status": status, "count": 1, "path": path})
    r = await qbo.post("customer", {"DisplayName": "Never Made"})
    assert r.status_code == 503 and r.json()["Fault"]["type"] == "SystemFault"
    assert (await qbo.query("select * from Customer")).status_code == 500
    assert (await qbo.post("batch", {"BatchItemRequest": []})).status_code == 502
    assert (await qbo.get("cdc", entities="Customer", changedSince="2020-01-01")).status_code == 500
    await http.post("/_emulator/faults", json={"kind": "rate_limit", "count": 1, "retry_after": 60, "path": "/v3/"})
    r = await qbo.get("invoice/1")
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["Fault"]["Error"][0]["code"] == "3001"
    assert "ThrottleExceeded" in r.json()["Fault"]["Error"][0]["Message"]


async def test_batch_limit_and_retry_after_scale_with_time() -> None:
    emulator = create_emulator(EmulatorConfig(hub_url="http://hub.test", time_scale=60, deliver_webhooks=False))
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Item"}]}
        replies = [await qbo.post("batch", batch) for _ in range(41)]
        assert [r.status_code for r in replies].count(200) == 40
        last = replies[-1]
        assert last.status_code == 429 and last.json()["Fault"]["Error"][0]["code"] == "3001"
        # About 60 emulated seconds to wait, at 60x, is about one real second.
        assert int(last.headers["retry-after"]) == 1
        assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 200  # other calls still pass


async def test_500_requests_a_minute_per_realm(qbo: QBO, emulator) -> None:
    for _ in range(500):
        assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 200
    r = await qbo.get(f"companyinfo/{US_REALM}")
    assert r.status_code == 429 and r.json()["Fault"]["Error"][0]["code"] == "3001"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    emulator.clock.advance(61)
    assert (await qbo.get(f"companyinfo/{US_REALM}")).status_code == 200


async def test_concurrency_limit_is_ten_per_realm(qbo: QBO, emulator) -> None:
    gate = asyncio.Event()
    original = emulator.dispatch

    async def slow(company, path, request):
        await gate.wait()
        return await original(company, path, request)

    emulator.dispatch = slow
    tasks = [asyncio.create_task(qbo.get(f"companyinfo/{US_REALM}")) for _ in range(12)]
    await asyncio.sleep(0.2)
    gate.set()
    statuses = sorted(r.status_code for r in await asyncio.gather(*tasks))
    assert statuses == [200] * 10 + [429] * 2
    assert emulator.max_inflight[US_REALM] == 10
