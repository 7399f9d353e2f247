"""A run's artifacts are keyed by their step's position and their kind, no longer by a name to parse.

Existing rows are named ``step-<position>.<kind>`` (the only names the engine ever wrote); the
upgrade parses them into the two columns, the downgrade writes the names back.

Revision ID: 0006
Revises: 0005
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = re.compile(r"step-(\d+)\.(\w+)")

artifacts = sa.table(
    "run_artifacts",
    sa.column("run_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("position", sa.Integer),
    sa.column("kind", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("run_artifacts") as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=20), nullable=True))
    connection = op.get_bind()
    for run_id, name in connection.execute(sa.select(artifacts.c.run_id, artifacts.c.name)).all():
        parsed = _NAME.fullmatch(name)
        if parsed is None:
            raise RuntimeError(f"Run #{run_id} has an artifact named {name!r}, not step-<position>.<kind>.")
        connection.execute(
            artifacts.update()
            .where(artifacts.c.run_id == run_id, artifacts.c.name == name)
            .values(position=int(parsed.group(1)), kind=parsed.group(2))
        )
    with op.batch_alter_table("run_artifacts") as batch_op:
        batch_op.drop_constraint("pk_run_artifacts", type_="primary")
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("kind", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("name")
        batch_op.create_primary_key("pk_run_artifacts", ["run_id", "position", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("run_artifacts") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(artifacts.c.run_id, artifacts.c.position, artifacts.c.kind)).all()
    for run_id, position, kind in rows:
        connection.execute(
            artifacts.update()
            .where(artifacts.c.run_id == run_id, artifacts.c.position == position, artifacts.c.kind == kind)
            .values(name=f"step-{position}.{kind}")
        )
    with op.batch_alter_table("run_artifacts") as batch_op:
        batch_op.drop_constraint("pk_run_artifacts", type_="primary")
        batch_op.alter_column("name", existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column("position")
        batch_op.drop_column("kind")
        batch_op.create_primary_key("pk_run_artifacts", ["run_id", "name"])
