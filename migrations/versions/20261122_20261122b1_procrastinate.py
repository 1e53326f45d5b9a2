"""procrastinate's job queue (PostgreSQL only): `fieldhub worker`s run sync as its jobs (hub/sync/queue.py)

Its schema is procrastinate's own (`procrastinate schema --apply` runs the same SQL), for the version
pyproject.toml pins; a new procrastinate version brings its SQL migrations, applied by a migration here.
SQLite has no queue: the embedded Dispatcher is its only dispatch.

Revision ID: 20261122b1
Revises: 20261122a1
Create Date: 2026-11-22 06:20:00
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "20261122b1"
down_revision: str | None = "20261122a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# procrastinate's tables, then every routine and type it made (functions and procedures alike).
DROP = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
    procrastinate_workers CASCADE;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proname LIKE 'procrastinate%' AND n.nspname = current_schema() LOOP
        EXECUTE 'DROP ROUTINE IF EXISTS ' || r.sig || ' CASCADE';
    END LOOP;
END $$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, procrastinate_job_status CASCADE;
"""


def _run(sql: str) -> None:
    # The driver reads % as a placeholder even with no parameters: doubled, as procrastinate does.
    op.get_bind().exec_driver_sql(sql.replace("%", "%%"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(DROP)
