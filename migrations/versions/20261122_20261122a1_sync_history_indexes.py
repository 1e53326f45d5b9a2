"""sync history indexes: a page of runs per filter (status, entity) reads its rows and stops; "Synced today"
reads today's ledger rows only

Revision ID: 20261122a1
Revises: 8f33ffea964f
Create Date: 2026-11-22 00:47:51.201884
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261122a1"
down_revision: str | None = "8f33ffea964f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_sync_ledger_synced", ["connection_id", "state", "synced_at"], unique=False)
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_connection_started")
        batch_op.create_index("ix_sync_runs_connection_started", ["connection_id", "started_at", "id"], unique=False)
        batch_op.create_index(
            "ix_sync_runs_connection_entity", ["connection_id", "entity", "started_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_sync_runs_connection_status", ["connection_id", "status", "started_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_ledger_synced")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_connection_status")
        batch_op.drop_index("ix_sync_runs_connection_entity")
        batch_op.drop_index("ix_sync_runs_connection_started")
        batch_op.create_index("ix_sync_runs_connection_started", ["connection_id", "started_at"], unique=False)
