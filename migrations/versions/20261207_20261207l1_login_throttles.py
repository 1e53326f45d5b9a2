"""login_throttles: failed sign-ins per account and per client address, shared by every process

Revision ID: 20261207l1
Revises: 20261207a1
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207l1"
down_revision: str | None = "20261207a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index(op.f("ix_login_throttles_window_ends_at"), "login_throttles", ["window_ends_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttles_window_ends_at"), table_name="login_throttles")
    op.drop_table("login_throttles")
