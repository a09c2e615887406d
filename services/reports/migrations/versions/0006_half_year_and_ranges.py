"""distinct_marks: what custom date ranges count distinct figures from (half-year and year buckets need no schema)

After this revision, counters gain half-year and year buckets and distinct_marks its rows as events are
applied; for events applied before it, rebuild once (POST /v1/reports/rebuild, docs/reports.md).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "distinct_marks",
        sa.Column("item_id", sa.String(80), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("rep", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("industry", sa.String(100), nullable=False),
    )
    op.create_index("ix_distinct_marks_day", "distinct_marks", ["day", "metric", "entity"])
    op.create_index("ix_distinct_marks_team_day", "distinct_marks", ["team", "day"])
    op.create_index("ix_distinct_marks_rep_day", "distinct_marks", ["rep", "day"])


def downgrade() -> None:
    op.drop_table("distinct_marks")
