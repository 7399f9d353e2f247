"""Retention: runs people pin, and when retention purged a run's artifacts and log.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, never a batch: recreating scenario_runs on SQLite would cascade to its steps,
# artifacts and log.


def upgrade() -> None:
    op.add_column("scenario_runs", sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("scenario_runs", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("scenario_runs", "purged_at")
    op.drop_column("scenario_runs", "pinned")
