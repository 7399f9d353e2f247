"""The audit trail: every mutation recorded, hash-chained, tamper-evident, append-only on PostgreSQL."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from himalia.audit import AuditFilter
from himalia.caller import Caller
from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.models import CreateProject, SetGrant

from .conftest import AUDIT_KEY, SECRET_KEY, LiveAPI

OPERATOR = Caller.operator("auditor-test", client_address="10.9.8.7")


def _verify(plane: ControlPlane) -> list[str]:
    return plane.audit.verify(OPERATOR).problems


def _tamper(plane: ControlPlane, statement: str) -> None:
    """Change audit rows behind the service's back, as a database superuser could."""
    with plane.db.engine.begin() as connection:
        if plane.db.dialect == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))  # triggers off
        connection.execute(text(statement))


def test_mutations_are_recorded_with_actor_address_and_details(plane: ControlPlane) -> None:
    owner = plane.users.caller_for("projadmin", client_address="192.0.2.5")
    plane.projects.create_project(owner, CreateProject(key="AUDITED", name="Audited"))
    plane.projects.set_grant(owner, "AUDITED", SetGrant(group="readers", preset="reader"))
    entries = plane.audit.list_entries(OPERATOR, AuditFilter(project="AUDITED"), 10, 0).items
    assert [e.action for e in entries] == ["project.grant", "project.create"]
    grant = entries[0]
    assert (grant.actor, grant.client_address, grant.object_id) == ("projadmin", "192.0.2.5", "AUDITED")
    assert grant.details["after"] == ["read_dashboards", "read_content"]
    assert _verify(plane) == []


def test_edit_is_detected_and_named(plane: ControlPlane) -> None:
    _tamper(plane, "UPDATE audit_entries SET actor = 'someone-else' WHERE seq = 3")
    assert _verify(plane) == ["entry 3: content does not match its hash (edited or forged)"]


def test_delete_in_the_middle_is_detected_and_named(plane: ControlPlane) -> None:
    _tamper(plane, "DELETE FROM audit_entries WHERE seq = 4")
    problems = _verify(plane)
    assert problems[0] == "entry 4: missing (deleted)"
    assert "entry 5: does not follow its predecessor" in problems[1]


def test_deleting_a_range_names_its_start_and_end(plane: ControlPlane) -> None:
    _tamper(plane, "DELETE FROM audit_entries WHERE seq BETWEEN 5 AND 7")
    assert _verify(plane)[0] == "entry 5: missing (deleted), as are the entries up to 7"


def test_delete_of_the_tail_is_detected(plane: ControlPlane) -> None:
    last = plane.audit.list_entries(OPERATOR, AuditFilter(), 1, 0).items[0].seq
    _tamper(plane, f"DELETE FROM audit_entries WHERE seq = {last}")
    assert _verify(plane) == [f"entry {last}: missing (deleted): the chain ended at entry {last}"]


def test_inserted_row_is_detected_and_named(plane: ControlPlane) -> None:
    newest = plane.audit.list_entries(OPERATOR, AuditFilter(), 1, 0).items[0]
    forged = newest.seq + 1
    _tamper(
        plane,
        "INSERT INTO audit_entries (seq, created_at, actor, action, object_type, object_id, project_key, "
        f"client_address, details, prev_hash, hash) VALUES ({forged}, CURRENT_TIMESTAMP, 'admin', 'project.delete', "
        f"'project', 'ALPHA', NULL, '', '{{}}', '{newest.hash}', '{'f' * 64}')",
    )
    problems = _verify(plane)
    assert f"entry {forged}: content does not match its hash (edited or forged)" in problems
    assert f"entry {forged}: is not in the recorded chain (inserted after its end)" in problems


def test_chain_cannot_be_recomputed_without_the_key(plane: ControlPlane, db_url: str, tmp_path: object) -> None:
    other = ControlPlane(home=str(tmp_path), db_url=db_url, secret_keys=[SECRET_KEY], audit_key="another key")
    other.start()
    try:
        assert other.audit.verify(OPERATOR).problems[0].startswith("entry 1: content does not match")
    finally:
        other.stop()


def test_postgresql_rejects_update_delete_and_truncate(plane: ControlPlane, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    for statement in (
        "UPDATE audit_entries SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "TRUNCATE audit_entries",
    ):
        with pytest.raises(DBAPIError, match="append-only"), plane.db.engine.begin() as connection:
            connection.execute(text(statement))
    assert _verify(plane) == []


def test_cli_verify_names_the_tampered_entry(plane: ControlPlane, db_url: str, tmp_path: object) -> None:
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}
    runner = CliRunner()
    intact = runner.invoke(main, ["--home", str(tmp_path), "--db-url", db_url, "audit", "verify"], env=environment)
    assert intact.exit_code == 0 and "chain intact" in intact.output
    _tamper(plane, "UPDATE audit_entries SET details = '{\"forged\": true}' WHERE seq = 2")
    broken = runner.invoke(main, ["--home", str(tmp_path), "--db-url", db_url, "audit", "verify"], env=environment)
    assert broken.exit_code == 1
    assert "TAMPERED: entry 2: content does not match its hash" in broken.output


def test_filter_and_export(api: LiveAPI) -> None:
    assert api.request("PATCH", "/projects/ALPHA", role="projadmin", json={"description": "v2"}).status_code == 200
    page = api.request("GET", "/audit?actor=projadmin&action=project", role="admin").json()
    assert {e["action"] for e in page["items"]} == {"project.create", "project.grant", "project.update"}
    jsonl = api.request("GET", "/audit/export?format=jsonl&action=project.update", role="admin")
    assert jsonl.headers["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [(r["actor"], r["details"]) for r in rows] == [("projadmin", {"description": "v2"})]
    csv_export = api.request("GET", "/audit/export?format=csv&project=ALPHA", role="admin")
    lines = csv_export.text.splitlines()
    alpha_entries = api.request("GET", "/audit?project=ALPHA", role="admin").json()["total"]
    assert lines[0].startswith("seq,created_at,actor,action") and len(lines) == 1 + alpha_entries
    bad = api.request("GET", "/audit?since=yesterday", role="admin")
    assert bad.status_code == 400 and bad.json()["field"] == "since"


def test_export_of_many_entries_streams_every_line(plane: ControlPlane, api: LiveAPI) -> None:
    owner = plane.users.caller_for("admin")
    for index in range(1200):
        plane.projects.create_project(owner, CreateProject(key=f"P{index:04d}", name="bulk"))
    exported = api.request("GET", "/audit/export?format=jsonl&action=project.create", role="admin").text.splitlines()
    assert len(exported) == 1201
    assert [json.loads(line)["seq"] for line in exported] == sorted(json.loads(line)["seq"] for line in exported)
