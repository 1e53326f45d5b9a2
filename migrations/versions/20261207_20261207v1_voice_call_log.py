"""voice_calls and voice_tool_calls: the phone assistant's call log (issue 21)

Revision ID: 20261207v1
Revises: 20261207c2
Create Date: 2026-12-07 20:12:10.344663
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207v1"
down_revision: str | None = "20261207c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "voice_tool_calls",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("call_remote_id", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_voice_tool_calls_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_tool_calls")),
        sa.UniqueConstraint("signature", name=op.f("uq_voice_tool_calls_signature")),
    )
    with op.batch_alter_table("voice_tool_calls", schema=None) as batch_op:
        batch_op.create_index("ix_voice_tool_calls_call", ["tenant_id", "call_remote_id"], unique=False)
        batch_op.create_index("ix_voice_tool_calls_request", ["tenant_id", "request_key"], unique=False)

    op.create_table(
        "voice_calls",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("remote_id", sa.String(length=120), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("from_number", sa.String(length=40), nullable=False),
        sa.Column("to_number", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("recording_url", sa.String(length=500), nullable=False),
        sa.Column("disconnection_reason", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_voice_calls_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_voice_calls_customer_id_customers"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_voice_calls_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_voice_calls_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_calls")),
        sa.UniqueConstraint("provider", "remote_id", name=op.f("uq_voice_calls_provider_remote_id")),
    )
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.create_index("ix_voice_calls_tenant_started", ["tenant_id", "started_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_calls_tenant_started")

    op.drop_table("voice_calls")
    with op.batch_alter_table("voice_tool_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_tool_calls_request")
        batch_op.drop_index("ix_voice_tool_calls_call")

    op.drop_table("voice_tool_calls")
