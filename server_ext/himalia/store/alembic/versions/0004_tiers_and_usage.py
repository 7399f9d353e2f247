"""Hardware tiers, the groups allowed on them, their usage; where users and groups come from.

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
    op.create_table(
        "tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tiers")),
        sa.UniqueConstraint("name", name=op.f("uq_tiers_name")),
    )
    op.create_table(
        "tier_groups",
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_tier_groups_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"], ["tiers.id"], name=op.f("fk_tier_groups_tier_id_tiers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tier_id", "group_id", name=op.f("pk_tier_groups")),
    )
    op.create_table(
        "tier_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("cost_per_hour", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scenario_runs.id"], name=op.f("fk_tier_usage_run_id_scenario_runs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["tier_id"], ["tiers.id"], name=op.f("fk_tier_usage_tier_id_tiers")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_tier_usage_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_usage")),
    )
    with op.batch_alter_table("tier_usage", schema=None) as batch_op:
        batch_op.create_index("ix_tier_usage_open", ["tier_id", "ended_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_tier_usage_user_id"), ["user_id"], unique=False)

    op.add_column("groups", sa.Column("source", sa.String(length=20), nullable=False, server_default="local"))

    op.add_column("users", sa.Column("source", sa.String(length=20), nullable=False, server_default="local"))


def downgrade() -> None:
    op.drop_column("users", "source")  # SQLite 3.35+ drops in place; a table copy would break foreign keys

    op.drop_column("groups", "source")  # SQLite 3.35+ drops in place; a table copy would break foreign keys

    with op.batch_alter_table("tier_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tier_usage_user_id"))
        batch_op.drop_index("ix_tier_usage_open")

    op.drop_table("tier_usage")
    op.drop_table("tier_groups")
    op.drop_table("tiers")
