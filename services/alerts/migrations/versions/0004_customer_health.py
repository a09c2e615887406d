"""customer health in a narrow table of its own, with when the sweep must look again

The daily sweep rewrites a customer's score columns; beside the wide signals JSON that meant a new copy of
the whole row (and its lock) for every customer every day. The scores move to customer_health, with
next_check_at (NULL: judge at the next sweep), and the sweep only reads customer_signals.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCORE_COLUMNS = ("score", "band", "breakdown", "scored_at", "recorded_score")


def upgrade() -> None:
    op.create_table(
        "customer_health",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("judged", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("band", sa.String(length=16), nullable=True),
        sa.Column("breakdown", sa.JSON(), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_score", sa.Integer(), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_index("ix_customer_health_due", "customer_health", ["next_check_at"],
                    postgresql_where=sa.text("judged IS true"), sqlite_where=sa.text("judged IS 1"))
    columns = ", ".join(SCORE_COLUMNS)
    op.execute(f"INSERT INTO customer_health (customer_id, judged, {columns}, next_check_at) "
               f"SELECT customer_id, known AND NOT archived, {columns}, NULL FROM customer_signals")
    with op.batch_alter_table("customer_signals") as batch_op:
        batch_op.drop_index("ix_customer_signals_band")
        for name in SCORE_COLUMNS:
            batch_op.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("customer_signals") as batch_op:
        batch_op.add_column(sa.Column("score", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("band", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("breakdown", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("recorded_score", sa.Integer(), nullable=True))
        batch_op.create_index("ix_customer_signals_band", ["band", "customer_id"])
    assignments = ", ".join(f"{name} = (SELECT h.{name} FROM customer_health h "
                            f"WHERE h.customer_id = customer_signals.customer_id)" for name in SCORE_COLUMNS)
    op.execute(f"UPDATE customer_signals SET {assignments}")
    op.drop_index("ix_customer_health_due", table_name="customer_health")
    op.drop_table("customer_health")
