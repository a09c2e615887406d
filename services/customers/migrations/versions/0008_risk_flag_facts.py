"""risk_flags as dated facts (raises and lifts), so the consumer takes a stream's events in any order

Revision ID: 0008
Revises: 0007

0007 kept one row per flagging alert with the time a resolution closed it; a resolution applied before its raise
(redelivered behind newer events) then closed nothing. Now each raise and each lift is a row of its own and the
flag's periods follow from the set of them (domain/history.py flag_periods).
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.rename_table("risk_flags", "risk_flags_0007")
    op.create_table(
        "risk_flags",
        sa.Column("customer_id", sa.String(length=64), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("event_key", sa.String(length=80), primary_key=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("lifts", sa.Boolean(), nullable=False),
    )
    op.execute("INSERT INTO risk_flags (customer_id, event_key, at, lifts) "
               "SELECT customer_id, alert_id, raised_at, false FROM risk_flags_0007")
    op.execute("INSERT INTO risk_flags (customer_id, event_key, at, lifts) "
               "SELECT customer_id, 'lift:' || alert_id, resolved_at, true FROM risk_flags_0007 "
               "WHERE resolved_at IS NOT NULL")
    op.drop_table("risk_flags_0007")


def downgrade() -> None:
    op.rename_table("risk_flags", "risk_flags_0008")
    op.create_table(
        "risk_flags",
        sa.Column("customer_id", sa.String(length=64), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("alert_id", sa.String(length=64), primary_key=True),
        sa.Column("raised_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
    )
    # each raise with the first lift at or after it
    op.execute("INSERT INTO risk_flags (customer_id, alert_id, raised_at, resolved_at) "
               "SELECT r.customer_id, r.event_key, r.at, (SELECT MIN(l.at) FROM risk_flags_0008 l "
               "WHERE l.customer_id = r.customer_id AND l.lifts AND l.at >= r.at) "
               "FROM risk_flags_0008 r WHERE NOT r.lifts")
    op.drop_table("risk_flags_0008")
