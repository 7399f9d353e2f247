"""Row conditions on datasets, and the sample of failing rows a check result keeps.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, never a batch: SQLite would recreate the tables, and dropping the old ones
# cascades to every row that refers to them (checks, metric values, check results).


def upgrade() -> None:
    op.add_column("datasets", sa.Column("conditions", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("check_results", sa.Column("failing_rows", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("check_results", "failing_rows")
    op.drop_column("datasets", "conditions")
