"""signature_envelopes: estimates sent for signature

Revision ID: 20261207e1
Revises: 20261207r1
Create Date: 2026-12-07 19:46:41.878872
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "20261207e1"
down_revision: str | None = "20261207r1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signature_envelopes",
        sa.Column("estimate_id", sa.Integer(), nullable=False),
        sa.Column("estimate_version", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("send_key", sa.String(length=80), nullable=False),
        sa.Column("remote_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("signer_email", sa.String(length=254), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("embedded", sa.Boolean(), nullable=False),
        sa.Column("sent_by_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=False),
        sa.Column("void_reason", sa.Text(), nullable=False),
        sa.Column("void_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("certificate_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_signature_envelopes_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["estimate_id"],
            ["estimates.id"],
            name=op.f("fk_signature_envelopes_estimate_id_estimates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sent_by_id"], ["users.id"], name=op.f("fk_signature_envelopes_sent_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_signature_envelopes_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_envelopes")),
        sa.UniqueConstraint("send_key", name=op.f("uq_signature_envelopes_send_key")),
    )
    with op.batch_alter_table("signature_envelopes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_envelopes_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index("ix_signature_envelopes_estimate", ["tenant_id", "estimate_id"], unique=False)
        batch_op.create_index("ix_signature_envelopes_open", ["status", "checked_at"], unique=False)
        batch_op.create_index("ix_signature_envelopes_remote", ["provider", "remote_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_signature_envelopes_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signature_envelopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_envelopes_tenant_id"))
        batch_op.drop_index("ix_signature_envelopes_remote")
        batch_op.drop_index("ix_signature_envelopes_open")
        batch_op.drop_index("ix_signature_envelopes_estimate")
        batch_op.drop_index(batch_op.f("ix_signature_envelopes_connection_id"))

    op.drop_table("signature_envelopes")
