"""The audit chain head is sealed with the audit key; runs are found by their token.

The seal cannot be computed here (the key is not the database's): the control plane seals the
head at its next start, or with the next audited action.

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
    op.add_column("audit_chain_head", sa.Column("seal", sa.String(length=64), nullable=True))
    with op.batch_alter_table("scenario_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scenario_runs_token_id"), ["token_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scenario_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scenario_runs_token_id"))
    op.drop_column("audit_chain_head", "seal")  # SQLite 3.35+ drops in place; a table copy would break foreign keys
