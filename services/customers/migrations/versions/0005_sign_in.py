"""built-in sign-in: credentials (argon2id hashes), failed attempts, reps.tokens_valid_after (revocation)

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("reps") as batch_op:
        batch_op.add_column(sa.Column("tokens_valid_after", Timestamp, nullable=True))
    op.create_table(
        "credentials",
        sa.Column("rep_id", sa.String(length=64), sa.ForeignKey("reps.id"), primary_key=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("changed_at", Timestamp, nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", Timestamp, nullable=False),
        sa.Column("locked_until", Timestamp, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("credentials")
    with op.batch_alter_table("reps") as batch_op:
        batch_op.drop_column("tokens_valid_after")
