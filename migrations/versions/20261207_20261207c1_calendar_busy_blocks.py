"""time_blocks.external_key: a busy event from a connected calendar as the time blocks it became (issue 17 item 4)

"<connection id>:<calendar event id>", so a moved or deleted event moves or frees its blocks, and a later
reader of availability (Voice AI) finds busy time in the same table as blocks entered by hand.

Revision ID: 20261207c1
Revises: 20261207ld1
Create Date: 2026-12-07 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207c1"
down_revision: str | None = "20261207ld1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("time_blocks") as batch:
        batch.add_column(sa.Column("external_key", sa.String(200), nullable=True))
    op.create_index("ix_time_blocks_external", "time_blocks", ["tenant_id", "external_key"])


def downgrade() -> None:
    op.drop_index("ix_time_blocks_external", table_name="time_blocks")
    with op.batch_alter_table("time_blocks") as batch:
        batch.drop_column("external_key")
