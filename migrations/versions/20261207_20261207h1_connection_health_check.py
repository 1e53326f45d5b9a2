"""connections.checked_at and check_error: the periodic health check's last look (hub/connections/probe.py)

Revision ID: 20261207h1
Revises: 20261207ac1
Create Date: 2026-12-07 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207h1"
down_revision: str | None = "20261207ac1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("check_error", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("check_error")
        batch.drop_column("checked_at")
