"""The CLI's change and remove verbs, end to end on a real store: each one audited, each refusal one line."""

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.compute import StartServer

from .test_cli import cli_on

SCHEDULED = """id: {id}
name: Tidy {id}
steps:
  - name: Mark
    type: set_variables
    values: {{done: true}}
triggers:
  - type: time
    schedule: daily at 02:00
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def himalia(home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    run = cli_on(home, monkeypatch)
    run("group", "add", "admins", "--permission", "admin")
    run("user", "add", "root", "--group", "admins")
    return run


def answered(home: Path, answer: str, *arguments: str) -> Result:
    """The command with ``answer`` typed at its prompt (``input`` reaches stdin too)."""
    return CliRunner().invoke(main, ["--home", str(home), *arguments], input=answer)


def refusal(result: Result) -> str:
    """The one line a refused command prints."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def audited(himalia: Any, action: str) -> list[dict[str, Any]]:
    """The audit entries of ``action``, oldest first, read through ``audit export``."""
    lines = himalia("audit", "export", "--action", action).output.splitlines()
    return [entry for entry in map(json.loads, lines) if entry["action"] == action]


def test_groups_change_lose_members_and_go(himalia: Any, home: Path) -> None:
    himalia("group", "add", "data_team", "--permission", "create_projects")
    himalia("user", "add", "alice", "--group", "data_team")
    himalia("user", "add", "bob")

    changed = himalia(
        "--json",
        "group",
        "set",
        "data_team",
        "--description",
        "Data people",
        "--permission",
        "view_audit",
        "--permission",
        "create_projects",
    )
    group = json.loads(changed.output)
    assert (group["description"], sorted(group["permissions"])) == ("Data people", ["create_projects", "view_audit"])
    assert json.loads(himalia("--json", "group", "set", "data_team", "--no-permissions").output)["permissions"] == []
    assert audited(himalia, "group.update")[0]["details"]["permissions"] == {
        "before": ["create_projects"],
        "after": ["create_projects", "view_audit"],
    }

    assert refusal(himalia("group", "set", "data_team", code=1)) == (
        "error: nothing to change: give --description, --permission or --no-permissions"
    )
    both = himalia("group", "set", "data_team", "--permission", "admin", "--no-permissions", code=1)
    assert refusal(both) == "error: give --permission or --no-permissions, not both"
    assert refusal(himalia("group", "set", "ghost", "--description", "x", code=1)) == (
        "error: There is no group 'ghost'."
    )
    not_admin = refusal(himalia("--as", "bob", "group", "set", "data_team", "--permission", "admin", code=1))
    assert not_admin.startswith("error: bob does not hold the global permission 'admin'")

    assert json.loads(himalia("--json", "group", "remove-member", "data_team", "alice").output)["members"] == []
    assert refusal(himalia("group", "remove-member", "data_team", "alice", code=1)) == (
        "error: 'alice' is not a member of 'data_team'. (field: user)"
    )
    assert audited(himalia, "group.remove_member")[0]["details"] == {"user": "alice"}
    last = refusal(himalia("group", "remove-member", "admins", "root", code=1))
    assert last == "error: This would leave the platform without an active administrator."
    assert refusal(himalia("--as", "bob", "group", "remove-member", "admins", "root", code=1)).startswith("error: bob ")

    declined = answered(home, "n\n", "group", "delete", "data_team")
    assert declined.exit_code == 1
    assert "Delete group data_team? Its 0 member(s) lose its global permissions" in declined.output
    assert "data_team" in himalia("group", "list").output
    assert himalia("group", "delete", "data_team", "--yes").output == "deleted group data_team\n"
    names = [g["name"] for g in json.loads(himalia("--json", "group", "list").output)["items"]]
    assert names == ["admins"]
    assert [e["object_id"] for e in audited(himalia, "group.delete")] == ["data_team"]
    assert refusal(himalia("group", "delete", "data_team", "--yes", code=1)) == (
        "error: There is no group 'data_team'."
    )
    assert refusal(himalia("group", "delete", "admins", "--yes", code=1)) == (
        "error: This would leave the platform without an active administrator."
    )


def test_users_change_deactivate_and_come_back(himalia: Any, home: Path, tmp_path: Path) -> None:
    himalia("group", "add", "makers", "--permission", "create_projects")
    himalia("user", "add", "bob", "--group", "makers")
    himalia("user", "add", "carol")
    changed = himalia(
        "--json",
        "user",
        "set",
        "bob",
        "--display-name",
        "Bob Builder",
        "--email",
        "bob@example.org",
        "--profile",
        "designer",
    )
    bob = json.loads(changed.output)
    assert (bob["display_name"], bob["email"], bob["profile"]) == ("Bob Builder", "bob@example.org", "designer")
    assert audited(himalia, "user.update")[0]["details"] == {
        "display_name": "Bob Builder",
        "email": "bob@example.org",
        "profile": "designer",
    }
    assert refusal(himalia("user", "set", "bob", code=1)) == (
        "error: nothing to change: give --display-name, --email or --profile"
    )
    assert refusal(himalia("user", "set", "ghost", "--email", "g@example.org", code=1)) == (
        "error: There is no user 'ghost'."
    )
    assert refusal(himalia("user", "set", "bob", "--email", "x" * 400, code=1)).startswith("error: email: ")
    not_admin = refusal(himalia("--as", "carol", "user", "set", "bob", "--display-name", "B", code=1))
    assert not_admin.startswith("error: carol does not hold the global permission 'admin'")

    himalia("token", "create", "--user", "bob", "--name", "laptop")
    himalia("--as", "bob", "project", "create", "OPS", "--name", "Ops")
    (tmp_path / "tidy.yaml").write_text(SCHEDULED.format(id="tidy"))
    himalia("--as", "bob", "scenario", "apply", "OPS", str(tmp_path / "tidy.yaml"))

    said = "1 API token(s) revoked; 1 scenario(s) running as them no longer start (OPS/tidy)"
    declined = answered(home, "n\n", "user", "deactivate", "bob")
    assert declined.exit_code == 1 and f"Deactivate bob? {said}. [y/N]" in declined.output
    assert json.loads(himalia("--json", "token", "list", "--user", "bob").output)["total"] == 1
    deactivated = himalia("user", "deactivate", "bob", "--yes").output
    assert deactivated == f"deactivated bob: {said}\n"
    assert json.loads(himalia("--json", "token", "list", "--user", "bob").output)["total"] == 0
    entry = audited(himalia, "user.update")[-1]
    assert (entry["object_id"], entry["details"]["active"], entry["details"]["tokens_revoked"]) == ("bob", False, 1)
    assert refusal(himalia("user", "deactivate", "bob", "--yes", code=1)) == "error: bob is already deactivated"
    assert refusal(himalia("user", "deactivate", "ghost", "--yes", code=1)).startswith("error: There is no user")
    assert refusal(himalia("--as", "carol", "user", "deactivate", "root", "--yes", code=1)).startswith("error: carol ")
    assert refusal(himalia("user", "deactivate", "root", "--yes", code=1)) == (
        "error: This would leave the platform without an active administrator."
    )
    himalia("user", "add", "dave", "--group", "admins")
    assert refusal(himalia("--as", "root", "user", "deactivate", "root", "--yes", code=1)) == (
        "error: You cannot deactivate yourself: ask another administrator."
    )

    assert json.loads(himalia("--json", "user", "activate", "bob").output)["active"] is True
    assert audited(himalia, "user.update")[-1]["details"] == {"active": True}
    assert "chain intact" in himalia("audit", "verify").output


def test_a_project_is_archived_then_deleted_once_nothing_depends_on_it(
    himalia: Any, home: Path, tmp_path: Path
) -> None:
    himalia("group", "add", "makers", "--permission", "create_projects")
    himalia("user", "add", "alice", "--group", "makers")
    himalia("user", "add", "bob")
    himalia("--as", "alice", "project", "create", "OPS", "--name", "Operations")
    himalia("--as", "alice", "project", "grant", "OPS", "--user", "bob", "--preset", "reader")
    for name in ("tidy", "sweep"):
        (tmp_path / f"{name}.yaml").write_text(SCHEDULED.format(id=name))
        himalia("--as", "alice", "scenario", "apply", "OPS", str(tmp_path / f"{name}.yaml"))

    assert refusal(himalia("--as", "alice", "project", "delete", "OPS", "--yes", code=1)) == (
        "error: Project OPS has active scenarios (sweep, tidy): archive it first, which deactivates them."
    )
    assert refusal(himalia("--as", "bob", "project", "archive", "OPS", code=1)).startswith(
        "error: bob may read OPS but does not hold 'admin' on it"
    )
    assert refusal(himalia("--as", "bob", "project", "delete", "OPS", "--yes", code=1)).startswith("error: bob ")
    assert refusal(himalia("project", "delete", "GHOST", "--yes", code=1)) == "error: There is no project 'GHOST'."
    assert refusal(himalia("project", "archive", "GHOST", code=1)) == "error: There is no project 'GHOST'."

    assert "queued run #1" in himalia("--as", "alice", "scenario", "run", "OPS", "tidy").output
    archived = himalia("--as", "alice", "project", "archive", "OPS").output
    assert archived == "archived OPS; deactivated its scenarios sweep, tidy\n"
    scenarios = json.loads(himalia("--json", "scenario", "list", "OPS").output)["items"]
    assert [(s["id"], s["active"]) for s in scenarios] == [("sweep", False), ("tidy", False)]
    assert json.loads(himalia("--json", "project", "list").output)["items"][0]["status"] == "archived"
    entry = audited(himalia, "project.update")[-1]
    assert entry["details"] == {"status": "archived", "deactivated_scenarios": ["sweep", "tidy"]}

    unarchived = json.loads(himalia("--json", "--as", "alice", "project", "unarchive", "OPS").output)
    assert unarchived["status"] == "active"
    assert not any(s["active"] for s in json.loads(himalia("--json", "scenario", "list", "OPS").output)["items"])
    assert himalia("project", "archive", "OPS").output == "archived OPS\n"

    assert refusal(himalia("--as", "alice", "project", "delete", "OPS", "--yes", code=1)) == (
        "error: Run #1 of 'tidy' in OPS is not finished: abort it first."
    )
    himalia("--as", "alice", "scenario", "abort", "OPS", "tidy", "1")
    himalia("bundle", "create", "OPS", "--note", "first")
    himalia("bundle", "create", "OPS", "--note", "second")
    assert refusal(himalia("--as", "alice", "project", "delete", "OPS", "--yes", code=1)) == (
        "error: Project OPS holds 2 bundle version(s) (1, 2), deleted with it: download those to keep, "
        "then delete it with delete_bundles."
    )

    declined = answered(home, "n\n", "--as", "alice", "project", "delete", "OPS", "--delete-bundles")
    assert declined.exit_code == 1
    assert "Delete project OPS (Operations) with its datasets, checks, scenarios, their history and its bundle" in (
        declined.output
    )
    assert json.loads(himalia("--json", "project", "list").output)["total"] == 1
    confirmed = answered(home, "y\n", "--as", "alice", "project", "delete", "OPS", "--delete-bundles")
    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.output.endswith("deleted project OPS\n")
    assert json.loads(himalia("--json", "project", "list").output)["total"] == 0
    assert json.loads(himalia("--json", "bundle", "list", "OPS").output) == []
    deleted = audited(himalia, "project.delete")
    assert [(e["object_id"], e["actor"], e["details"]) for e in deleted] == [("OPS", "alice", {"bundles": 2})]
    assert "chain intact" in himalia("audit", "verify").output


def test_connections_change_with_secrets_never_shown_and_go(himalia: Any, home: Path, tmp_path: Path) -> None:
    himalia("group", "add", "makers", "--permission", "create_connections")
    himalia("group", "add", "readers")
    himalia("user", "add", "alice", "--group", "makers")
    himalia("user", "add", "bob", "--group", "readers")
    himalia("--as", "alice", "connection", "create", "lake", "--type", "files", "--url", "s3://lake/raw")

    changed = himalia(
        "--json",
        "--as",
        "alice",
        "connection",
        "update",
        "lake",
        "--description",
        "The lake",
        "--param",
        "region=eu-west-1",
        "--usable-by",
        "readers",
    )
    lake = json.loads(changed.output)
    assert lake["description"] == "The lake" and lake["usable_by"] == {"mode": "groups", "groups": ["readers"]}
    assert lake["params"] == {"url": "s3://lake/raw", "region": "eu-west-1"}
    moved = json.loads(himalia("--json", "connection", "update", "lake", "--url", "s3://lake/curated").output)
    assert moved["params"] == {"url": "s3://lake/curated", "region": "eu-west-1"}

    prompted = answered(home, "prompted-secret-1\n", "--as", "alice", "connection", "update", "lake", "--secret", "key")
    assert prompted.exit_code == 0, prompted.output
    assert "lake secret key:" in prompted.output and "prompted-secret-1" not in prompted.output
    piped = answered(home, "piped-secret-2\n", "--json", "connection", "update", "lake", "--secret-stdin", "token")
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.output)["secret_names"] == ["token"]  # the secrets given replace the stored ones
    assert "piped-secret-2" not in piped.output
    assert json.loads(himalia("--json", "connection", "update", "lake", "--no-secrets").output)["secret_names"] == []
    updates = audited(himalia, "connection.update")
    assert [e["details"].get("secret_names") for e in updates] == [None, None, ["key"], ["token"], []]
    trail = himalia("audit", "export").output
    assert "prompted-secret-1" not in trail and "piped-secret-2" not in trail

    assert refusal(himalia("connection", "update", "lake", code=1)) == (
        "error: nothing to change: give at least one option (see --help)"
    )
    for mixed in (("--secret-stdin", "a", "--no-secrets"), ("--secret", "a", "--secret-stdin", "b")):
        assert refusal(himalia("connection", "update", "lake", *mixed, code=1)) == (
            "error: give one of --secret, --secret-stdin and --no-secrets"
        )
    assert refusal(himalia("--as", "bob", "connection", "update", "lake", "--description", "mine", code=1)) == (
        "error: Only the owner of 'lake' or an administrator may change it."
    )
    assert refusal(himalia("connection", "update", "lake", "--usable-by", "ghosts", code=1)) == (
        "error: There is no group 'ghosts'. (field: usable_by.groups)"
    )
    assert refusal(himalia("connection", "update", "ghost", "--description", "x", code=1)) == (
        "error: There is no connection 'ghost'."
    )

    warehouse = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(warehouse) as database:
        database.execute("CREATE TABLE orders (id INTEGER)")
    himalia(
        "group",
        "set",
        "makers",
        *(f"--permission={p}" for p in ("create_connections", "create_projects")),
        "--permission=write_unsafe_code",
    )
    himalia("--as", "alice", "connection", "create", "wh", "--type", "sql", "--url", f"sqlite:///{warehouse}")
    himalia("--as", "alice", "project", "create", "SHOP", "--name", "Shop")
    himalia("--as", "alice", "dataset", "create", "SHOP", "orders", "--connection", "wh", "--table", "orders")
    read = "delete them or point them at another connection first."
    assert refusal(himalia("--as", "alice", "connection", "delete", "wh", "--yes", code=1)) == (
        f"error: 1 dataset(s) read 'wh' (SHOP/orders): {read}"
    )
    himalia("--as", "alice", "project", "grant", "SHOP", "--user", "bob", "--preset", "reader")
    himalia("--as", "alice", "connection", "update", "wh", "--usable-by", "readers")
    assert json.loads(himalia("--json", "--as", "bob", "connection", "list").output)["total"] == 2

    assert refusal(himalia("--as", "bob", "connection", "delete", "lake", "--yes", code=1)) == (
        "error: Only the owner of 'lake' or an administrator may delete it."
    )
    declined = answered(home, "n\n", "--as", "alice", "connection", "delete", "lake")
    assert declined.exit_code == 1 and "Delete connection lake (files, owned by alice)? [y/N]" in declined.output
    assert himalia("--as", "alice", "connection", "delete", "lake", "--yes").output == "deleted connection lake\n"
    assert [c["name"] for c in json.loads(himalia("--json", "connection", "list").output)["items"]] == ["wh"]
    assert [e["object_id"] for e in audited(himalia, "connection.delete")] == ["lake"]
    assert refusal(himalia("connection", "delete", "lake", "--yes", code=1)) == "error: There is no connection 'lake'."


def test_tokens_are_listed_without_their_values_and_revoked(himalia: Any) -> None:
    himalia("user", "add", "bob")
    himalia("user", "add", "carol")
    bobs = himalia("token", "create", "--user", "bob", "--name", "laptop").output.strip()
    assert refusal(himalia("token", "create", "--user", "carol", "--project", "NONE", code=1)) == (
        "error: There is no project 'NONE'."
    )
    carol_id = json.loads(himalia("--json", "token", "create", "--user", "carol", "--name", "ci").output)["id"]

    listed = json.loads(himalia("--json", "token", "list").output)["items"]
    assert [(t["user"], t["name"]) for t in listed] == [("bob", "laptop"), ("carol", "ci")]
    table = himalia("token", "list").output
    assert bobs[:8] in table and bobs not in table and "never" in table
    assert [t["user"] for t in json.loads(himalia("--json", "--as", "bob", "token", "list").output)["items"]] == ["bob"]
    assert refusal(himalia("--as", "bob", "token", "list", "--user", "carol", code=1)).startswith(
        "error: bob does not hold the global permission 'admin'"
    )
    assert refusal(himalia("--as", "bob", "token", "revoke", str(carol_id), code=1)) == (
        f"error: There is no token {carol_id}."
    )

    assert himalia("token", "revoke", str(carol_id)).output == f"revoked token {carol_id}\n"
    assert [t["user"] for t in json.loads(himalia("--json", "token", "list").output)["items"]] == ["bob"]
    assert refusal(himalia("token", "revoke", str(carol_id), code=1)) == f"error: There is no token {carol_id}."
    assert [(e["object_id"], e["details"]) for e in audited(himalia, "token.revoke")] == [
        (str(carol_id), {"user": "carol"})
    ]


def test_wide_tables_fit_100_columns_and_json_keeps_every_field(himalia: Any, home: Path) -> None:
    """Realistic names, emails and groups: every table stays within 100 columns, quantities read as
    people size them, and ``--json`` prints the rows whole."""
    tiers_file = Path(__file__).resolve().parents[2] / "hub_config" / "tiers.yaml"
    groups = ("admins_of_the_platform", "data_team", "analysts", "fraud-investigations-emea")
    for group in groups[1:]:
        himalia(
            "group",
            "add",
            group,
            "--permission",
            "create_projects",
            "--permission",
            "create_connections",
            "--description",
            "People who investigate card fraud across the EMEA region, weekdays and on call",
        )
    email = "akonstantinou-vanderberg@fraud-investigations.example.org"
    himalia(
        "user",
        "add",
        "akonstantinou",
        "--display-name",
        "Alexandra Konstantinopoulou-Vanderberg",
        "--email",
        email,
        *(f"--group={g}" for g in groups[1:]),
    )
    himalia("user", "add", "ci-bot", "--service")
    himalia("tier", "apply", "-f", str(tiers_file))
    himalia("token", "create", "--user", "ci-bot", "--name", "nightly pipeline of the fraud investigations team")
    himalia(
        "--as",
        "akonstantinou",
        "project",
        "create",
        "FRAUD_EMEA",
        "--name",
        "Fraud investigations for Europe, the Middle East and Africa",
        "--tag",
        "fraud",
        "--tag",
        "emea",
    )
    himalia(
        "--as",
        "akonstantinou",
        "connection",
        "create",
        "fraud_investigations_lake",
        "--type",
        "files",
        "--url",
        "s3://fraud/raw",
        "--usable-by",
        ",".join(groups[1:]),
    )

    plane = ControlPlane(home=str(home))  # the hub's side: a server started for the project, one ended
    plane.start()
    try:
        hub = Caller.operator("test-hub")
        person = "akonstantinou"
        ended = plane.tiers.start_server(hub, StartServer(user=person, tier="medium", project="FRAUD_EMEA"))
        plane.tiers.stop_server(hub, ended.id)
        name = "fraud-investigation-of-the-quarter"
        plane.tiers.start_server(hub, StartServer(user=person, tier="medium", server_name=name, project="FRAUD_EMEA"))
    finally:
        plane.stop()

    for command in (
        ("user", "list"),
        ("group", "list"),
        ("tier", "list"),
        ("token", "list"),
        ("project", "list"),
        ("project", "grants", "FRAUD_EMEA"),
        ("connection", "list"),
        ("tier", "usage"),
    ):
        lines = himalia(*command).output.splitlines()
        assert max(map(len, lines)) <= 100, (command, lines)
        assert all("Traceback" not in line for line in lines)

    users = himalia("user", "list").output
    assert "akonstantinou " in users and "ci-bot" in users and "service" in users
    assert email not in users and "…" in users  # elided in the table ...
    assert email in himalia("--json", "user", "list").output  # ... whole in JSON
    tiers = himalia("tier", "list").output
    assert all(shown in tiers for shown in ("0.5-1 cores", "1-2 cores", "4 cores", "4-8 Gi", "32-64 Gi", "default"))
    usage = himalia("tier", "usage").output
    assert "fraud-investigat" in usage and "FRAUD_EMEA" in usage and "0.2" in usage
    assert len(json.loads(himalia("--json", "tier", "usage").output)["items"]) == 2
    medium = next(t for t in json.loads(himalia("--json", "tier", "list").output) if t["name"] == "medium")
    assert (medium["memory_limit"], medium["cpu_limit"]) == (8 * 2**30, 2)


def test_a_store_without_administrators_yet_is_still_changed_by_its_operator(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the hub, nobody is an administrator before the first one signs in: the operator's
    changes then take none away, and the last administrator is kept once there is one."""
    run = cli_on(home, monkeypatch)
    run("group", "add", "tier_managers", "--permission", "manage_tiers")
    run("user", "add", "bob", "--group", "tier_managers")
    assert run("group", "remove-member", "tier_managers", "bob").exit_code == 0
    run("user", "add", "bob2")
    assert run("user", "deactivate", "bob2", "--yes").exit_code == 0
    assert run("group", "delete", "tier_managers", "--yes").exit_code == 0

    run("group", "add", "admins", "--permission", "admin")
    run("user", "add", "root", "--group", "admins")
    assert "without an active administrator" in refusal(answered(home, "", "group", "remove-member", "admins", "root"))
