"""The store: migrations own the schema, listings cost a bounded number of statements."""

from pathlib import Path
from typing import Any

import alembic.command
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from himalia.controlplane import ControlPlane
from himalia.core.errors import SchemaMismatch
from himalia.identity.audit import AuditFilter
from himalia.scenarios.records import Artifact
from himalia.store.db import Database
from himalia.store.orm import Base
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateProject, CreateToken, SetGrant
from himalia.wire.scenarios import ArtifactKind, RunRequest, SaveScenario

from ..conftest import AUDIT_KEY, SECRET_KEY


def test_migrations_match_the_models(plane: ControlPlane) -> None:
    with plane.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_downgrade_and_upgrade_round_trip(plane: ControlPlane) -> None:
    database = Database(plane.db.url)
    try:
        alembic.command.downgrade(database.alembic_config(), "base")
        assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
        database.upgrade()
        assert database.current_revision() == database.head_revision()
    finally:
        database.dispose()


def test_migration_0006_parses_artifact_names_into_step_and_kind_and_back(plane: ControlPlane) -> None:
    """Artifacts stored as ``step-<position>.<kind>`` keep their step and kind across a downgrade and upgrade."""
    admin = plane.users.caller_for("admin")
    step = {"name": "checks", "type": "run_checks", "dataset": "transactions"}
    definition = ScenarioDefinition.model_validate({"id": "reports", "name": "Reports", "steps": [step]})
    plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario(definition=definition))
    run = plane.runs.request_run(admin, "ALPHA", "reports", RunRequest())
    notebook = Artifact(ArtifactKind.IPYNB, "application/x-ipynb+json", b"{}")
    plane.runs.add_artifacts(run.id, 0, [notebook, Artifact(ArtifactKind.HTML, "text/html", b"0")])
    plane.runs.add_artifacts(run.id, 12, [Artifact(ArtifactKind.HTML, "text/html", b"12")])
    database = Database(plane.db.url)
    try:
        alembic.command.downgrade(database.alembic_config(), "0005")
        with database.engine.connect() as connection:
            names = connection.execute(text("SELECT name FROM run_artifacts ORDER BY name")).scalars().all()
        assert names == ["step-0.html", "step-0.ipynb", "step-12.html"]
        database.upgrade()
        with database.engine.connect() as connection:
            rows = connection.execute(text("SELECT position, kind FROM run_artifacts ORDER BY position, kind")).all()
        assert [tuple(row) for row in rows] == [(0, "html"), (0, "ipynb"), (12, "html")]
    finally:
        database.dispose()
    described = plane.runs.get_run(admin, "ALPHA", "reports", run.id)
    assert described.artifacts == ["step-0.html", "step-0.ipynb", "step-12.html"]
    assert described.steps[0].artifacts == [ArtifactKind.HTML, ArtifactKind.IPYNB]
    latest = plane.runs.read_artifact(admin, "ALPHA", "reports", run.id, ArtifactKind.HTML, None)
    assert latest == ("step-12.html", "text/html", b"12")


#: Every table whose rows hang on another by a cascading foreign key: what a migration that
#: recreated a referred table on SQLite would silently empty.
CASCADED = ("run_artifacts", "run_log_chunks", "run_steps", "checks", "check_results", "metric_values")


def test_the_migrations_since_0010_keep_every_row_that_refers_to_a_changed_table(plane: ControlPlane) -> None:
    admin = plane.users.caller_for("admin")
    step = {"name": "checks", "type": "run_checks", "dataset": "transactions"}
    definition = ScenarioDefinition.model_validate({"id": "kept", "name": "Kept", "steps": [step]})
    plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario(definition=definition))
    run = plane.runs.request_run(admin, "ALPHA", "kept", RunRequest())
    plane.runs.add_artifacts(run.id, 0, [Artifact(ArtifactKind.HTML, "text/html", b"kept")])
    plane.checks.run_checks(admin, "ALPHA", "transactions")

    def counts(database: Database) -> dict[str, int]:
        with database.engine.connect() as connection:
            return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in CASCADED}

    database = Database(plane.db.url)
    try:
        before = counts(database)
        assert all(before[table] > 0 for table in CASCADED if table != "run_log_chunks"), before
        alembic.command.downgrade(database.alembic_config(), "0010")
        assert counts(database) == before
        database.upgrade()
        assert counts(database) == before
    finally:
        database.dispose()


def test_out_of_date_schema_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    database = Database(url)
    database.upgrade()
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ancient'")
    database.dispose()
    plane = ControlPlane(home=str(tmp_path), db_url=url, secret_keys=[SECRET_KEY], audit_key=AUDIT_KEY)
    with pytest.raises(SchemaMismatch, match="himalia db upgrade"):
        plane.start()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(plane: ControlPlane, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite pragmas")
    with plane.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _grow(plane: ControlPlane, prefix: str, projects: int) -> None:
    """More projects the reader sees through a group, through a user grant, or not at all."""
    admin = plane.users.caller_for("admin")
    for index in range(projects):
        key = f"{prefix}{index:04d}"
        plane.projects.create_project(admin, CreateProject(key=key, name=key, tags=["bulk"]))
        if index % 3 == 0:
            plane.projects.set_grant(admin, key, SetGrant(group="readers", preset="reader"))
        elif index % 3 == 1:
            plane.projects.set_grant(admin, key, SetGrant(user="reader", preset="contributor"))
        if index % 10 == 0:
            plane.tokens.create_token(admin, CreateToken(name=key))


LISTINGS: dict[str, Any] = {
    "projects": lambda p, c: p.projects.list_projects(c, 500, 0),
    "projects by tag": lambda p, c: p.projects.list_projects(c, 500, 0, "grow", "bulk"),
    "auth matrix": lambda p, c: p.projects.auth_matrix(c),
    "connections": lambda p, c: p.connections.list_connections(c, 500, 0),
    "groups": lambda p, c: p.users.list_groups(c, 500, 0),
    "users": lambda p, c: p.users.list_users(c, 500, 0),
    "tokens": lambda p, c: p.tokens.list_tokens(c, 500, 0),
    "audit": lambda p, c: p.audit.list_entries(c, AuditFilter(), 500, 0),
}


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_listings_issue_a_bounded_number_of_statements(
    plane: ControlPlane, count_statements: Any, listing: str
) -> None:
    """The statement count does not grow with the number of rows listed."""
    as_admin = listing in {"users", "tokens", "audit", "groups"}
    caller = plane.users.caller_for("admin" if as_admin else "reader")
    counts = []
    for prefix, projects in (("FEW", 6), ("MANY", 60)):
        _grow(plane, prefix, projects)
        with count_statements() as statements:
            result = LISTINGS[listing](plane, caller)
        counts.append(len(statements))
        assert result
    assert counts[0] == counts[1], f"{listing}: {counts}"
    assert counts[1] <= 6
