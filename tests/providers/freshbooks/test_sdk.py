"""The official freshbooks-sdk against the FreshBooks emulator, unmodified but for the host (FreshBooks' own
FRESHBOOKS_API_URL setting): the code exchange and refresh, users/me, clients and invoices listed and created."""

from __future__ import annotations

import httpx
import pytest
from freshbooks import Client, FilterBuilder, PaginateBuilder
from freshbooks.errors import FreshBooksError

from fieldhub.providers.freshbooks.emulator import BUSINESSES, FreshBooksEmulator
from tests.providers.freshbooks.harness import CONFIG, consent_code

ACCOUNT = BUSINESSES[0].extra["account_id"]


def test_issue18_item3_official_sdk_drives_clients_and_invoices(
    served: tuple[FreshBooksEmulator, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, port = served
    monkeypatch.setenv("FRESHBOOKS_API_URL", f"http://127.0.0.1:{port}")
    sdk = Client(client_id=CONFIG.client_id, client_secret=CONFIG.client_secret, redirect_uri=CONFIG.redirect_uri)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        code = consent_code(http)
    tokens = sdk.get_access_token(code)
    assert tokens.access_token_expires_at is not None
    old_refresh = tokens.refresh_token
    sdk.refresh_access_token()  # single-use: the SDK keeps the new one
    assert sdk.refresh_token != old_refresh

    identity = sdk.current_user()
    assert identity.business_memberships[0].business.account_id == ACCOUNT

    client = sdk.clients.create(ACCOUNT, {"organization": "SDK Plumbing", "email": "sdk@plumb.example"})
    assert client.organization == "SDK Plumbing" and client.id
    filters = FilterBuilder().equals("email", "sdk@plumb.example")
    listed = sdk.clients.list(ACCOUNT, builders=[filters, PaginateBuilder(1, 10)])
    assert [c.id for c in listed] == [client.id] and listed.pages.total == 1

    invoice = sdk.invoices.create(
        ACCOUNT,
        {"customerid": client.id, "create_date": "2026-12-01",
         "lines": [{"name": "Service call", "qty": 1, "unit_cost": {"amount": "95.00", "code": "USD"}}]},
    )  # fmt: skip
    assert invoice.v3_status == "draft" and invoice.amount.amount == "95.00"
    sent = sdk.invoices.update(ACCOUNT, invoice.id, {"action_mark_as_sent": True})
    assert sent.v3_status == "sent"
    invoices = sdk.invoices.list(ACCOUNT, builders=[FilterBuilder().equals("customerid", client.id)])
    assert [i.invoice_number for i in invoices] == [invoice.invoice_number]

    with pytest.raises(FreshBooksError) as missing:
        sdk.clients.get(ACCOUNT, 1)
    assert missing.value.status_code == 404 and missing.value.error_code == 1012
    assert str(missing.value) == "Client not found."
