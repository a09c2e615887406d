"""event order: per-subject sequences, stream positions, outbox sequence

Revision ID: 0003
Revises: 0002
"""
from alembic import op

from crm_common.migrations import add_event_order_tables, drop_event_order_tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_event_order_tables(op)


def downgrade() -> None:
    drop_event_order_tables(op)
