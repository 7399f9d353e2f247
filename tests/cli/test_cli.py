"""The ``himalia`` command, end to end on a fresh data folder (the embedded defaults)."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from himalia.cli import main


def cli_on(home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HIMALIA_SECRET_KEYS", raising=False)
    monkeypatch.delenv("HIMALIA_AUDIT_KEY", raising=False)
    monkeypatch.delenv("HIMALIA_DB_URL", raising=False)
    runner = CliRunner()

    def run(*arguments: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(main, ["--home", str(home), *arguments], env=env)
        assert result.exit_code == code, (result.output, result.stderr if hasattr(result, "stderr") else "")
        return result

    return run


@pytest.fixture
def himalia(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    return cli_on(tmp_path / "home", monkeypatch)


@pytest.fixture
def demo_himalia(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI on a home in a folder any account may pass through, as `make demo`'s in the clone:
    the demo's notebooks run as their users' own OS accounts and open the warehouse beside the home."""
    base = Path(tempfile.mkdtemp(prefix="himalia-cli-demo-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    yield cli_on(base / "home", monkeypatch)
    shutil.rmtree(base, ignore_errors=True)


def test_a_day_of_operations(himalia, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "Store at revision" in himalia("db", "upgrade").output
    assert (tmp_path / "home" / "himalia.sqlite").exists()
    himalia(
        "group",
        "add",
        "data_team",
        "--permission",
        "create_projects",
        "--permission",
        "create_connections",
        "--permission",
        "write_unsafe_code",
    )
    himalia("group", "add", "readers")
    himalia("user", "add", "alice", "--display-name", "Alice", "--group", "data_team")
    himalia("user", "add", "bob")
    himalia("user", "add", "ci-bot", "--service")
    himalia("group", "add-member", "readers", "bob")
    users = json.loads(himalia("--json", "user", "list").output)["items"]
    assert [(u["login"], u["kind"]) for u in users] == [("alice", "user"), ("bob", "user"), ("ci-bot", "service")]

    himalia("--as", "alice", "project", "create", "SALES", "--name", "Sales", "--tag", "q3")
    himalia("--as", "alice", "project", "grant", "SALES", "--group", "readers", "--preset", "reader")
    grants = json.loads(himalia("--json", "project", "grants", "SALES").output)
    assert {(g["principal"], g["preset"]) for g in grants} == {("alice", "admin"), ("readers", "reader")}
    bob_sees = json.loads(himalia("--json", "--as", "bob", "project", "list").output)["items"]
    assert [(p["key"], p["my_permissions"]) for p in bob_sees] == [("SALES", ["read_dashboards", "read_content"])]

    warehouse = tmp_path / "w.sqlite"
    sqlite3.connect(warehouse).close()  # a read-only connection opens an existing database, never creates one
    himalia(
        "--as",
        "alice",
        "connection",
        "create",
        "w",
        "--type",
        "sql",
        "--url",
        f"sqlite:///{warehouse}",
        "--usable-by",
        "readers",
    )
    assert "True" in himalia("--as", "bob", "connection", "test", "w").output
    broken = himalia(
        "--as",
        "alice",
        "connection",
        "create",
        "down",
        "--type",
        "sql",
        "--url",
        "postgresql+psycopg://x@127.0.0.1:9/none",
        "--secret-env",
        "password=PW",
        env={"PW": "cli-secret-value"},
    )
    assert "cli-secret-value" not in broken.output
    failed = himalia("--as", "alice", "connection", "test", "down", code=1)
    assert "OperationalError" in failed.output and "cli-secret-value" not in failed.output

    himalia("variables", "set", '{"company": "ACME"}')
    himalia("--as", "alice", "variables", "set", "--project", "SALES", '{"title": "Report for ${company}"}')
    resolved = json.loads(himalia("--as", "bob", "variables", "get", "--project", "SALES", "--resolved").output)
    assert resolved == {"company": "ACME", "title": "Report for ACME"}

    token = himalia("token", "create", "--user", "ci-bot", "--expires-in-days", "30").output.strip()
    assert token.startswith("hml_")

    assert "chain intact" in himalia("audit", "verify").output
    exported = tmp_path / "audit.csv"
    himalia("audit", "export", "--format", "csv", "--output", str(exported), "--action", "project")
    lines = exported.read_text().splitlines()
    assert lines[0].startswith("seq,created_at,actor") and len(lines) == 3
    assert "cli-secret-value" not in himalia("audit", "export").output


def test_refusals_are_one_line_and_exit_1(himalia) -> None:  # type: ignore[no-untyped-def]
    himalia("user", "add", "bob")
    refused = himalia("--as", "bob", "project", "create", "NOPE", "--name", "n", code=1)
    assert refused.output.strip() == (
        "error: bob does not hold the global permission 'create_projects': ask an administrator for it."
    )
    invalid = himalia("project", "create", "lower", "--name", "n", "--owner", "bob", code=1)
    assert invalid.output.startswith("error: key: String should match pattern")
    unknown = himalia("--as", "ghost", "project", "list", code=1)
    assert "There is no user 'ghost'" in unknown.output
    assert himalia("variables", "set", "{not json", code=1).output.startswith("error: not JSON")


def test_key_files_are_created_private(himalia, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    himalia("user", "add", "bob")
    for name in ("secret.key", "audit.key"):
        assert oct(os.stat(tmp_path / "home" / name).st_mode & 0o777) == "0o600"


def test_demo_seed_is_idempotent(himalia) -> None:  # type: ignore[no-untyped-def]
    first = himalia("demo").output
    assert "created project FRAUD" in first and "created connection warehouse" in first
    assert "kept project FRAUD" in himalia("demo").output
    assert "Connected." in himalia("--as", "bob", "connection", "test", "warehouse").output
    assert "chain intact" in himalia("audit", "verify").output


REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_demo_scenario_from_the_command_line(demo_himalia, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's walk-through: seed, apply the demo scenario, run it with --wait, read the email."""
    himalia = demo_himalia
    from himalia.demo.mailsink import start_mailsink

    sink = start_mailsink(tmp_path / "mail", port=0)
    env = {"HIMALIA_SMTP_HOST": "127.0.0.1", "HIMALIA_SMTP_PORT": str(sink.port)}
    try:
        himalia("demo")
        scenario = str(REPOSITORY / "scenarios" / "daily-fraud-scoring.yaml")
        applied = himalia("--as", "alice", "scenario", "apply", "FRAUD", scenario, "--notebooks", str(REPOSITORY))
        assert "notebooks/prepare.ipynb: snapshot" in applied.output
        listed = json.loads(himalia("--json", "scenario", "list", "FRAUD").output)["items"]
        assert [(s["id"], s["run_as"], s["active"]) for s in listed] == [("daily_fraud_scoring", "alice", True)]

        refused = himalia("scenario", "run", "FRAUD", "daily_fraud_scoring", "-p", "threshold=high", code=1)
        assert "parameters.threshold" in refused.output
        unknown = himalia("scenario", "run", "FRAUD", "daily_fraud_scoring", "-p", "treshold=0.5", code=1)
        assert "declares a parameter 'treshold'" in unknown.output

        ran = himalia(
            "--as", "alice", "scenario", "run", "FRAUD", "daily_fraud_scoring", "-p", "threshold=0.7", "--wait", env=env
        )
        assert "run #1: succeeded" in ran.output
        runs = json.loads(himalia("--json", "scenario", "runs", "FRAUD", "daily_fraud_scoring").output)["items"]
        assert runs[0]["state"] == "succeeded" and runs[0]["parameters"] == {"threshold": 0.7}
        assert runs[0]["deliveries"][0]["sent"], runs[0]["deliveries"]
        log = himalia("scenario", "log", "FRAUD", "daily_fraud_scoring", "1").output
        assert "[Score] succeeded" in log
        assert "already ended" in himalia("scenario", "abort", "FRAUD", "daily_fraud_scoring", "1", code=1).output
        exported = himalia("scenario", "export", "FRAUD", "daily_fraud_scoring").output
        assert "notebooks/score.ipynb" in exported and "daily at 02:00" in exported
    finally:
        sink.stop()
    messages = list((tmp_path / "mail").glob("*.eml"))
    assert len(messages) == 1
    text = messages[0].read_text()
    assert "Daily fraud scoring for" in text and 'filename="transactions_joined_prepared.csv"' in text


def test_tiers_change_without_a_redeploy(himalia, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tiers_file = Path(__file__).resolve().parents[2] / "hub_config" / "tiers.yaml"
    for group in ("admins", "data_team", "analysts"):
        himalia("group", "add", group)
    himalia("user", "add", "bob", "--group", "analysts")
    assert "applied tier gpu" in himalia("tier", "apply", "-f", str(tiers_file)).output
    mine = json.loads(himalia("--as", "bob", "--json", "tier", "list").output)
    assert [t["name"] for t in mine] == ["small", "medium"]
    himalia("tier", "set", "medium", "--cpu-limit", "3", "--memory-limit", "12Gi", "--default")
    medium = json.loads(himalia("--json", "tier", "show", "medium").output)
    assert (medium["cpu_limit"], medium["memory_limit"], medium["default"]) == (3, 12 * 2**30, True)
    assert medium["cpu_request"] == 1  # the settings not given are kept
    assert not json.loads(himalia("--json", "tier", "show", "small").output)["default"]
    refused = himalia("tier", "set", "medium", "--memory-limit", "lots", code=1)
    assert "memory_limit" in refused.output
    assert "manage_tiers" in himalia("--as", "bob", "tier", "set", "medium", "--gpus", "1", code=1).output
    himalia("tier", "set", "medium", "--archive")
    assert [t["name"] for t in json.loads(himalia("--as", "bob", "--json", "tier", "list").output)] == ["small"]


#: What a command imports when it runs, never to print help: each of these takes a noticeable time.
HEAVY_MODULES = ("pandas", "papermill", "nbformat", "jsonschema", "sqlalchemy", "alembic", "cryptography")


def imported_modules(*arguments: str) -> set[str]:
    """The modules ``python -m himalia ARGUMENTS`` imports, read from ``-X importtime``."""
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "himalia", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Usage:" in finished.stdout
    return {line.rpartition("|")[2].strip() for line in finished.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("arguments", [("--help",), ("scenario", "--help"), ("dataset", "create", "--help")])
def test_help_imports_no_store_no_services_and_no_data_library(arguments: tuple[str, ...]) -> None:
    modules = imported_modules(*arguments)
    assert "himalia.cli" in modules and "click" in modules  # the measurement sees the imports
    assert not {m for m in modules if m.split(".")[0] in HEAVY_MODULES}
    himalia = {m for m in modules if m.startswith("himalia.")}
    assert {m for m in himalia if not m.startswith(("himalia.cli", "himalia.core"))} == set()
    assert {m for m in himalia if m.startswith("himalia.core.")} <= {"himalia.core.errors", "himalia.core.permissions"}


STEPS_ONLY = """id: {id}
name: Tidy {id}
steps:
  - name: Mark
    type: set_variables
    values: {{done: true}}
"""


def test_scenario_delete_asks_refuses_and_keeps_nothing(himalia, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``scenario delete``: asked unless --yes; refused in one line for a reader, an unknown id, a
    run not finished and a scenario another one fires after; the runs go with it, audited."""
    himalia("group", "add", "makers", "--permission", "create_projects")
    himalia("user", "add", "alice", "--group", "makers")
    himalia("user", "add", "bob")
    himalia("--as", "alice", "project", "create", "OPS", "--name", "Ops")
    himalia("--as", "alice", "project", "grant", "OPS", "--user", "bob", "--preset", "reader")
    for name, text in {
        "tidy": STEPS_ONLY.format(id="tidy"),
        "after": STEPS_ONLY.format(id="after") + "triggers:\n  - type: after_scenario\n    scenario: tidy\n",
    }.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        himalia("--as", "alice", "scenario", "apply", "OPS", str(tmp_path / f"{name}.yaml"))

    refused = himalia("--as", "bob", "scenario", "delete", "OPS", "tidy", "--yes", code=1)
    assert refused.output.startswith("error: bob ") and "does not hold 'write_content'" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    unknown = himalia("--as", "alice", "scenario", "delete", "OPS", "ghost", "--yes", code=1)
    assert unknown.output.strip() == "error: There is no scenario 'ghost' in OPS."
    depended = himalia("--as", "alice", "scenario", "delete", "OPS", "tidy", "--yes", code=1)
    assert depended.output.strip() == "error: Scenario 'after' fires after 'tidy': change it first."
    himalia("--as", "alice", "scenario", "delete", "OPS", "after", "--yes")

    assert "queued run #1" in himalia("--as", "alice", "scenario", "run", "OPS", "tidy").output
    running = himalia("--as", "alice", "scenario", "delete", "OPS", "tidy", "--yes", code=1)
    assert running.output.strip() == "error: Run #1 of 'tidy' is not finished: abort it first."
    himalia("--as", "alice", "scenario", "abort", "OPS", "tidy", "1")

    declined = CliRunner().invoke(
        main, ["--home", str(tmp_path / "home"), "--as", "alice", "scenario", "delete", "OPS", "tidy"], input="n\n"
    )
    assert declined.exit_code == 1
    assert "Delete scenario OPS/tidy (Tidy tidy) and the history of its 1 run(s)? [y/N]" in declined.output
    assert [s["id"] for s in json.loads(himalia("--json", "scenario", "list", "OPS").output)["items"]] == ["tidy"]

    confirmed = CliRunner().invoke(
        main, ["--home", str(tmp_path / "home"), "--as", "alice", "scenario", "delete", "OPS", "tidy"], input="y\n"
    )
    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.output.endswith("deleted scenario OPS/tidy and 1 run(s)\n")
    assert json.loads(himalia("--json", "scenario", "list", "OPS").output)["items"] == []
    himalia("--as", "alice", "scenario", "runs", "OPS", "tidy", code=1)
    audit = himalia("audit", "export", "--format", "csv", "--action", "scenario.delete").output
    assert audit.count("scenario.delete") == 2 and '""runs_deleted"": 1' in audit
    assert "chain intact" in himalia("audit", "verify").output
