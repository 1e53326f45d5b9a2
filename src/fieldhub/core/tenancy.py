"""What every tenant-owned record has: its tenant and a version bumped on every write."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from fieldhub.db import IdMixin, TimestampMixin


class TenantRecord(IdMixin, TimestampMixin):
    @declared_attr
    def tenant_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)

    # Bumped by the service on every write; the sync ledger compares it with what it last pushed.
    version: Mapped[int] = mapped_column(Integer, default=1)
