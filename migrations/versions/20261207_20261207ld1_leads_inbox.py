"""leads and lead_messages: the Leads inbox (capabilities/leads), one lead per provider object however delivered

Revision ID: 20261207ld1
Revises: 20261207s1
Create Date: 2026-12-07 19:37:38.266226
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207ld1"
down_revision: str | None = "20261207s1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "leads",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("remote_id", sa.String(length=200), nullable=False),
        sa.Column("details", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("remote_status", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_phone", sa.String(length=40), nullable=False),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.JSON(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("lead_price", sa.BigInteger(), nullable=True),
        sa.Column("remote_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("estimate_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_leads_connection_id_connections"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_leads_customer_id_customers")),
        sa.ForeignKeyConstraint(["estimate_id"], ["estimates.id"], name=op.f("fk_leads_estimate_id_estimates")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_leads_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_leads_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("tenant_id", "provider", "remote_id", name=op.f("uq_leads_tenant_id_provider_remote_id")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_leads_inbox", ["tenant_id", "status", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "lead_messages",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=200), nullable=False),
        sa.Column("sender", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_messages_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_lead_messages_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_messages")),
        sa.UniqueConstraint("lead_id", "remote_id", name=op.f("uq_lead_messages_lead_id_remote_id")),
    )
    with op.batch_alter_table("lead_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_messages_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lead_messages_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("lead_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_messages_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_lead_messages_lead_id"))

    op.drop_table("lead_messages")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id"))
        batch_op.drop_index("ix_leads_inbox")
        batch_op.drop_index(batch_op.f("ix_leads_customer_id"))

    op.drop_table("leads")
