"""sync_ledger.remote_updated_at: when the provider last changed the object by fieldhub's hand, so a webhook
that only echoes fieldhub's own write is dropped without a read (hub/sync/echoes.py)

Revision ID: 20261207r1
Revises: 20261207c1
Create Date: 2026-12-07 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207r1"
down_revision: str | None = "20261207c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_ledger") as batch:
        batch.add_column(sa.Column("remote_updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_ledger") as batch:
        batch.drop_column("remote_updated_at")
