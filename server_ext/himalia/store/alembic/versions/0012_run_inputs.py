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


# Plain ALTER TABLE, never a batch: recreating scenario_runs on SQLite would cascade to its steps,
# artifacts and log.


def upgrade() -> None:
    op.add_column("scenario_runs", sa.Column("inputs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    op.drop_column("scenario_runs", "inputs")
