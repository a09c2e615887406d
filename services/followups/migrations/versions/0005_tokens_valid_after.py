"""the directory copy's tokens_valid_after: tokens issued before it are refused (rep.registered / rep.updated)

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rep_view") as batch_op:
        batch_op.add_column(sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rep_view") as batch_op:
        batch_op.drop_column("tokens_valid_after")
