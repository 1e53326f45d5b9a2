"""The FreshBooks emulator against FreshBooks' recorded replies (shared/specs/freshbooks) and its documented rules:
the response envelope, error bodies, paging, 12-hour access and single-use refresh tokens, invoices from draft to
sent to paid, deletes as FreshBooks does them, and webhook callbacks with the verification handshake and signature."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from fieldhub.providers.freshbooks.emulator import BUSINESSES, FreshBooksEmulator, sign
from tests.providers.freshbooks.harness import CONFIG, SPECS, recorded, token

pytestmark = pytest.mark.skipif(SPECS is None, reason="shared/specs/freshbooks is not here")
ACCOUNT = BUSINESSES[0].extra["account_id"]
BASE = f"/accounting/account/{ACCOUNT}"


def shape(value: Any) -> Any:  # noqa: ANN401
    """JSON types, recursively, of a reply (keys and the type of each value)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def keys_and_types(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Where ours differs from the recorded reply on a key both carry (None in theirs matches anything)."""
    return [f"{k}: {type(ours[k]).__name__} != {type(v).__name__}" for k, v in theirs.items()
            if k in ours and v is not None and ours[k] is not None and type(ours[k]) is not type(v)]  # fmt: skip


@pytest.fixture
def http(served: tuple[FreshBooksEmulator, int]) -> httpx.Client:
    emulator, port = served
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        client.headers["Authorization"] = f"Bearer {token(client)['access_token']}"
        yield client


def test_issue18_item3_token_reply_is_freshbooks_and_refresh_tokens_work_once(
    served: tuple[FreshBooksEmulator, int],
) -> None:
    emulator, port = served
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        first = token(client)
        assert list(first) == [k for k in recorded("auth_token_response.json") if k != "id_token"]
        assert first["token_type"] == "Bearer" and first["expires_in"] == 43200  # 12 hours
        form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                "client_id": CONFIG.client_id, "client_secret": CONFIG.client_secret,
                "redirect_uri": CONFIG.redirect_uri}  # fmt: skip
        second = client.post("/auth/oauth/token", data=form)
        assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
        again = client.post("/auth/oauth/token", data=form)  # the old refresh token died at once
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        me = client.get("/auth/api/v1/users/me", headers={"Authorization": f"Bearer {first['access_token']}"})
        ours, theirs = me.json()["response"], recorded("auth_me_response.json")["response"]
        business = ours["business_memberships"][0]["business"]
        assert business["account_id"] == ACCOUNT and business["id"] == int(BUSINESSES[0].id)
        assert not keys_and_types(business, theirs["business_memberships"][0]["business"])
        assert client.get("/auth/api/v1/users/me").json() == {
            "error": "unauthenticated", "error_description": "This action requires authentication to continue."
        }  # fmt: skip


def test_issue18_item3_clients_envelope_paging_and_errors_match_the_recorded_replies(http: httpx.Client) -> None:
    made = [
        http.post(
            f"{BASE}/users/clients",
            json={"client": {"organization": f"Org {i}", "email": f"c{i}@x.example", "fname": "Pat", "lname": f"{i}"}},
        )  # fmt: skip
        for i in range(3)
    ]
    created = made[0].json()
    theirs = recorded("create_client_response.json")
    assert list(created) == ["response"] and list(created["response"]) == ["result"]
    assert list(created["response"]["result"]) == list(theirs["response"]["result"])  # ["client"]
    assert not keys_and_types(created["response"]["result"]["client"], theirs["response"]["result"]["client"])

    page = http.get(f"{BASE}/users/clients", params={"page": 2, "per_page": 2}).json()["response"]["result"]
    listed = recorded("list_clients_response.json")["response"]["result"]
    assert sorted(page) == sorted(listed)  # clients, page, pages, per_page, total
    assert (page["page"], page["per_page"], page["pages"]) == (2, 2, (page["total"] + 1) // 2)
    assert http.get(f"{BASE}/users/clients", params={"per_page": 500}).json()["response"]["result"]["per_page"] == 100
    found = http.get(f"{BASE}/users/clients", params={"search[email]": "C1@x.example"}).json()["response"]["result"]
    assert [c["organization"] for c in found["clients"]] == ["Org 1"]

    missing = http.get(f"{BASE}/users/clients/12345")
    assert missing.status_code == 404
    assert shape(missing.json()) == shape(recorded("get_client_response__not_found.json"))
    assert (
        missing.json()["response"]["errors"][0] | {"value": "12345"}
        == recorded("get_client_response__not_found.json")["response"]["errors"][0]
    )

    # Clients are deleted by a PUT of vis_state 1 and leave the default (active) list.
    client_id = made[2].json()["response"]["result"]["client"]["id"]
    gone = http.put(f"{BASE}/users/clients/{client_id}", json={"client": {"vis_state": 1}})
    assert gone.json()["response"]["result"]["client"]["vis_state"] == 1
    assert client_id not in [c["id"] for c in http.get(f"{BASE}/users/clients").json()["response"]["result"]["clients"]]
    other = BUSINESSES[1].extra["account_id"]
    assert http.get(f"/accounting/account/{other}/users/clients").status_code == 403


def test_issue18_item3_invoice_draft_sent_paid_payment_undone_and_deleted(http: httpx.Client) -> None:
    customer = http.post(f"{BASE}/users/clients", json={"client": {"organization": "Acme", "email": "a@acme.example"}})
    customerid = customer.json()["response"]["result"]["client"]["id"]
    item = http.post(f"{BASE}/items/items", json={"item": {"name": "Valve", "unit_cost": {"amount": "40.00"}}})
    assert item.json()["response"]["result"]["item"]["unit_cost"] == {"amount": "40.00", "code": "USD"}
    lines = [
        {
            "name": "Valve",
            "qty": 2,
            "unit_cost": {"amount": "40.00", "code": "USD"},
            "taxName1": "GST",
            "taxAmount1": "5",
        },
        {"name": "Labour", "qty": "1.5", "unit_cost": {"amount": "100"}},
    ]
    body = {"invoice": {"customerid": customerid, "create_date": "2026-12-01", "currency_code": "USD", "lines": lines}}
    invoice = http.post(f"{BASE}/invoices/invoices", json=body).json()["response"]["result"]["invoice"]
    assert invoice["v3_status"] == "draft" and invoice["amount"] == {"amount": "234.00", "code": "USD"}  # 80+4+150
    url = f"{BASE}/invoices/invoices/{invoice['id']}"
    sent = http.put(url, json={"invoice": {"action_mark_as_sent": True}}).json()["response"]["result"]["invoice"]
    assert sent["v3_status"] == "sent"

    refused = http.post(f"{BASE}/payments/payments", json={"payment": {"invoiceid": invoice["id"], "amount":
                        {"amount": "10.00"}, "date": "2026-12-02", "type": "Barter"}})  # fmt: skip
    assert refused.status_code == 422 and refused.json()["response"]["errors"][0]["field"] == "type"
    part = {"payment": {"invoiceid": invoice["id"], "amount": {"amount": "100.00"}, "date": "2026-12-02",
                        "type": "Credit Card"}}  # fmt: skip
    first = http.post(f"{BASE}/payments/payments", json=part).json()["response"]["result"]["payment"]
    assert http.get(url).json()["response"]["result"]["invoice"]["v3_status"] == "partial"
    part["payment"]["amount"] = {"amount": "134.00"}
    http.post(f"{BASE}/payments/payments", json=part)
    paid = http.get(url).json()["response"]["result"]["invoice"]
    assert paid["v3_status"] == "paid" and paid["outstanding"]["amount"] == "0.00"
    http.put(f"{BASE}/payments/payments/{first['id']}", json={"payment": {"vis_state": 1}})
    back = http.get(url).json()["response"]["result"]["invoice"]
    assert back["v3_status"] == "partial" and back["outstanding"]["amount"] == "100.00"

    listed = http.get(f"{BASE}/payments/payments", params={"search[invoiceid]": invoice["id"]})
    assert listed.json()["response"]["result"]["total"] == 1
    credit = http.post(f"{BASE}/credit_notes/credit_notes", json={"credit_note": {"clientid": customerid,
                       "lines": [{"name": "Refund", "qty": 1, "unit_cost": {"amount": "20.00"}}]}})  # fmt: skip
    assert credit.json()["response"]["result"]["credit_note"]["amount"]["amount"] == "20.00"

    assert http.delete(f"{BASE}/users/clients/{customerid}").status_code == 405  # clients: PUT vis_state
    assert http.delete(url).json() == {"response": {"result": {}}}
    assert http.get(url).json()["response"]["result"]["invoice"]["vis_state"] == 1
    assert http.post(f"{BASE}/invoices/invoices", json={"invoice": {"customerid": 1}}).status_code == 404


def test_issue18_item3_webhook_verification_handshake_then_signed_form_deliveries(
    served: tuple[FreshBooksEmulator, int], http: httpx.Client
) -> None:
    emulator, _ = served
    emulator.sender.enabled = False  # kept in the queue for inspection
    hooks = f"/events/account/{ACCOUNT}/events/callbacks"
    bad = http.post(hooks, json={"callback": {"event": "invoice.explode", "uri": "nope"}})
    assert bad.status_code == 422 and shape(bad.json()) == shape(
        recorded("create_callback_response__validation_error.json")
    )
    made = http.post(hooks, json={"callback": {"event": "invoice.create", "uri": "https://hub.example/webhooks/fb"}})
    callback = made.json()["response"]["result"]["callback"]
    assert shape(callback) == shape(recorded("list_callbacks_response.json")["response"]["result"]["callbacks"][0])
    assert callback["verified"] is False
    verify = dict(parse_qsl(emulator.sender.deliveries[-1].outgoing.body.decode()))
    assert verify["name"] == "callback.verify" and verify["object_id"] == str(callback["callbackid"])

    customer = http.post(f"{BASE}/users/clients", json={"client": {"organization": "Hooked"}})
    customerid = customer.json()["response"]["result"]["client"]["id"]
    invoice = {"invoice": {"customerid": customerid, "create_date": "2026-12-01", "lines": []}}
    before = len(emulator.sender.deliveries)
    http.post(f"{BASE}/invoices/invoices", json=invoice)
    assert len(emulator.sender.deliveries) == before  # nothing to an unverified callback

    url = f"{hooks}/{callback['callbackid']}"
    assert http.put(url, json={"callback": {"verifier": "wrong"}}).status_code == 422
    ok = http.put(url, json={"callback": {"verifier": verify["verifier"]}}).json()["response"]["result"]["callback"]
    assert ok["verified"] is True
    created = http.post(f"{BASE}/invoices/invoices", json=invoice).json()["response"]["result"]["invoice"]
    outgoing = emulator.sender.deliveries[-1].outgoing
    form = dict(parse_qsl(outgoing.body.decode()))
    assert form == {"name": "invoice.create", "object_id": str(created["id"]), "account_id": ACCOUNT,
                    "business_id": BUSINESSES[0].id, "identity_id": "900100", "user_id": "1"}  # fmt: skip
    assert outgoing.headers["X-FreshBooks-Hmac-SHA256"] == sign(verify["verifier"], form)
    listed = http.get(hooks).json()["response"]["result"]
    assert sorted(listed) == sorted(recorded("list_callbacks_response.json")["response"]["result"])


def test_issue18_item3_signature_matches_the_fact_sheets_vector() -> None:
    form = json.loads('{"name": "invoice.create", "object_id": "1234567", "account_id": "6BApk", '
                      '"business_id": "6543", "identity_id": "1234", "user_id": "1"}')  # fmt: skip
    assert sign("test-verifier", form) == "xZJX+xO+LjYfVDYfVCIAK9Xk1gy1TLgKAOyGqibyyfQ="
