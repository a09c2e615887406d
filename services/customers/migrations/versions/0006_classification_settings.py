"""classification_settings: tier minimums and day counts an admin stored over the environment's

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
        "classification_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("classification_settings")
