"""The two errors every core service raises: a record that isn't there, and input that can't be accepted."""

from __future__ import annotations

from collections.abc import Mapping


class NotFound(LookupError):
    """The record does not exist, or belongs to another tenant (the two are indistinguishable on purpose)."""

    def __init__(self, entity: str, record_id: object) -> None:
        super().__init__(f"{entity} {record_id} not found")
        self.entity = entity
        self.record_id = record_id


class ValidationFailed(ValueError):
    """Input refused, with one plain-words message per field; nothing was written.

    Keys are field names as the caller sent them (nested ones dotted: "lines.2.quantity"), so a form can
    put each message next to its field and an API can answer 422 with the same map.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()) or "invalid input")

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: message})
