"""Operations: scheduler uptime, deadline alerts, datasets' declared freshness, runs by creation time.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_uptime",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_uptime"),
    )
    op.create_index("ix_scheduler_uptime_beat_at", "scheduler_uptime", ["beat_at"], unique=False)
    op.create_table(
        "deadline_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("occurrence", sa.String(length=100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by_run", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_deadline_alerts_project_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scenario_runs.id"], name="fk_deadline_alerts_run_id_scenario_runs", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["scenario_id"], ["scenarios.id"], name="fk_deadline_alerts_scenario_id_scenarios", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deadline_alerts"),
    )
    op.create_index(
        "uq_deadline_alerts_occurrence", "deadline_alerts", ["scenario_id", "kind", "occurrence"], unique=True
    )
    op.create_index("ix_deadline_alerts_project", "deadline_alerts", ["project_id", "raised_at"], unique=False)
    op.add_column("datasets", sa.Column("freshness", sa.JSON(), nullable=True))
    op.create_index("ix_scenario_runs_created_at", "scenario_runs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_scenario_runs_created_at", table_name="scenario_runs")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("freshness")
    op.drop_index("ix_deadline_alerts_project", table_name="deadline_alerts")
    op.drop_index("uq_deadline_alerts_occurrence", table_name="deadline_alerts")
    op.drop_table("deadline_alerts")
    op.drop_index("ix_scheduler_uptime_beat_at", table_name="scheduler_uptime")
    op.drop_table("scheduler_uptime")
