"""Search indexes on PostgreSQL: prefix (varchar_pattern_ops) and substring (pg_trgm) on address and name

Revision ID: 0004_search_indexes
Revises: 0003_imports
Create Date: 2026-11-27

Only PostgreSQL gets them; SQLite is for laptops with small lists. The names start with ix_search_ so that the
model comparison (migrations/env.py and tests/test_models.py) knows they live only in migrations.
"""

from alembic import op

revision = "0004_search_indexes"
down_revision = "0003_imports"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_search_subscribers_email_pattern ON subscribers (email varchar_pattern_ops)")
    op.execute("CREATE INDEX ix_search_subscribers_name_pattern ON subscribers (lower(name) varchar_pattern_ops)")
    op.execute("CREATE INDEX ix_search_subscribers_email_trgm ON subscribers USING gin (email gin_trgm_ops)")
    op.execute("CREATE INDEX ix_search_subscribers_name_trgm ON subscribers USING gin (lower(name) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in (
        "ix_search_subscribers_email_pattern",
        "ix_search_subscribers_name_pattern",
        "ix_search_subscribers_email_trgm",
        "ix_search_subscribers_name_trgm",
    ):
        op.execute(f"DROP INDEX IF EXISTS {name}")
