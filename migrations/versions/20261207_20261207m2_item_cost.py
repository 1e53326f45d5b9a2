"""items.cost: what a unit costs the business, for billing memory's markup figures (capabilities/memory/ask.py)

Revision ID: 20261207m2
Revises: 20261207m1
Create Date: 2026-12-07 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207m2"
down_revision: str | None = "20261207m1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("cost", sa.BigInteger(), nullable=True))  # ScaledDecimal(2): cents


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("cost")
