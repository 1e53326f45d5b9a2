"""Status rules: what is pushed, and as what operation."""

from __future__ import annotations

import pytest

from fieldhub.core.events import DomainEvent
from fieldhub.hub.sync.models import Operation
from fieldhub.hub.sync.rules import operation_for


def event(entity: str, status: str = "", kind: str = "updated") -> DomainEvent:
    return DomainEvent(tenant_id=1, entity=entity, record_id=1, version=2, kind=kind, data={"status": status})


@pytest.mark.parametrize(
    ("entity", "status", "synced", "expected"),
    [
        ("invoice", "DRAFT", False, None),
        ("invoice", "OPEN", False, Operation.UPSERT),
        ("invoice", "SENT", True, Operation.UPSERT),
        ("invoice", "PAID", True, Operation.UPSERT),
        ("invoice", "VOID", False, None),
        ("invoice", "VOID", True, Operation.VOID),
        ("payment", "pending", False, None),
        ("payment", "failed", False, None),
        ("payment", "failed", True, Operation.DELETE),
        ("payment", "succeeded", False, Operation.UPSERT),
        ("customer", "", False, Operation.UPSERT),
        ("refund", "", False, Operation.UPSERT),
    ],
)
def test_operation_for(entity: str, status: str, synced: bool, expected: Operation | None) -> None:
    assert operation_for(event(entity, status), already_synced=synced) == expected


def test_deleted_records() -> None:
    assert operation_for(event("customer", kind="deleted"), already_synced=True) == Operation.DELETE
    assert operation_for(event("customer", kind="deleted"), already_synced=False) is None
