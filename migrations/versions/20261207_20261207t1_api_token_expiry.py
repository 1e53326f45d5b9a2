"""api_tokens.expires_at: a personal API token stops working at the expiry chosen when it was made (issue 14 item 9)

Tokens made before this had none: they get 90 days from the upgrade (the default for a new one), so no
integration stops at once and none works for ever.

Revision ID: 20261207t1
Revises: 20261207h1
Create Date: 2026-12-07 19:50:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "20261207t1"
down_revision: str | None = "20261207h1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime(timezone=True)))
    op.execute(tokens.update().values(expires_at=datetime.now(UTC) + timedelta(days=90)))
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
