"""The datasets a scenario run read, for its reproducibility record.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scenario_runs") as batch:
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("scenario_runs") as batch:
        batch.drop_column("inputs")
