"""bulk imports: customers.external_id, import jobs with their file, rejected rows and seen keys

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
        batch_op.create_index("ux_customers_external_id", ["external_id"], unique=True)
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("actor_team", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", BigId, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("ignored_columns", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", Timestamp, nullable=True),
    )
    op.create_index("ix_import_jobs_status", "import_jobs", ["status", "lease_until"])
    op.create_index("ix_import_jobs_actor", "import_jobs", ["actor_id", "created_at"])
    op.create_table(
        "import_chunks",
        sa.Column("job_id", sa.String(length=64), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "import_rejections",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(length=64), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=300), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_import_rejections_job_row", "import_rejections", ["job_id", "row"])
    op.create_table(
        "import_keys",
        sa.Column("job_id", sa.String(length=64), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("row", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("import_keys", "import_rejections", "import_chunks", "import_jobs"):
        op.drop_table(table)
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ux_customers_external_id")
        batch_op.drop_column("external_id")
