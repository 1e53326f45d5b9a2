"""xero-python's accounting_api against the Xero emulator, unmodified but for the host (issue 16 item 4).

Every request the SDK sends and every reply it reads are held to xero_accounting.yaml: the replies by the suite's
spec check, the requests here (`_requests_meet_the_spec`).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from xero_python.accounting import AccountingApi
from xero_python.accounting.models import (
    Account,
    Address,
    Allocation,
    Allocations,
    BankTransaction,
    BankTransactions,
    Contact,
    Contacts,
    CreditNote,
    CreditNotes,
    Invoice,
    Invoices,
    Item,
    Items,
    LineAmountTypes,
    LineItem,
    Payment,
    PaymentDelete,
    Payments,
    Phone,
    Purchase,
)
from xero_python.exceptions import HTTPStatusException
from xero_python.identity import IdentityApi

from fieldhub.providers.xero.emulator import ORGANISATIONS, XeroEmulator
from fieldhub.providers.xero.emulator.spec import load_spec
from tests.providers.xero.harness import authorize, sdk

SCOPES = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.contacts",
    "accounting.settings",
    "accounting.invoices",
    "accounting.payments",
    "accounting.banktransactions",
]
TENANT = ORGANISATIONS[0].id


@pytest.fixture
def api(served: tuple[XeroEmulator, int]) -> tuple[XeroEmulator, AccountingApi, str]:
    emulator, port = served
    _, token = authorize(port, scopes=SCOPES)
    client, _ = sdk(port, token)
    tenant = IdentityApi(client).get_connections()[0].tenant_id  # the tenant chooser reads /connections
    return emulator, AccountingApi(client), tenant


def _requests_meet_the_spec(emulator: XeroEmulator) -> int:
    spec = load_spec()
    if spec is None:
        pytest.skip("shared/specs/xero not found")
    checked = 0
    for entry in emulator.requests:
        if entry.path.startswith("/api.xro/2.0/") and entry.method in ("PUT", "POST") and entry.body:
            problems = spec.request_errors(entry.method, entry.path, json.loads(entry.body))
            assert problems == [], f"{entry.method} {entry.path}: {problems}"
            checked += 1
    return checked


def _bad_request(exc: pytest.ExceptionInfo[HTTPStatusException]) -> dict[str, Any]:
    assert exc.value.status == 400
    return json.loads(exc.value.body)


def test_issue16_item4_sdk_contacts_items_accounts_and_paging(api: tuple[XeroEmulator, AccountingApi, str]) -> None:
    emulator, accounting, tenant = api
    before = datetime.now(UTC) - timedelta(seconds=1)
    billing = Address(
        address_type="POBOX", address_line1="PO Box 12", city="Riverbend", region="OR", postal_code="97000"
    )
    shipping = Address(address_type="STREET", address_line1="14 Mill Lane", city="Riverbend", region="OR")
    made = accounting.create_contacts(
        tenant,
        Contacts(
            contacts=[
                Contact(
                    name="Ada Lovelace",
                    first_name="Ada",
                    last_name="Lovelace",
                    email_address="ada@example.com",
                    addresses=[billing, shipping],
                    phones=[Phone(phone_type="MOBILE", phone_number="555-0101")],
                ),
                Contact(name="Grace Hopper", email_address="grace@example.com"),
            ]
        ),
        idempotency_key="contacts-1",
    ).contacts
    ada = made[0]
    assert ada.contact_id and ada.contact_status == "ACTIVE" and ada.updated_date_utc >= before
    by_type = {a.address_type: a for a in ada.addresses}
    assert by_type["POBOX"].address_line1 == "PO Box 12" and by_type["STREET"].address_line1 == "14 Mill Lane"
    # The same Idempotency-Key: the first reply again, nothing made twice.
    again = accounting.create_contacts(
        tenant,
        Contacts(contacts=[Contact(name="Ada Lovelace"), Contact(name="Grace Hopper")]),
        idempotency_key="contacts-1",
    ).contacts
    assert [c.contact_id for c in again] == [c.contact_id for c in made]
    assert len(emulator.organisations[tenant].contacts) == 2

    # Names are unique among active contacts: Xero's ValidationException, its element's ValidationErrors.
    with pytest.raises(HTTPStatusException) as refused:
        accounting.create_contacts(tenant, Contacts(contacts=[Contact(name="ada lovelace")]))
    body = _bad_request(refused)
    assert body["Type"] == "ValidationException" and body["ErrorNumber"] == 10
    assert "must be unique" in body["Elements"][0]["ValidationErrors"][0]["Message"]

    # Items: tax type and account code, checked against the chart and the tax rates.
    accounts = {a.code: a for a in accounting.get_accounts(tenant).accounts}
    assert accounts["090"].type.value == "BANK" and accounts["200"].type.value == "REVENUE"
    assert {t.tax_type for t in accounting.get_tax_rates(tenant).tax_rates} >= {"NONE", "OUTPUT"}
    item = accounting.create_items(
        tenant,
        Items(
            items=[
                Item(
                    code="SVC-CALL",
                    name="Service call",
                    description="Diagnose and repair",
                    sales_details=Purchase(unit_price=Decimal("95.00"), account_code="200", tax_type="OUTPUT"),
                )
            ]
        ),
    ).items[0]
    assert item.item_id and item.sales_details.account_code == "200" and item.sales_details.tax_type == "OUTPUT"
    with pytest.raises(HTTPStatusException) as refused:
        accounting.create_items(
            tenant, Items(items=[Item(code="X1", sales_details=Purchase(account_code="999", tax_type="OUTPUT"))])
        )
    assert "Account code '999'" in _bad_request(refused)["Elements"][0]["ValidationErrors"][0]["Message"]

    # If-Modified-Since and where, as the SDK sends them.
    changed = accounting.get_contacts(tenant, if_modified_since=before).contacts
    assert {c.name for c in changed} == {"Ada Lovelace", "Grace Hopper"}
    later = datetime.fromtimestamp(emulator.clock.now() + 5, UTC)
    assert accounting.get_contacts(tenant, if_modified_since=later).contacts == []
    found = accounting.get_contacts(tenant, where='EmailAddress=="grace@example.com"').contacts
    assert [c.name for c in found] == ["Grace Hopper"]
    # Paging: pageSize, and the pagination object.
    page = accounting.get_contacts(tenant, page=2, page_size=1)
    assert [c.name for c in page.contacts] == ["Grace Hopper"]
    assert (page.pagination.page, page.pagination.page_count, page.pagination.item_count) == (2, 2, 2)
    organisation = accounting.get_organisations(tenant).organisations[0]
    assert organisation.name == ORGANISATIONS[0].name and organisation.base_currency.value == "USD"
    assert _requests_meet_the_spec(emulator) >= 4


def test_issue16_item4_sdk_invoice_payment_credit_note_and_bank_transaction(
    api: tuple[XeroEmulator, AccountingApi, str],
) -> None:
    emulator, accounting, tenant = api
    contact = accounting.create_contacts(tenant, Contacts(contacts=[Contact(name="Riverside Café")])).contacts[0]
    today = date.fromtimestamp(emulator.clock.now())
    line = LineItem(
        description="Replace water heater",
        quantity=Decimal("1"),
        unit_amount=Decimal("1200.00"),
        account_code="200",
        tax_type="OUTPUT",
    )
    draft = accounting.create_invoices(
        tenant,
        Invoices(
            invoices=[
                Invoice(
                    type="ACCREC",
                    contact=Contact(contact_id=contact.contact_id),
                    line_items=[line],
                    date=today,
                    due_date=today + timedelta(days=14),
                    status="DRAFT",
                )
            ]
        ),
        idempotency_key="inv-1",
    ).invoices[0]
    assert draft.status == "DRAFT" and draft.invoice_number == "INV-0001"
    assert (draft.sub_total, draft.total_tax, draft.total) == (Decimal("1200.00"), Decimal("99.00"), Decimal("1299.00"))
    authorised = accounting.update_invoice(
        tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="AUTHORISED")])
    ).invoices[0]
    assert authorised.status == "AUTHORISED" and authorised.amount_due == Decimal("1299.00")
    # AUTHORISED may not go back to DRAFT.
    with pytest.raises(HTTPStatusException) as refused:
        accounting.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="DRAFT")]))
    assert "not of valid status" in _bad_request(refused)["Elements"][0]["ValidationErrors"][0]["Message"]

    # A payment into the bank account: part, then the rest; PAID when covered.
    first = accounting.create_payment(
        tenant,
        Payment(
            invoice=Invoice(invoice_id=draft.invoice_id),
            account=Account(code="090"),
            amount=Decimal("299.00"),
            date=today,
            reference="ch_1",
        ),
        idempotency_key="pay-1",
    ).payments[0]
    assert first.payment_type == "ACCRECPAYMENT" and first.status == "AUTHORISED"
    with pytest.raises(HTTPStatusException) as refused:
        accounting.create_payment(
            tenant,
            Payment(invoice=Invoice(invoice_id=draft.invoice_id), account=Account(code="090"), amount=Decimal("5000")),
        )
    assert "exceeds the amount outstanding" in _bad_request(refused)["Elements"][0]["ValidationErrors"][0]["Message"]
    # An invoice with a payment cannot be voided.
    with pytest.raises(HTTPStatusException):
        accounting.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")]))
    accounting.create_payments(
        tenant,
        Payments(
            payments=[
                Payment(
                    invoice=Invoice(invoice_id=draft.invoice_id),
                    account=Account(code="090"),
                    amount=Decimal("1000.00"),
                    date=today,
                )
            ]
        ),
    )
    paid = accounting.get_invoice(tenant, draft.invoice_id).invoices[0]
    assert paid.status == "PAID" and paid.amount_paid == Decimal("1299.00") and paid.fully_paid_on_date == today
    # Deleting a payment makes it AUTHORISED again.
    accounting.delete_payment(tenant, first.payment_id, PaymentDelete(status="DELETED"))
    reopened = accounting.get_invoice(tenant, draft.invoice_id).invoices[0]
    assert reopened.status == "AUTHORISED" and reopened.amount_due == Decimal("299.00")

    # A refund: a credit note allocated to the invoice.
    credit = accounting.create_credit_notes(
        tenant,
        CreditNotes(
            credit_notes=[
                CreditNote(
                    type="ACCRECCREDIT",
                    contact=Contact(contact_id=contact.contact_id),
                    line_items=[
                        LineItem(
                            description="Refund",
                            quantity=Decimal("1"),
                            unit_amount=Decimal("299.00"),
                            account_code="200",
                            tax_type="NONE",
                        )
                    ],
                    date=today,
                    status="AUTHORISED",
                )
            ]
        ),
    ).credit_notes[0]
    assert credit.credit_note_number == "CN-0001" and credit.remaining_credit == Decimal("299.00")
    allocation = accounting.create_credit_note_allocation(
        tenant,
        credit.credit_note_id,
        Allocations(
            allocations=[Allocation(invoice=Invoice(invoice_id=draft.invoice_id), amount=Decimal("299.00"), date=today)]
        ),
    ).allocations[0]
    assert allocation.amount == Decimal("299.00")
    settled = accounting.get_invoice(tenant, draft.invoice_id).invoices[0]
    assert settled.status == "PAID" and settled.amount_credited == Decimal("299.00")
    assert accounting.get_credit_note(tenant, credit.credit_note_id).credit_notes[0].status == "PAID"

    # A payout: a RECEIVE bank transaction with the fee as its own line.
    deposit = accounting.create_bank_transactions(
        tenant,
        BankTransactions(
            bank_transactions=[
                BankTransaction(
                    type="RECEIVE",
                    bank_account=Account(code="090"),
                    contact=Contact(contact_id=contact.contact_id),
                    date=today,
                    reference="po_1",
                    line_amount_types=LineAmountTypes.NOTAX,
                    line_items=[
                        LineItem(
                            description="Stripe payout gross",
                            quantity=Decimal("1"),
                            unit_amount=Decimal("1299.00"),
                            account_code="092",
                        ),
                        LineItem(
                            description="Stripe fees",
                            quantity=Decimal("1"),
                            unit_amount=Decimal("-37.97"),
                            account_code="404",
                        ),
                    ],
                )
            ]
        ),
        idempotency_key="po_1",
    ).bank_transactions[0]
    assert deposit.type == "RECEIVE" and deposit.status == "AUTHORISED" and deposit.total == Decimal("1261.03")
    listed = accounting.get_bank_transactions(tenant, page=1)
    assert [b.bank_transaction_id for b in listed.bank_transactions] == [deposit.bank_transaction_id]
    assert len(listed.bank_transactions[0].line_items) == 2

    # DRAFT may be deleted; VOIDED is final.
    other = accounting.create_invoices(
        tenant,
        Invoices(
            invoices=[
                Invoice(
                    type="ACCREC",
                    contact=Contact(contact_id=contact.contact_id),
                    line_items=[line],
                    due_date=today,
                    status="AUTHORISED",
                )
            ]
        ),
    ).invoices[0]
    voided = accounting.update_invoice(tenant, other.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")]))
    assert voided.invoices[0].status == "VOIDED"
    assert {i.status for i in accounting.get_invoices(tenant, statuses=["VOIDED"]).invoices} == {"VOIDED"}
    assert _requests_meet_the_spec(emulator) >= 10


def test_issue16_item4_sdk_summarize_errors_false_mixes_written_and_refused(
    api: tuple[XeroEmulator, AccountingApi, str],
) -> None:
    emulator, accounting, tenant = api
    contact = accounting.create_contacts(tenant, Contacts(contacts=[Contact(name="Batch Co")])).contacts[0]
    good = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact.contact_id),
        status="DRAFT",
        line_items=[LineItem(description="Labour", quantity=Decimal("2"), unit_amount=Decimal("80"))],
    )
    bad = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact.contact_id),
        status="AUTHORISED",
        line_items=[
            LineItem(description="Parts", quantity=Decimal("1"), unit_amount=Decimal("10"), account_code="999")
        ],
    )
    # Summarized (the API's default): one bad element refuses the batch and writes nothing.
    with pytest.raises(HTTPStatusException) as refused:
        accounting.create_invoices(tenant, Invoices(invoices=[good, bad]))
    elements = _bad_request(refused)["Elements"]
    assert len(elements) == 1 and elements[0]["HasErrors"] is True
    assert emulator.organisations[tenant].invoices == {}
    # summarizeErrors=false: 200, the good one written, the bad one carrying its errors.
    mixed = accounting.create_invoices(tenant, Invoices(invoices=[good, bad]), summarize_errors=False).invoices
    assert mixed[0].status_attribute_string == "OK" and mixed[0].invoice_id
    assert mixed[1].has_errors is True and mixed[1].status_attribute_string == "ERROR"
    assert "Account code '999'" in mixed[1].validation_errors[0].message
    assert len(emulator.organisations[tenant].invoices) == 1
