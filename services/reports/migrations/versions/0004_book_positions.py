"""book positions: the producer and sequence of each timeline change and fact record

Changes (and records) stamped with the same instant are ordered by their producer's sequence
instead of by event id. Rows from before this revision have none and keep the event-id order
until a rebuild (POST /v1/reports/rebuild) replays them with their sequences.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("customer_changes", "customer_records")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source", sa.String(64), nullable=True))
            batch.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sequence")
            batch.drop_column("source")
