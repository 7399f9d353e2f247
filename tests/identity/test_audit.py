"""The audit trail: every mutation recorded, hash-chained, tamper-evident, append-only on PostgreSQL."""

import json
import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

import himalia.store.orm
from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.identity.audit import FACET_LIMIT, AuditFilter, database_clock
from himalia.identity.caller import Caller
from himalia.identity.tokens import digest
from himalia.store.orm import ApiToken, ScenarioRun, User
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateProject, DescribeAuditEntry, SetGrant
from himalia.wire.scenarios import RunRequest, SaveScenario

from ..conftest import AUDIT_KEY, SECRET_KEY, LiveAPI

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


def test_delete_of_the_tail_is_detected_by_the_head_row_and_the_head_file(plane: ControlPlane) -> None:
    last = plane.audit.list_entries(OPERATOR, AuditFilter(), 1, 0).items[0].seq
    _tamper(plane, f"DELETE FROM audit_entries WHERE seq = {last}")
    assert _verify(plane) == [
        f"entry {last}: missing (deleted): the chain head row says the chain ended at entry {last}",
        f"entry {last}: missing (deleted): the head file {plane.audit_head_file} says the chain ended at entry {last}",
    ]


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


def test_cli_export_filters_as_the_api_does(plane: ControlPlane, api: LiveAPI, db_url: str, tmp_path: object) -> None:
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}

    def export(*filters: str) -> tuple[int, str]:
        done = CliRunner().invoke(
            main, ["--home", str(tmp_path), "--db-url", db_url, "audit", "export", *filters], env=environment
        )
        return done.exit_code, done.output

    api.request("PATCH", "/projects/ALPHA", role="admin", json={"description": "later"})
    alpha = api.request("GET", "/audit?object_type=project&object_id=ALPHA", role="admin").json()["items"]
    later = alpha[: len(alpha) // 2]  # newest first
    since = datetime.fromisoformat(later[-1]["created_at"]).astimezone(timezone(timedelta(hours=-5)))
    filters = {"object_type": "project", "object_id": "ALPHA", "since": since.isoformat()}
    code, output = export(*[f"--{k.replace('_', '-')}={v}" for k, v in filters.items()])
    assert code == 0 and output == api.request("GET", "/audit/export", role="admin", params=filters).text
    assert {json.loads(line)["seq"] for line in output.splitlines()} >= {e["seq"] for e in later}
    code, output = export("--since", "2026")
    assert code == 1 and "since: Value error, is not a time" in output
    code, output = export("--since", "2026-12-02T10:00:00+01:00", "--until", "2026-12-02T09:00:00Z")
    assert code == 1 and "until: Value error, must be after since" in output


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


def test_times_naming_their_zone_filter_by_the_same_instant(api: LiveAPI) -> None:
    entries = api.request("GET", "/audit?limit=500", role="admin").json()["items"]
    middle = entries[len(entries) // 2]
    instant = datetime.fromisoformat(middle["created_at"])
    paris = instant.astimezone(timezone(timedelta(hours=1))).isoformat()
    by_zone = api.request("GET", "/audit", role="admin", params={"since": paris, "limit": 500}).json()
    plain = instant.replace(tzinfo=None).isoformat()  # without a zone: UTC
    assert by_zone == api.request("GET", "/audit", role="admin", params={"since": plain, "limit": 500}).json()
    # Compared as instants: a time on a whole second is written without its fraction, so as text it
    # sorts after the same second's later instants.
    assert {e["seq"] for e in by_zone["items"]} == {
        e["seq"] for e in entries if datetime.fromisoformat(e["created_at"]) >= instant
    }
    until = api.request("GET", "/audit", role="admin", params={"until": paris, "limit": 500}).json()["items"]
    assert {e["seq"] for e in until} == {e["seq"] for e in entries if datetime.fromisoformat(e["created_at"]) < instant}
    exported = api.request("GET", "/audit/export", role="admin", params={"since": paris}).text.splitlines()
    assert [json.loads(line)["seq"] for line in exported] == sorted(e["seq"] for e in by_zone["items"])


def test_facets_offer_the_values_the_trail_holds(api: LiveAPI) -> None:
    entries = api.request("GET", "/audit?limit=500", role="admin").json()["items"]
    facets = api.request("GET", "/audit/facets", role="admin").json()
    for facet, column in [
        ("actors", "actor"),
        ("actions", "action"),
        ("object_types", "object_type"),
        ("projects", "project_key"),
    ]:
        held = sorted({e[column] for e in entries if e[column]})
        assert facets[facet] == {"values": held, "complete": True}, facet
    assert "ALPHA" in facets["projects"]["values"] and "project.create" in facets["actions"]["values"]


def test_facets_are_bounded(plane: ControlPlane, api: LiveAPI) -> None:
    owner = plane.users.caller_for("admin")
    for index in range(FACET_LIMIT + 1):
        plane.projects.create_project(owner, CreateProject(key=f"F{index:04d}", name="many"))
    projects = api.request("GET", "/audit/facets", role="admin").json()["projects"]
    assert len(projects["values"]) == FACET_LIMIT and not projects["complete"]
    assert projects["values"] == sorted(projects["values"]) and projects["values"][0] == "ALPHA"


def test_export_of_many_entries_streams_every_line(plane: ControlPlane, api: LiveAPI) -> None:
    owner = plane.users.caller_for("admin")
    for index in range(1200):
        plane.projects.create_project(owner, CreateProject(key=f"P{index:04d}", name="bulk"))
    exported = api.request("GET", "/audit/export?format=jsonl&action=project.create", role="admin").text.splitlines()
    assert len(exported) == 1201
    assert [json.loads(line)["seq"] for line in exported] == sorted(json.loads(line)["seq"] for line in exported)


# -- who and when ---------------------------------------------------------------------------------


def _entries(plane: ControlPlane, action: str) -> list[DescribeAuditEntry]:
    return plane.audit.list_entries(OPERATOR, AuditFilter(action=action), 1000, 0).items


def test_entries_take_the_databases_time_not_the_clients(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose clock reads 2001 (or lies) does not date the trail: the database does."""

    def database_now() -> datetime:
        with plane.db.engine.connect() as connection:
            moment = connection.scalar(select(database_clock()))
        assert moment is not None
        return moment

    before = database_now()
    monkeypatch.setattr(himalia.store.orm, "utcnow", lambda: datetime(2001, 1, 1, tzinfo=UTC))
    plane.projects.create_project(plane.users.caller_for("admin"), CreateProject(key="DATED", name="dated"))
    monkeypatch.undo()
    after = database_now()
    created = _entries(plane, "project.create")[0]
    assert created.object_id == "DATED"
    assert before <= created.created_at <= after
    assert _verify(plane) == []


def test_scheduled_firings_are_audited_as_the_system(plane: ControlPlane) -> None:
    """``nightly`` fires daily at 02:00 UTC; every run the scheduler creates has its entry."""
    moment = datetime(2030, 1, 1, 1, 59, tzinfo=UTC)
    scheduler = plane.new_scheduler(lambda: moment)
    scheduler.load()
    fired = scheduler.fire_due(datetime(2030, 1, 1, 2, 0, tzinfo=UTC))
    assert fired
    entries = {e.details["run"]: e for e in _entries(plane, "scenario.fire")}
    assert set(fired) <= set(entries)
    first = entries[fired[0]]
    assert (first.actor, first.object_id, first.project_key) == ("system:scheduler", "nightly", "ALPHA")
    assert first.details["trigger"] == "cron" and first.details["state"] == "queued"
    assert first.details["trigger_detail"]["fire_time"] == "2030-01-01T02:00:00+00:00"


def test_recovered_runs_are_audited_as_the_system(plane: ControlPlane) -> None:
    run_id = plane.runs.request_run(plane.users.caller_for("admin"), "ALPHA", "nightly", RunRequest()).id
    dead = subprocess.Popen(["true"])
    dead.wait()
    worker = f"{socket.gethostname()}:{dead.pid}:deadbeef"
    assert plane.runs.claim_next(worker, 0) == run_id
    assert plane.runs.recover(timedelta(minutes=5)) == [run_id]
    (entry,) = _entries(plane, "scenario.recover")
    assert (entry.actor, entry.object_id, entry.project_key) == ("system:recovery", "nightly", "ALPHA")
    assert entry.details["run"] == run_id and entry.details["worker"] == worker and entry.details["state"] == "failed"


def _run_as_contributor(plane: ControlPlane) -> int:
    """A run of a scenario that runs as ``contributor``, requested by ``projadmin``."""
    definition = ScenarioDefinition.model_validate(
        {
            "id": "as-contributor",
            "name": "As contributor",
            "run_as": "contributor",
            "steps": [{"name": "Check", "type": "run_checks", "dataset": "transactions"}],
        }
    )
    plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", SaveScenario(definition=definition))
    requester = plane.users.caller_for("projadmin")
    return plane.runs.request_run(requester, "ALPHA", "as-contributor", RunRequest()).id


def test_a_kernels_credential_fetch_names_its_run_and_requester(plane: ControlPlane) -> None:
    """Kernels call with the run's token, as the run-as user: the entry says which run, for whom."""
    run_id = _run_as_contributor(plane)
    value = "hml_run-token-for-the-audit-test"
    with plane.db.write() as session:  # as the run engine mints it
        run = session.get_one(ScenarioRun, run_id)
        contributor = session.scalar(select(User).where(User.login == "contributor"))
        assert contributor is not None
        token = ApiToken(
            user_id=contributor.id,
            name=f"run #{run_id}",
            prefix=value[:8],
            digest=digest(value),
            project_id=run.project_id,
        )
        session.add(token)
        session.flush()
        run.token_id = token.id
    kernel = plane.tokens.authenticate(value, "10.1.2.3")
    plane.connections.read_credentials(kernel, "wh")
    (entry,) = _entries(plane, "connection.read_credentials")
    assert entry.actor == "contributor"
    assert entry.details["run_context"] == {"run": run_id, "requested_by": "projadmin"}
    assert _verify(plane) == []


def test_what_a_run_does_is_audited_as_its_run_as_user_naming_the_run(plane: ControlPlane) -> None:
    run_id = _run_as_contributor(plane)
    plane.config.LocalExecutor.warm_workers = 0
    engine = plane.start_engine(schedule=False, only={run_id})
    assert engine.wait_for(run_id) in ("succeeded", "warning", "failed")
    checked = [e for e in _entries(plane, "checks.run") if e.details.get("run_context", {}).get("run") == run_id]
    assert [(e.actor, e.details["run_context"]["requested_by"]) for e in checked] == [("contributor", "projadmin")]


def test_concurrent_writers_keep_the_chain_and_the_head_file_in_step(plane: ControlPlane) -> None:
    owner = plane.users.caller_for("admin")

    def create(prefix: str) -> None:
        for index in range(15):
            plane.projects.create_project(owner, CreateProject(key=f"{prefix}_{index}", name="parallel"))

    threads = [threading.Thread(target=create, args=(f"T{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _verify(plane) == []
    newest = plane.audit.list_entries(OPERATOR, AuditFilter(), 1, 0).items[0]
    assert json.loads(Path(plane.audit_head_file).read_text())["seq"] == newest.seq


def test_a_head_file_behind_the_chain_is_accepted_and_caught_up(plane: ControlPlane) -> None:
    """A crash between a commit and the file write leaves the file one entry behind: no alarm."""
    head_file = Path(plane.audit_head_file)
    behind = head_file.read_text()
    owner = plane.users.caller_for("admin")
    plane.projects.create_project(owner, CreateProject(key="AHEAD", name="ahead"))
    head_file.write_text(behind)
    assert _verify(plane) == []
    plane.projects.create_project(owner, CreateProject(key="CAUGHT_UP", name="caught up"))
    newest = plane.audit.list_entries(OPERATOR, AuditFilter(), 1, 0).items[0]
    assert json.loads(head_file.read_text())["seq"] == newest.seq
    assert _verify(plane) == []


def test_head_file_and_store_files_are_private(plane: ControlPlane) -> None:
    assert Path(plane.home).stat().st_mode & 0o777 == 0o700
    assert Path(plane.audit_head_file).stat().st_mode & 0o777 == 0o600
