"""Administration: usage by project, budgets and their alerts, when people were last seen.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tier_usage") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_tier_usage_project_id_projects", "projects", ["project_id"], ["id"], ondelete="SET NULL"
        )
    op.create_index("ix_tier_usage_started_at", "tier_usage", ["started_at"], unique=False)
    # A run's usage belongs to the run's project, also for the rows written before this revision.
    op.execute(
        "UPDATE tier_usage SET project_id = (SELECT scenarios.project_id FROM scenario_runs"
        " JOIN scenarios ON scenarios.id = scenario_runs.scenario_id WHERE scenario_runs.id = tier_usage.run_id)"
        " WHERE run_id IS NOT NULL"
    )
    op.add_column("users", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("deactivated_by", sa.String(length=100), nullable=True))
    # Until now the hub sync reactivated any hub user it saw again: keep that for those deactivated before.
    users = sa.table("users", sa.column("active", sa.Boolean), sa.column("source"), sa.column("deactivated_by"))
    op.execute(
        users.update()
        .where(users.c.active.is_(False), users.c.source == "hub")
        .values(deactivated_by="jupyterhub-sync")
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(project_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_budgets_one_subject")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_budgets_project_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_budgets_group_id_groups", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
    )
    op.create_index("uq_budgets_project", "budgets", ["project_id"], unique=True)
    op.create_index("uq_budgets_group", "budgets", ["group_id"], unique=True)
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name="fk_budget_alerts_budget_id_budgets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_budget_alerts"),
    )
    op.create_index("uq_budget_alerts_occurrence", "budget_alerts", ["budget_id", "period", "threshold"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_budget_alerts_occurrence", table_name="budget_alerts")
    op.drop_table("budget_alerts")
    op.drop_index("uq_budgets_group", table_name="budgets")
    op.drop_index("uq_budgets_project", table_name="budgets")
    op.drop_table("budgets")
    op.drop_column("users", "deactivated_by")
    op.drop_column("users", "last_seen_at")  # not a batch: SQLite cannot recreate a table others refer to
    op.drop_index("ix_tier_usage_started_at", table_name="tier_usage")
    with op.batch_alter_table("tier_usage") as batch:
        batch.drop_constraint("fk_tier_usage_project_id_projects", type_="foreignkey")
        batch.drop_column("project_id")
