"""Class history from dated facts: interaction times, at-risk flags, how far each customer is classified

Revision ID: 0007
Revises: 0006

Customers classified before this revision keep their recorded history up to their latest recorded
change; from there on it follows from their facts. Their last interaction and an open flag are
carried over as facts ("legacy" ids); the first sweep after the upgrade reviews every customer once.
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "interaction_times",
        sa.Column("customer_id", sa.String(length=64), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("interaction_id", sa.String(length=64), primary_key=True),
        sa.Column("occurred_at", Timestamp, nullable=False),
    )
    op.create_table(
        "risk_flags",
        sa.Column("customer_id", sa.String(length=64), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("alert_id", sa.String(length=64), primary_key=True),
        sa.Column("raised_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
    )
    # plain ALTERs, no batch: SQLite adds columns in place, where a batch copy would trip the foreign keys
    op.add_column("customers", sa.Column("classified_until", Timestamp, nullable=True))
    op.add_column("customers", sa.Column("next_review_at", Timestamp, nullable=True))
    op.create_index("ix_customers_next_review_at", "customers", ["next_review_at"])
    op.execute("INSERT INTO interaction_times (customer_id, interaction_id, occurred_at) "
               "SELECT id, 'legacy', last_interaction_at FROM customers WHERE last_interaction_at IS NOT NULL")
    op.execute("INSERT INTO risk_flags (customer_id, alert_id, raised_at) "
               "SELECT id, 'legacy', updated_at FROM customers WHERE flagged_at_risk")
    op.execute("UPDATE customers SET classified_until = COALESCE((SELECT MAX(h.as_of) FROM classification_history h "
               "WHERE h.customer_id = customers.id), created_at)")
    op.execute("UPDATE customers SET next_review_at = classified_until")


def downgrade() -> None:
    op.drop_index("ix_customers_next_review_at", "customers")
    op.drop_column("customers", "next_review_at")
    op.drop_column("customers", "classified_until")
    op.drop_table("risk_flags")
    op.drop_table("interaction_times")
