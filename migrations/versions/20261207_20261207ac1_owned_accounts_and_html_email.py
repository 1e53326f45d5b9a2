"""owned accounts and HTML email: an account a business owns is held by one connection at a time
(uq_connections_provider_held_account), and an email carries its HTML beside the text (an invoice's Pay Now button)

Revision ID: 20261207ac1
Revises: 20261207l1
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207ac1"
down_revision: str | None = "20261207l1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The providers whose provider.toml said one_business_per_account when this migration was written: a
# migration is history, so it names them rather than reading today's tomls.
OWNED = ("stripe", "quickbooks", "xero", "freshbooks", "wave", "thumbtack", "docusign", "dropbox_sign")
SHARED_MESSAGE = (
    "This account is also connected to another fieldhub business, and its updates were going there. "
    "Disconnect it there first, or connect a different account."
)


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owns_account", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("held_account", sa.String(length=200), nullable=True))
    connections = sa.table(
        "connections",
        sa.column("id", sa.Integer()),
        sa.column("provider", sa.String()),
        sa.column("account_id", sa.String()),
        sa.column("status", sa.String()),
        sa.column("owns_account", sa.Boolean()),
        sa.column("held_account", sa.String()),
        sa.column("sync_error", sa.Text()),
    )
    bind = op.get_bind()
    bind.execute(connections.update().where(connections.c.provider.in_(OWNED)).values(owns_account=True))
    # Two businesses may already hold one account (the reason for this index). The one its events went to
    # keeps it (a connected one, the newest); the others are paused with the reason, as Reconnect would now
    # refuse them, so the index can be built.
    held = connections.c.owns_account.is_(True) & (connections.c.status != "disconnected")
    rows = bind.execute(
        sa.select(connections.c.id, connections.c.provider, connections.c.account_id, connections.c.status)
        .where(held)
        .order_by(connections.c.provider, connections.c.account_id, connections.c.id.desc())
    ).all()
    keeper: dict[tuple[str, str], int] = {}
    for row in sorted(rows, key=lambda r: r.status != "connected"):  # stable: newest first within each
        key = (row.provider, row.account_id)
        if key in keeper:
            bind.execute(
                connections.update()
                .where(connections.c.id == row.id)
                .values(owns_account=False, status="needs_reauth", sync_error=SHARED_MESSAGE)
            )
        else:
            keeper[key] = row.id
            bind.execute(connections.update().where(connections.c.id == row.id).values(held_account=row.account_id))
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f("uq_connections_provider_held_account"), ["provider", "held_account"])
    with op.batch_alter_table("outbound_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("html_body", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("outbound_emails", schema=None) as batch_op:
        batch_op.drop_column("html_body")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_connections_provider_held_account"), type_="unique")
        batch_op.drop_column("held_account")
        batch_op.drop_column("owns_account")
