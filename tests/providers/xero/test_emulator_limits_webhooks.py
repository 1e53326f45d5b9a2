"""The Xero emulator's limits (headers, 429 with Retry-After and X-Rate-Limit-Problem, the day on its clock), its
If-Modified-Since paging, and its signed webhooks with the Intent to Receive (issue 16 item 4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.providers.xero.emulator import ORGANISATIONS, XeroEmulator
from fieldhub.providers.xero.emulator.webhooks import sign

KEY = "test-webhook-key"
TENANT = ORGANISATIONS[0].id
API = "/api.xro/2.0"


class Hub:
    """Stands in for the hub's /webhooks/xero: 200 to a good signature, 401 to a bad one."""

    def __init__(self) -> None:
        self.received: list[httpx.Request] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        if self.down:
            return httpx.Response(503)
        good = hmac.compare_digest(request.headers["x-xero-signature"], sign(request.content, KEY))
        return httpx.Response(200 if good else 401)


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
async def xero(hub: Hub) -> AsyncIterator[tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]]]:
    config = EmulatorConfig(hub_url="http://hub.test", webhook_secret=KEY, deliver_webhooks=False)
    emulator = XeroEmulator(config, webhook_transport=httpx.MockTransport(hub))
    account = next(a for a in emulator.oauth.accounts if a.id == TENANT)
    emulator.connect(account, "event-1")
    scope = "accounting.contacts accounting.settings accounting.invoices accounting.payments"
    token = emulator.oauth._issue(account, scope, None)["access_token"]
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT, "Accept": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://emu.test") as http:
        yield emulator, http, headers


async def _contact(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    r = await http.put(f"{API}/Contacts", headers=headers, json={"Contacts": [{"Name": name}]})
    assert r.status_code == 200, r.text
    return r.json()["Contacts"][0]


async def test_issue16_item4_limit_headers_and_429_per_minute_with_retry_after(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    emulator, http, headers = xero
    first = await http.get(f"{API}/Contacts", headers=headers)
    assert first.status_code == 200
    assert first.headers["X-MinLimit-Remaining"] == "59"
    assert first.headers["X-DayLimit-Remaining"] == "4999"
    assert first.headers["X-AppMinLimit-Remaining"] == "9999"
    for _ in range(59):
        assert (await http.get(f"{API}/Contacts", headers=headers)).status_code == 200
    limited = await http.get(f"{API}/Contacts", headers=headers)
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-MinLimit-Remaining"] == "0"
    assert limited.json()["Status"] == 429  # api.xero.com's problem body
    # Another tenant has its own minute; a minute later this one has its calls again.
    emulator.clock.advance(61)
    again = await http.get(f"{API}/Contacts", headers=headers)
    assert again.status_code == 200 and again.headers["X-DayLimit-Remaining"] == "4939"


async def test_issue16_item4_day_limit_on_the_emulators_clock(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    emulator, http, headers = xero
    day = next(r for r in emulator.rate_rules if r.name == "day")
    day.limit = 130  # the day's 5,000 scaled down; the rule and its window are Xero's
    sent = 0
    while True:
        r = await http.get(f"{API}/Organisation", headers=headers)
        if r.status_code == 429:
            break
        assert r.status_code == 200
        sent += 1
        if r.headers["X-MinLimit-Remaining"] == "0":
            emulator.clock.advance(60)  # stay under the minute: it is the day that runs out
    assert sent == 130
    assert r.headers["X-Rate-Limit-Problem"] == "day" and r.headers["X-DayLimit-Remaining"] == "0"
    assert int(r.headers["Retry-After"]) > 3600  # the calls of the day age out of its 24 hours
    emulator.clock.advance(int(r.headers["Retry-After"]))
    account = next(a for a in emulator.oauth.accounts if a.id == TENANT)
    fresh = emulator.oauth._issue(account, "accounting.settings", None)["access_token"]  # the old one expired
    assert (
        await http.get(f"{API}/Organisation", headers={**headers, "Authorization": f"Bearer {fresh}"})
    ).status_code == 200


async def test_issue16_item4_five_calls_in_progress_per_tenant(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    emulator, http, headers = xero
    dispatch = emulator.accounting.dispatch

    async def slow(*args: Any) -> Any:  # noqa: ANN401 - the API's own dispatch, held a moment in progress
        await asyncio.sleep(0.2)
        return await dispatch(*args)

    emulator.accounting.dispatch = slow  # type: ignore[method-assign]
    replies = await asyncio.gather(*(http.get(f"{API}/Items", headers=headers) for _ in range(7)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * 5 + [429] * 2
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.headers["X-Rate-Limit-Problem"] == "concurrent" and "Retry-After" not in refused.headers


async def test_issue16_item4_tenant_scope_and_token_are_checked(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, http, headers = xero
    assert (await http.get(f"{API}/Contacts", headers={**headers, "xero-tenant-id": ""})).status_code == 403
    other = {**headers, "xero-tenant-id": ORGANISATIONS[1].id}  # not connected by this grant
    assert (await http.get(f"{API}/Contacts", headers=other)).status_code == 403
    assert (await http.get(f"{API}/BankTransactions", headers=headers)).status_code == 401  # no such scope granted
    r = await http.get(f"{API}/Contacts", headers={**headers, "Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["Detail"] == "AuthenticationUnsuccessful"
    missing = await http.get(f"{API}/Invoices/00000000-0000-0000-0000-000000000000", headers=headers)
    assert missing.status_code == 404


async def test_issue16_item4_if_modified_since_pages_every_change_once(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    emulator, http, headers = xero
    for n in range(5):
        await _contact(http, headers, f"Customer {n}")
    emulator.clock.advance(10)
    mark = datetime.fromtimestamp(emulator.clock.now(), UTC)
    emulator.clock.advance(1)
    renamed = await _contact(http, headers, "Customer 9")
    edited = await http.post(
        f"{API}/Contacts/{(await _contact(http, headers, 'Customer 8'))['ContactID']}",
        headers=headers,
        json={"Contacts": [{"EmailAddress": "eight@example.com"}]},
    )
    assert edited.status_code == 200
    # An HTTP date (what a plain client sends) and the SDK's ISO form both work.
    for since in (format_datetime(mark, usegmt=True), mark.isoformat()):
        r = await http.get(f"{API}/Contacts", headers={**headers, "If-Modified-Since": since}, params={"page": 1})
        assert sorted(c["Name"] for c in r.json()["Contacts"]) == ["Customer 8", "Customer 9"]
    assert r.json()["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 2}
    assert renamed["UpdatedDateUTC"].startswith("/Date(")


async def test_issue16_item4_signed_webhooks_and_intent_to_receive(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]], hub: Hub
) -> None:
    emulator, http, headers = xero
    # Xero's signature: base64(HMAC-SHA256(key, raw body)); the fact sheet's own vector.
    compact = b'{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
    assert sign(compact, KEY) == "qAYGQdoiCV3g0uAzbvP5M/6dDgNoDUK8EQfOLs1aIws="

    intent = (await http.post(f"{CONTROL_PREFIX}/webhooks/intent")).json()
    assert intent["status"] == "OK" and [a["response"] for a in intent["attempts"]] == ["200", "401", "200", "401"]

    contact = await _contact(http, headers, "Hook Co")
    invoice = await http.put(
        f"{API}/Invoices",
        headers=headers,
        json={"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "LineItems": []}]},
    )
    assert invoice.status_code == 200
    hub.received.clear()
    flushed = (await http.post(f"{CONTROL_PREFIX}/webhooks/flush")).json()
    assert flushed["statuses"] == ["delivered"]
    body = json.loads(hub.received[0].content)
    assert [(e["eventCategory"], e["eventType"]) for e in body["events"]] == [
        ("CONTACT", "CREATE"),
        ("INVOICE", "CREATE"),
    ]
    assert body["events"][0]["resourceUrl"].endswith(f"/Contacts/{contact['ContactID']}")
    assert body["firstEventSequence"] == 1 and body["lastEventSequence"] == 2 and body["entropy"]
    expected = base64.b64encode(hmac.new(KEY.encode(), hub.received[0].content, hashlib.sha256).digest()).decode()
    assert hub.received[0].headers["x-xero-signature"] == expected

    # A hub that is down: retried later on the emulator's clock, then delivered.
    hub.down = True
    await http.post(f"{API}/Contacts/{contact['ContactID']}", headers=headers, json={"Contacts": [{"FirstName": "H"}]})
    assert (await http.post(f"{CONTROL_PREFIX}/webhooks/flush")).json()["statuses"] == ["failed"]
    assert (await http.post(f"{CONTROL_PREFIX}/webhooks/flush", params={"due_only": True})).json()["attempted"] == 0
    hub.down = False
    emulator.clock.advance(61)
    assert (await http.post(f"{CONTROL_PREFIX}/webhooks/flush", params={"due_only": True})).json()["statuses"] == [
        "delivered"
    ]


async def test_issue16_item4_bookkeeper_pays_in_xero(
    xero: tuple[XeroEmulator, httpx.AsyncClient, dict[str, str]],
) -> None:
    emulator, http, headers = xero
    contact = await _contact(http, headers, "Paid Co")
    line = {"Description": "Visit", "Quantity": 1, "UnitAmount": 150, "AccountCode": "200"}
    r = await http.put(
        f"{API}/Invoices",
        headers=headers,
        json={
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "Contact": {"ContactID": contact["ContactID"]},
                    "LineItems": [line],
                    "DueDate": "2026-12-31",
                    "Status": "AUTHORISED",
                }
            ]
        },
    )
    invoice = r.json()["Invoices"][0]
    paid = await http.post(f"{CONTROL_PREFIX}/organisations/{TENANT}/invoices/{invoice['InvoiceID']}/pay")
    assert paid.status_code == 200, paid.text
    after = (await http.get(f"{API}/Invoices/{invoice['InvoiceID']}", headers=headers)).json()["Invoices"][0]
    assert after["Status"] == "PAID" and after["AmountDue"] == 0
    payments = (await http.get(f"{API}/Payments", headers=headers)).json()["Payments"]
    assert [p["Invoice"]["InvoiceID"] for p in payments] == [invoice["InvoiceID"]]
    assert emulator.state()[TENANT]["counts"]["Payments"] == 1
