"""Scenarios, notebook snapshots, runs with their steps, artifacts and logs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notebook_snapshots",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_notebook_snapshots")),
    )
    op.create_table(
        "scenarios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("notebooks", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("run_as_id", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("trigger_state", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_scenarios_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_scenarios_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_as_id"], ["users.id"], name=op.f("fk_scenarios_run_as_id_users")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_scenarios_updated_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenarios")),
    )
    with op.batch_alter_table("scenarios", schema=None) as batch_op:
        batch_op.create_index("uq_scenarios_project_slug", ["project_id", "slug"], unique=True)

    op.create_table(
        "scenario_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=30), nullable=False),
        sa.Column("trigger_detail", sa.JSON(), nullable=False),
        sa.Column("fire_key", sa.String(length=300), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("run_as_id", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("notebooks", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("start_step", sa.Integer(), nullable=False),
        sa.Column("rerun_of", sa.Integer(), nullable=True),
        sa.Column("abort_requested", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("worker", sa.String(length=300), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_scenario_runs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_as_id"], ["users.id"], name=op.f("fk_scenario_runs_run_as_id_users")),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_scenario_runs_token_id_api_tokens"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["scenario_id"], ["scenarios.id"], name=op.f("fk_scenario_runs_scenario_id_scenarios"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenario_runs")),
        sa.UniqueConstraint("fire_key", name=op.f("uq_scenario_runs_fire_key")),
    )
    with op.batch_alter_table("scenario_runs", schema=None) as batch_op:
        batch_op.create_index("ix_scenario_runs_scenario", ["scenario_id", "id"], unique=False)
        batch_op.create_index("ix_scenario_runs_state", ["state"], unique=False)

    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scenario_runs.id"], name=op.f("fk_run_artifacts_run_id_scenario_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_artifacts")),
    )
    op.create_table(
        "run_log_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scenario_runs.id"], name=op.f("fk_run_log_chunks_run_id_scenario_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_log_chunks")),
    )
    with op.batch_alter_table("run_log_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_run_log_chunks_run", ["run_id", "id"], unique=False)

    op.create_table(
        "run_steps",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scenario_runs.id"], name=op.f("fk_run_steps_run_id_scenario_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_run_steps")),
    )


def downgrade() -> None:
    op.drop_table("run_steps")
    with op.batch_alter_table("run_log_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_run_log_chunks_run")

    op.drop_table("run_log_chunks")
    op.drop_table("run_artifacts")
    with op.batch_alter_table("scenario_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_scenario_runs_state")
        batch_op.drop_index("ix_scenario_runs_scenario")

    op.drop_table("scenario_runs")
    with op.batch_alter_table("scenarios", schema=None) as batch_op:
        batch_op.drop_index("uq_scenarios_project_slug")

    op.drop_table("scenarios")
    op.drop_table("notebook_snapshots")
