"""Trigram index for substring search on company names (PostgreSQL only)

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (embedded mode) scans; fine at demo scale
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX IF NOT EXISTS ix_customers_company_key_trgm "
               "ON customers USING gin (company_key gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_customers_company_key_trgm")
