"""interactions.external_ref: an imported row is found again, so a re-run changes nothing

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch_op:
        batch_op.add_column(sa.Column("external_ref", sa.String(length=200), nullable=True))
        batch_op.create_index("ux_interactions_customer_ref", ["customer_id", "external_ref"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch_op:
        batch_op.drop_index("ux_interactions_customer_ref")
        batch_op.drop_column("external_ref")
