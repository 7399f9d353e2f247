"""Scenarios snapshot the project files their notebooks need, content-addressed.

``project_file_blobs`` holds each file's bytes once (SHA-256), ``file_trees`` a tree's entries;
a scenario records the tree it saved and each run the tree it used.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_file_blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_project_file_blobs"),
    )
    op.create_table(
        "file_trees",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_file_trees"),
    )
    # Plain columns, added in place: a batch (copy and drop) of these tables on SQLite would
    # cascade the drop to every run's steps, artifacts and logs.
    for table in ("scenarios", "scenario_runs"):
        op.add_column(table, sa.Column("file_tree", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in ("scenario_runs", "scenarios"):
        op.drop_column(table, "file_tree")
    op.drop_table("file_trees")
    op.drop_table("project_file_blobs")
