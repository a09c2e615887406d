"""the alert queue and the health bands of a team or a rep from indexes alone

A manager's /v1/alerts/summary (health bands) and /v1/alert-queue read every customer of the team from
customer_signals, then each one's customer_health row. At 1,000,000 customers (5,000 a team) those were 5,000
scattered heap pages of the wide signals rows and as many of customer_health: 1.7 s for the bands and 0.55 s for
the queue with PostgreSQL's buffers empty (bench/bench_console.py, 2026-12-04). With the columns they read
INCLUDEd in the scope indexes, a look-up in customer_health by an index carrying score, band, revenue and stake,
and the open alerts indexed by customer, both are index-only scans: 43-44 ms cold. An admin's queue (everyone)
sorted the 81,000 customers with open alerts by stake (0.67 s); walked in an index on the rank it reads one page's
worth (23 ms). On SQLite INCLUDE is ignored.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCOPE = ["known", "archived", "tier", "lifecycle"]
OPEN = "open_key IS NOT NULL"


def upgrade() -> None:
    for scope, other in (("owner_id", "team"), ("team", "owner_id")):
        name = f"ix_customer_signals_{scope.removesuffix('_id')}"
        op.drop_index(name, table_name="customer_signals")
        op.create_index(name, "customer_signals", [scope, "customer_id"], postgresql_include=[other, *SCOPE])
    op.create_index("ix_customer_health_queue", "customer_health", ["customer_id"],
                    postgresql_include=["judged", "score", "band", "revenue_12m", "stake"])
    op.create_index("ix_alerts_open_customer", "alerts", ["customer_id"], postgresql_where=sa.text(OPEN),
                    sqlite_where=sa.text(OPEN))
    op.create_index("ix_customer_health_rank", "customer_health", [sa.text("coalesce(stake, -1) DESC"), "customer_id"],
                    postgresql_include=["score", "band", "revenue_12m", "stake"])


def downgrade() -> None:
    op.drop_index("ix_customer_health_rank", table_name="customer_health")
    op.drop_index("ix_alerts_open_customer", table_name="alerts")
    op.drop_index("ix_customer_health_queue", table_name="customer_health")
    for scope in ("owner_id", "team"):
        name = f"ix_customer_signals_{scope.removesuffix('_id')}"
        op.drop_index(name, table_name="customer_signals")
        op.create_index(name, "customer_signals", [scope, "customer_id"])
