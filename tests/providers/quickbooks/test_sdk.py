"""The official python-quickbooks SDK (with intuitlib's AuthClient) against the emulator, unmodified but for the host.

The emulator is served by uvicorn on a real 127.0.0.1 port. Every `requests` session (intuitlib's
AuthClient is one, python-quickbooks opens another) gets an adapter that sends what is addressed to
Intuit's hosts to that port instead, the path and everything else untouched: the SDK reads Intuit's
sandbox discovery document, exchanges the code, refreshes and calls the sandbox API as it would
against Intuit. Every reply it got must validate against Intuit's XSDs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import uvicorn
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException, ValidationException
from quickbooks.objects.base import Address, EmailAddress, Ref
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from requests.adapters import HTTPAdapter

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator import US_REALM, QuickBooksEmulator, create_emulator
from fieldhub.providers.quickbooks.emulator.xsd import find_specs_dir, validate_response

CONFIG = EmulatorConfig(hub_url="http://app.test", deliver_webhooks=False)
# Intuit's hosts an SDK talks to (facts §1.1, §1.2): the discovery document, OAuth, the sandbox API.
INTUIT_HOSTS = {
    "developer.intuit.com",
    "appcenter.intuit.com",
    "oauth.platform.intuit.com",
    "developer.api.intuit.com",
    "sandbox-accounts.platform.intuit.com",
    "sandbox-quickbooks.api.intuit.com",
}
SPECS = find_specs_dir(Path(__file__))


class ToEmulator(HTTPAdapter):
    """Sends a request addressed to an Intuit host to the emulator's port; nothing else is changed."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201 - requests' adapter signature
        parts = urlsplit(request.url)
        if parts.hostname in INTUIT_HOSTS:
            request.url = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, parts.fragment))
        return super().send(request, **kwargs)


@pytest.fixture
def served() -> Iterator[tuple[QuickBooksEmulator, int]]:
    emulator = create_emulator(CONFIG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield emulator, port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def qb(served: tuple[QuickBooksEmulator, int], monkeypatch: pytest.MonkeyPatch) -> Iterator[QuickBooks]:
    """A python-quickbooks client connected to the US sandbox company the way an app connects to Intuit."""
    emulator, port = served
    plain_init = requests.Session.__init__

    def init(self: requests.Session, *args: object, **kwargs: object) -> None:
        plain_init(self, *args, **kwargs)
        self.mount("https://", ToEmulator(port))

    monkeypatch.setattr(requests.Session, "__init__", init)
    auth = AuthClient(CONFIG.client_id, CONFIG.client_secret, CONFIG.redirect_uri, "sandbox")
    # The user's browser: the consent page, then "Connect" for the US company.
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    browser = requests.Session()
    assert browser.get(url).status_code == 200
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    consent = browser.post(
        url.split("?")[0], data={**params, "decision": "approve", "account": US_REALM}, allow_redirects=False
    )
    callback = parse_qs(urlsplit(consent.headers["location"]).query)
    assert callback["state"] == [auth.state_token]
    auth.get_bearer_token(callback["code"][0], realm_id=callback["realmId"][0])
    assert auth.x_refresh_token_expires_in == 8726400
    first = auth.refresh_token
    auth.refresh()  # Intuit rotates the refresh token on every refresh
    assert auth.refresh_token != first and auth.access_token
    client = QuickBooks(auth_client=auth, refresh_token=auth.refresh_token, company_id=auth.realm_id, minorversion=75)
    assert client.sandbox
    yield client
    assert_replies_validate(emulator)


def assert_replies_validate(emulator: QuickBooksEmulator) -> None:
    if SPECS is None:
        return
    api = [e for e in emulator.requests if e.path.startswith("/v3/company/")]
    problems = [
        f"{e.method} {e.path}?{e.query}: {p}"
        for e in api
        for p in validate_response(json.loads(e.response, parse_float=Decimal), SPECS)
    ]
    assert api and problems == []


def company_today(zone: str = "America/Chicago") -> str:
    return datetime.now(ZoneInfo(zone)).date().isoformat()


def test_issue15_item9_sdk_customer_create_read_update_and_query(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "Ada Lovelace (SDK)"
    customer.GivenName = "Ada"
    customer.FamilyName = "Lovelace"
    customer.PrimaryEmailAddr = EmailAddress()
    customer.PrimaryEmailAddr.Address = "ada@example.test"
    customer.BillAddr = Address()  # every field "" but these: QBO keeps only what has a value
    customer.BillAddr.Line1 = "12 Analytical Way"
    customer.BillAddr.City = "Austin"
    saved = customer.save(qb=qb)
    assert saved.Id and saved.SyncToken == "0" and saved.domain == "QBO"
    assert saved.BillAddr.Line1 == "12 Analytical Way"
    assert saved.BillAddr.Line2 == ""  # the SDK's default again: QBO answered no Line2 at all

    read = Customer.get(saved.Id, qb=qb)
    assert read.DisplayName == "Ada Lovelace (SDK)" and read.PrimaryEmailAddr.Address == "ada@example.test"
    assert read.FullyQualifiedName == "Ada Lovelace (SDK)" and read.Balance == 0

    read.Notes = "Side gate"
    updated = read.save(qb=qb)
    assert updated.SyncToken == "1" and updated.Notes == "Side gate"

    found = Customer.filter(DisplayName="Ada Lovelace (SDK)", qb=qb)
    assert [c.Id for c in found] == [saved.Id]
    assert Customer.count("DisplayName LIKE 'Ada%'", qb=qb) == 1
    names = Customer.query("SELECT DisplayName, Id FROM Customer WHERE DisplayName LIKE 'Ada%'", qb=qb)
    assert [(c.DisplayName, c.Id, c.sparse) for c in names] == [("Ada Lovelace (SDK)", saved.Id, True)]
    assert names[0].Notes == ""  # the SDK's own default: a field list answers the fields it names only

    with pytest.raises(ValidationException) as bogus:
        Customer.where("Bogus = 'x'", qb=qb)
    assert bogus.value.error_code == 4001
    assert bogus.value.message == "Invalid query"
    assert bogus.value.detail == "QueryValidationError: property 'Bogus' is not queryable"


def test_issue15_item9_sdk_items_invoice_read_void_payment_and_company(qb: QuickBooks) -> None:
    items = Item.all(qb=qb)  # sends SELECT *, Sku FROM Item
    assert {"Drain cleaning", "Water heater install"} <= {i.Name for i in items}
    drain = next(i for i in items if i.Name == "Drain cleaning")
    customer = Customer.filter(DisplayName="Jordan Smith", qb=qb)[0]

    def invoice_for(amount: int) -> Invoice:
        # The README's invoice: Qty and UnitPrice stay the SDK's 0, the Amount is what is charged.
        line = SalesItemLine()
        line.LineNum = 1
        line.Description = "Kitchen drain"
        line.Amount = amount
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = drain.to_ref()
        invoice = Invoice()
        invoice.CustomerRef = customer.to_ref()
        invoice.Line.append(line)
        return invoice

    invoice = invoice_for(149).save(qb=qb)
    assert invoice.TxnDate == company_today()  # sent as "", dated today in the company's time zone
    due = datetime.fromisoformat(invoice.TxnDate) + timedelta(days=30)
    assert invoice.DueDate == due.date().isoformat() and invoice.SalesTermRef.name == "Net 30"
    assert invoice.DocNumber == "1001" and invoice.TotalAmt == 161.29  # 149 + 8.25 % Austin sales tax
    assert invoice.Balance == invoice.TotalAmt
    assert [line.DetailType for line in invoice.Line] == ["SalesItemLineDetail", "SubTotalLineDetail"]
    assert invoice.Line[0].Id == "1" and invoice.Line[0].SalesItemLineDetail.TaxCodeRef.value == "TAX"

    read = Invoice.get(invoice.Id, qb=qb)
    assert read.DocNumber == invoice.DocNumber and read.TxnDate == invoice.TxnDate

    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = 50
    line = PaymentLine()
    line.Amount = 50
    line.LinkedTxn.append(read.to_linked_txn())  # TxnLineId 1, a number: QBO's ids are strings
    payment.Line.append(line)
    paid = payment.save(qb=qb)
    assert paid.TxnDate == company_today() and paid.UnappliedAmt == 0
    assert paid.Line[0].LinkedTxn[0].TxnId == invoice.Id
    assert Invoice.get(invoice.Id, qb=qb).Balance == round(invoice.TotalAmt - 50, 2)

    second = invoice_for(80).save(qb=qb)
    voided = second.void(qb=qb)["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided"

    company = CompanyInfo.get(US_REALM, qb=qb)
    assert company.CompanyName == "Riverbend Plumbing & Heating" and company.Country == "USA"  # the demo tenant


def test_issue15_item9_sdk_batch_cdc_and_a_fault_as_the_sdk_exception(qb: QuickBooks) -> None:
    # The SDK writes a datetime without an offset; QBO reads it as Pacific time.
    before = datetime.now(ZoneInfo("America/Los_Angeles")) - timedelta(minutes=5)
    fresh, taken = Customer(), Customer()
    fresh.DisplayName = "Batch Newcomer"
    taken.DisplayName = "Home Depot"  # a vendor's name: 6240
    result = batch_create([fresh, taken], qb=qb)
    assert [c.DisplayName for c in result.successes] == ["Batch Newcomer"]
    assert len(result.faults) == 1 and result.faults[0].Error[0].code == "6240"
    assert result.faults[0].original_object is taken

    changes = change_data_capture([Customer, Invoice], before, qb=qb)
    assert [c.DisplayName for c in changes.Customer] == ["Batch Newcomer"]
    assert not hasattr(changes, "Invoice")  # no invoice changed: an empty QueryResponse

    empty = Invoice()
    empty.CustomerRef = Ref()
    empty.CustomerRef.value = "1"
    with pytest.raises(ValidationException) as missing:
        empty.save(qb=qb)  # no lines: 2020, the SDK's ValidationException (2000-4999)
    assert missing.value.error_code == 2020 and "Line" in missing.value.detail
    with pytest.raises(QuickbooksException) as stale:
        customer = Customer.get("1", qb=qb)
        customer.SyncToken = "7"
        customer.save(qb=qb)
    assert stale.value.error_code == 5010
