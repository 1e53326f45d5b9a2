"""subcontractors and sub_tickets: work given to another company on a job, emailed on assignment (issue 22 item 5)

Revision ID: 20261207s1
Revises: 20261207t1
Create Date: 2026-12-07 19:33:13.159392
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207s1"
down_revision: str | None = "20261207t1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "subcontractors",
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("trade", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_subcontractors_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subcontractors")),
    )
    with op.batch_alter_table("subcontractors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subcontractors_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "sub_tickets",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("subcontractor_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scheduled_on", sa.Date(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("public_token", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_sub_tickets_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["subcontractor_id"],
            ["subcontractors.id"],
            name=op.f("fk_sub_tickets_subcontractor_id_subcontractors"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sub_tickets_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sub_tickets")),
        sa.UniqueConstraint("public_token", name=op.f("uq_sub_tickets_public_token")),
    )
    with op.batch_alter_table("sub_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sub_tickets_subcontractor_id"), ["subcontractor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sub_tickets_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_sub_tickets_tenant_job", ["tenant_id", "job_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("sub_tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_sub_tickets_tenant_job")
        batch_op.drop_index(batch_op.f("ix_sub_tickets_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_sub_tickets_subcontractor_id"))

    op.drop_table("sub_tickets")
    with op.batch_alter_table("subcontractors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subcontractors_tenant_id"))

    op.drop_table("subcontractors")
