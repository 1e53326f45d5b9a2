"""vitals_readings and seo_fetches: Core Web Vitals p75 per period and the log of every SEO fetch (capabilities/seo)

Revision ID: 20261207cw1
Revises: 20261207m2
Create Date: 2026-12-07 20:06:28.641926
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207cw1"
down_revision: str | None = "20261207m2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "seo_fetches",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_seo_fetches_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_seo_fetches_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seo_fetches")),
    )
    with op.batch_alter_table("seo_fetches", schema=None) as batch_op:
        batch_op.create_index("ix_seo_fetches_connection", ["connection_id", "fetched_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_seo_fetches_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "vitals_readings",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("form_factor", sa.String(length=10), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("lcp_ms", sa.Integer(), nullable=True),
        sa.Column("inp_ms", sa.Integer(), nullable=True),
        sa.Column("cls", sa.BigInteger(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_vitals_readings_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vitals_readings_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vitals_readings")),
        sa.UniqueConstraint(
            "connection_id",
            "origin",
            "form_factor",
            "period_end",
            name=op.f("uq_vitals_readings_connection_id_origin_form_factor_period_end"),
        ),
    )
    with op.batch_alter_table("vitals_readings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vitals_readings_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("vitals_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vitals_readings_tenant_id"))

    op.drop_table("vitals_readings")
    with op.batch_alter_table("seo_fetches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seo_fetches_tenant_id"))
        batch_op.drop_index("ix_seo_fetches_connection")

    op.drop_table("seo_fetches")
