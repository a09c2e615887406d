"""what a customer's open alerts put at stake: its rolling 12-month revenue and that revenue times the risk

Scored with the health score (customer_health), so the alert queue ranks customers without reading their
signals. NULL until the customer is next judged.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customer_health") as batch_op:
        batch_op.add_column(sa.Column("revenue_12m", sa.Numeric(16, 2), nullable=True))
        batch_op.add_column(sa.Column("stake", sa.Numeric(16, 2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_health") as batch_op:
        batch_op.drop_column("stake")
        batch_op.drop_column("revenue_12m")
