"""sync_run_entities: each run's counts per entity (hub/sync/models.SyncRunEntity)

Runs made before this have no per-entity rows, except where the run itself was for one entity (Sync Now
on an entity card): its counts are that entity's, and are copied over.

Revision ID: 20261207a1
Revises: 20261122c1
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207a1"
down_revision: str | None = "20261122c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_run_entities",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("linked", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_sync_run_entities_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_sync_run_entities_run_id_sync_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "entity", name=op.f("pk_sync_run_entities")),
    )
    with op.batch_alter_table("sync_run_entities", schema=None) as batch_op:
        batch_op.create_index("ix_sync_run_entities_latest", ["connection_id", "entity", "run_id"], unique=False)
    op.execute(
        "INSERT INTO sync_run_entities (run_id, entity, connection_id, created, updated, deleted, failed, linked) "
        "SELECT id, entity, connection_id, created, updated, deleted, failed, 0 FROM sync_runs "
        "WHERE entity <> '' AND status <> 'running' AND created + updated + deleted + failed > 0"
    )


def downgrade() -> None:
    with op.batch_alter_table("sync_run_entities", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_run_entities_latest")
    op.drop_table("sync_run_entities")
