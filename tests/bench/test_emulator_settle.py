"""The QBO emulator's O(1) settle after creating an invoice or a payment leaves exactly what the full one would.

The backfill benchmarks create tens of thousands of objects; the full recomputation of every
invoice and customer balance after each write made the emulator quadratic. These tests compare the
fast path with the full recomputation on the same store.
"""

from __future__ import annotations

import copy
import random
from decimal import Decimal

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator import US_REALM, create_emulator


def _company():
    emulator = create_emulator(EmulatorConfig(deliver_webhooks=False, seed=3))
    return emulator.companies[US_REALM]


def test_fast_settle_matches_the_full_recomputation():
    company = _company()
    rng = random.Random(5)
    customers = [company.create("Customer", {"DisplayName": f"Settle {n}"})["Id"] for n in range(4)]
    invoices = []
    for n in range(25):
        invoice = company.create(
            "Invoice",
            {
                "CustomerRef": {"value": rng.choice(customers)},
                "Line": [
                    {
                        "Amount": Decimal(f"{100 + n}.00"),
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": "1"},
                            "Qty": 1,
                            "UnitPrice": Decimal(f"{100 + n}.00"),
                        },
                    }
                ],
            },
        )
        invoices.append(invoice)
        if n % 2:
            paid = rng.choice(invoices)
            amount = Decimal(str(rng.randint(1, 20)))
            current = company.objects["Invoice"][paid["Id"]]
            if current["Balance"] >= amount:
                company.create(
                    "Payment",
                    {
                        "CustomerRef": current["CustomerRef"],
                        "TotalAmt": amount,
                        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}],
                    },
                )
    fast = copy.deepcopy(company.objects)
    changes = len(company.changes)
    company._settle()  # the full recomputation: nothing may differ, nothing may be touched again
    assert company.objects == fast
    assert len(company.changes) == changes
    balances = [company.objects["Invoice"][i["Id"]]["Balance"] for i in invoices]
    assert any(b < i["TotalAmt"] for b, i in zip(balances, invoices, strict=True))  # some payments applied
