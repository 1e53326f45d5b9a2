"""The QuickBooks emulator's webhooks and bookkeeper controls: payloads, signature, delivery, retries."""

from __future__ import annotations

import asyncio
import json

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator import US_REALM, create_emulator
from fieldhub.providers.quickbooks.emulator.webhooks import sign

from .conftest import QBO, connect, emu_client
from .test_emulator import invoice_body

SECRET = "verifier-token-123"


class Hub:
    """A stand-in hub endpoint that records what it receives and can be told to fail."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.app = FastAPI()

        @self.app.post("/webhooks/quickbooks")
        async def receive(request: Request) -> Response:
            body = await request.body()
            if self.fail:
                self.fail -= 1
                return Response(status_code=503)
            self.received.append((dict(request.headers), body))
            return Response(status_code=200)


def make(deliver: bool = False):
    hub = Hub()
    config = EmulatorConfig(hub_url="http://hub.test", webhook_secret=SECRET, deliver_webhooks=deliver)
    emulator = create_emulator(config, webhook_transport=httpx.ASGITransport(app=hub.app))
    return hub, emulator


def test_signature_matches_intuits_published_vector() -> None:
    body = (
        b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":['
        b'{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
    )
    assert sign(body, "b5771f19b12ddb4bcdb9f08bdc50bc63878a") == "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="


async def test_classic_notifications_are_signed_and_bundled() -> None:
    hub, emulator = make()
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        customer = await qbo.create("Customer", {"DisplayName": "Hook Test"})
        inv = await qbo.create("Invoice", invoice_body(customer=customer["Id"]))
        await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": "0"}, operation="void")
        assert hub.received == []  # delivery is off: only queued
        r = await http.post("/_emulator/webhooks/flush")
        assert r.json()["statuses"] == ["delivered"]
    headers, body = hub.received[0]
    assert headers["intuit-signature"] == sign(body, SECRET)
    payload = json.loads(body)
    note = payload["eventNotifications"][0]
    assert note["realmId"] == US_REALM
    events = [(e["name"], e["id"], e["operation"]) for e in note["dataChangeEvent"]["entities"]]
    assert events == [
        ("Customer", customer["Id"], "Create"),
        ("Invoice", inv["Id"], "Create"),
        ("Invoice", inv["Id"], "Void"),
    ]
    assert note["dataChangeEvent"]["entities"][0]["lastUpdated"][-5:] in ("-0700", "-0800")


async def test_cloudevents_format() -> None:
    hub, emulator = make()
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        assert (await http.post("/_emulator/webhooks/format", json={"format": "cloudevents"})).status_code == 200
        customer = await qbo.create("Customer", {"DisplayName": "Cloud Test"})
        await http.post("/_emulator/webhooks/flush")
    headers, body = hub.received[0]
    assert headers["intuit-signature"] == sign(body, SECRET)
    events = json.loads(body)
    assert isinstance(events, list)
    event = events[0]
    assert event["specversion"] == "1.0" and event["type"] == "qbo.customer.created.v1"
    assert event["intuitaccountid"] == US_REALM and event["intuitentityid"] == customer["Id"]
    assert event["id"].endswith(f"-Customer-{customer['Id']}") and event["time"].endswith("Z")


async def test_failed_deliveries_retry_with_backoff() -> None:
    hub, emulator = make()
    hub.fail = 1
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        await qbo.create("Customer", {"DisplayName": "Retry Me"})
        r = await http.post("/_emulator/webhooks/flush")
        assert r.json()["statuses"] == ["failed"]
        assert (await http.post("/_emulator/webhooks/flush", params={"due_only": True})).json()["attempted"] == 0
        emulator.clock.advance(11)
        assert (await http.post("/_emulator/webhooks/flush", params={"due_only": True})).json()["statuses"] == [
            "delivered"
        ]
        listing = (await http.get("/_emulator/webhooks")).json()
    delivery = listing["deliveries"][0]
    assert delivery["attempts"] == 2 and delivery["responses"] == ["503", "200"]
    assert len(hub.received) == 1


async def test_automatic_delivery_when_enabled() -> None:
    hub, emulator = make(deliver=True)
    emulator.webhooks.window = 0.01
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        await qbo.create("Customer", {"DisplayName": "Pushed"})
        for _ in range(100):
            if hub.received:
                break
            await asyncio.sleep(0.01)
        await emulator.webhooks.aclose()
    assert (
        json.loads(hub.received[0][1])["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["name"] == "Customer"
    )


async def test_bookkeeper_controls_change_quickbooks_and_notify() -> None:
    hub, emulator = make()
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        inv = await qbo.create("Invoice", invoice_body())
        base = f"/_emulator/companies/{US_REALM}"
        r = await http.post(f"{base}/invoice/{inv['Id']}/pay", json={"amount": "100.00", "reference": "chk 1001"})
        assert r.status_code == 200 and r.json()["Payment"]["PaymentRefNum"] == "chk 1001"
        r = await http.post(f"{base}/customer/1", json={"PrimaryPhone": {"FreeFormNumber": "555-0199"}})
        assert r.json()["Customer"]["SyncToken"] == "1"
        r = await http.post(f"{base}/customer", json={"DisplayName": "Home Depot"})
        assert r.status_code == 400 and r.json()["Fault"]["Error"][0]["code"] == "6240"
        r = await http.post(f"{base}/invoice/{inv['Id']}/void")
        assert r.json()["Invoice"]["TotalAmt"] == 0
        # The API client's copy is now stale, as after any edit made in QuickBooks.
        r = await qbo.post("invoice", {"Id": inv["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"})
        assert r.json()["Fault"]["Error"][0]["code"] == "5010"

        state = (await http.get("/_emulator/state")).json()
        company = state[US_REALM]
        assert company["counts"]["Payment"] == 1 and company["counts"]["Invoice"] == 1
        (payment,) = company["objects"]["Payment"].values()
        assert payment["TotalAmt"] == "100.00"  # exact, not a float

        await http.post("/_emulator/webhooks/flush")
    entities = json.loads(hub.received[0][1])["eventNotifications"][0]["dataChangeEvent"]["entities"]
    ops = [(e["name"], e["operation"]) for e in entities]
    assert ("Payment", "Create") in ops and ("Customer", "Update") in ops and ("Invoice", "Void") in ops
    assert ("Invoice", "Update") in ops  # the payment changed the invoice's balance


async def test_reset_restores_the_seed() -> None:
    _, emulator = make()
    async with emu_client(emulator) as http:
        qbo = QBO(http, US_REALM, (await connect(http))["access_token"])
        await qbo.create("Customer", {"DisplayName": "Temp"})
        await http.post("/_emulator/reset")
        state = (await http.get("/_emulator/state")).json()
    assert state[US_REALM]["counts"]["Customer"] == 2
