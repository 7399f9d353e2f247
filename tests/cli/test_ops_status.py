"""``himalia ops status``: the morning check in a terminal, and its exit codes for cron and monitoring."""

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import alembic.command
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.store.orm import Scenario, utcnow
from himalia.wire.data import CheckSpec, CreateDataset, FreshnessSpec
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateProject
from himalia.wire.scenarios import RunRequest, SaveScenario

from ..conftest import AUDIT_KEY, SECRET_KEY
from ..scenarios.test_scheduler import scheduler_at

ESCAPE = "\x1b["


def himalia(plane: ControlPlane, *arguments: str, colour: bool = False, **environment: str) -> Result:
    env = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY, "NO_COLOR": "", **environment}
    return CliRunner().invoke(main, ["--home", plane.home, "--db-url", plane.db.url, *arguments], env=env, color=colour)


@pytest.fixture
def engine(plane: ControlPlane) -> Iterator[ControlPlane]:
    """The platform running in the test's own control plane, its scheduler beating and its runs
    executing; the command, another process's control plane, reads the store they leave."""
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=True)
    yield plane


def run_to_the_end(plane: ControlPlane, key: str, steps: list[dict[str, Any]], scenario: str = "job") -> str:
    """Save a scenario of ``steps`` (no trigger) in ``key`` as admin, run it and wait for its end state."""
    admin = plane.users.caller_for("admin")
    definition = ScenarioDefinition.model_validate({"id": scenario, "name": scenario.title(), "steps": steps})
    plane.scenarios.save_scenario(admin, key, SaveScenario(definition=definition))
    run = plane.runs.request_run(admin, key, scenario, RunRequest())
    deadline = time.monotonic() + 30
    while (state := plane.runs.get_run(admin, key, scenario, run.id).state) in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    return str(state)


def new_project(plane: ControlPlane, key: str) -> None:
    plane.projects.create_project(plane.users.caller_for("admin"), CreateProject(key=key, name=key.title()))


SUCCEEDS = [{"name": "Set", "type": "set_variables", "values": {"day": "2018-06-01"}}]
FAILS = [{"name": "Query", "type": "sql", "connection": "wh", "statement": "SELECT * FROM no_such_table"}]


def test_all_green_exits_0(engine: ControlPlane) -> None:
    new_project(engine, "GREEN")
    assert run_to_the_end(engine, "GREEN", SUCCEEDS) == "succeeded"
    result = himalia(engine, "ops", "status", "--project", "GREEN")
    assert result.exit_code == 0, result.output
    assert "GREEN/job" in result.output and "all green" in result.output
    assert ESCAPE not in result.output  # not a terminal
    assert all(len(line) <= 100 for line in result.output.splitlines())


def test_a_failed_run_exits_1_in_red(engine: ControlPlane) -> None:
    new_project(engine, "RED")
    assert run_to_the_end(engine, "RED", FAILS) == "failed"
    result = himalia(engine, "ops", "status", "--project", "RED", colour=True)
    assert result.exit_code == 1, result.output
    assert "needs attention" in result.output
    assert "\x1b[31mfailed" in result.output  # red, as on the board
    plain = himalia(engine, "ops", "status", "--project", "RED", colour=True, NO_COLOR="1")
    assert plain.exit_code == 1 and ESCAPE not in plain.output
    assert all(len(line) <= 100 for line in plain.output.splitlines())


def test_a_stale_dataset_exits_1(engine: ControlPlane) -> None:
    admin = engine.users.caller_for("admin")
    new_project(engine, "STALE")
    assert run_to_the_end(engine, "STALE", SUCCEEDS) == "succeeded"
    assert himalia(engine, "ops", "status", "--project", "STALE").exit_code == 0
    engine.datasets.create_dataset(
        admin, "STALE", _dataset("transactions", freshness=FreshnessSpec(column="purchase_date", max_age="26h"))
    )
    engine.checks.save_check(admin, "STALE", "transactions", CheckSpec(name="Fresh", type="freshness"))
    assert engine.checks.run_checks(admin, "STALE", "transactions").outcome == "ERROR"  # 2018's data
    result = himalia(engine, "ops", "status", "--project", "STALE")
    assert result.exit_code == 1, result.output
    assert "stale STALE/transactions (Fresh)" in result.output
    stale = json.loads(himalia(engine, "ops", "status", "--project", "STALE", "--json").output)
    assert [s["dataset"] for s in stale["board"]["stale_datasets"]] == ["transactions"]


def backdated(plane: ControlPlane, key: str, fields: dict[str, Any], hours: int) -> None:
    """Save a scenario of SUCCEEDS as admin, as if created and saved ``hours`` ago (the board counts
    fires after the last save only)."""
    admin = plane.users.caller_for("admin")
    definition = ScenarioDefinition.model_validate({"id": "timed", "name": "Timed", "steps": SUCCEEDS, **fields})
    plane.scenarios.save_scenario(admin, key, SaveScenario(definition=definition))
    back = utcnow() - timedelta(hours=hours)
    with plane.db.write() as session:
        session.execute(update(Scenario).where(Scenario.slug == "timed").values(created_at=back, updated_at=back))


def test_fires_while_the_platform_was_down_are_missed_and_exit_1(engine: ControlPlane) -> None:
    new_project(engine, "GREY")
    backdated(engine, "GREY", {"triggers": [{"type": "time", "schedule": "every 1 hours"}]}, hours=3)
    result = himalia(engine, "ops", "status", "--project", "GREY", colour=True)
    assert result.exit_code == 1, result.output
    assert "\x1b[90mmissed" in result.output  # grey
    assert "The control plane was down" in result.output
    board = json.loads(himalia(engine, "ops", "status", "--project", "GREY", "--json").output)["board"]
    assert {f["missed_reason"] for f in board["scenarios"][0]["fires"]} == {"control_plane_down"}


def test_a_result_ready_after_its_deadline_is_late_and_exit_1(engine: ControlPlane) -> None:
    """The scheduler fires at its due time two hours ago (a controllable clock); the run succeeds
    now, an hour after the deadline."""
    now = utcnow()
    due = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    ready_by = (now - timedelta(hours=1)).strftime("%H:%M")
    new_project(engine, "ORANGE")
    trigger = {"type": "time", "cron": f"{due.minute} {due.hour} * * *"}
    backdated(engine, "ORANGE", {"triggers": [trigger], "sla": {"ready_by": ready_by}}, hours=24)
    scheduler, _ = scheduler_at(engine, due - timedelta(minutes=1))
    [run_id] = scheduler.fire_due(due)
    admin = engine.users.caller_for("admin")
    deadline = time.monotonic() + 30
    while engine.runs.get_run(admin, "ORANGE", "timed", run_id).state != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = himalia(engine, "ops", "status", "--project", "ORANGE", colour=True)
    assert result.exit_code == 1, result.output
    assert "\x1b[38;5;208mlate" in result.output  # orange
    assert "Late: ready at" in result.output


def _dataset(name: str, freshness: FreshnessSpec) -> CreateDataset:
    return CreateDataset(name=name, connection="wh", table="transactions_2018", freshness=freshness)


def test_json_project_filter_and_a_reader_sees_only_their_projects(engine: ControlPlane) -> None:
    new_project(engine, "GREEN")
    assert run_to_the_end(engine, "GREEN", SUCCEEDS) == "succeeded"
    everything = himalia(engine, "ops", "status", "--json")
    payload = json.loads(everything.output)
    assert {s["project"] for s in payload["board"]["scenarios"]} == {"ALPHA", "GREEN"}
    assert payload["health"]["status"] in ("ok", "degraded")
    assert {c["name"] for c in payload["health"]["components"]} >= {"store"}
    only = json.loads(himalia(engine, "ops", "status", "--project", "GREEN", "--json").output)
    assert {s["project"] for s in only["board"]["scenarios"]} == {"GREEN"}
    reader = himalia(engine, "--as", "reader", "ops", "status", "--json")
    assert {s["project"] for s in json.loads(reader.output)["board"]["scenarios"]} == {"ALPHA"}
    hidden = himalia(engine, "--as", "reader", "ops", "status", "--project", "GREEN")
    assert hidden.exit_code == 1 and hidden.output == "error: There is no project 'GREEN'.\n"


def test_bad_since_names_the_option(plane: ControlPlane) -> None:
    result = himalia(plane, "ops", "status", "--since", "yesterday")
    assert result.exit_code == 1
    assert result.output.startswith("error: --since: 'yesterday' is not a duration")


def test_a_platform_whose_scheduler_never_beat_is_unhealthy(plane: ControlPlane) -> None:
    """The store answers, but no scheduler is firing triggers: exit 2 whatever the board says."""
    result = himalia(plane, "ops", "status", "--project", "ALPHA")
    assert result.exit_code == 2, result.output
    assert "platform unhealthy" in result.output
    assert "error   scheduler: no scheduler has beaten yet" in result.output


def test_a_store_at_an_old_revision_is_unhealthy(plane: ControlPlane) -> None:
    alembic.command.downgrade(plane.db.alembic_config(), "-1")
    result = himalia(plane, "ops", "status")
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("unhealthy: the store cannot be used: The database is at revision")


def test_an_unreachable_store_is_one_line_and_exit_2(tmp_path: Any) -> None:
    env = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/himalia?connect_timeout=2"
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "h"), "--db-url", unreachable, "ops", "status"], env=env
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith("unhealthy: the store cannot be used:")


def test_without_a_store_it_says_how_to_point_at_one(tmp_path: Any) -> None:
    result = CliRunner().invoke(main, ["ops", "status"], env={"JUPYTER_DATA_DIR": str(tmp_path), "NO_COLOR": ""})
    assert result.exit_code == 1
    assert "no Himalia store in" in result.output


def test_every_board_colour_fits_100_columns() -> None:
    """The lines the board's vocabulary makes: each status in its colour, long names and messages clipped."""
    from datetime import UTC, datetime, timedelta

    from himalia.cli.ops import morning_check_lines
    from himalia.wire.operations import Board, BoardFire, BoardScenario, BoardStatus, Health, HealthComponent

    now = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    long = "a message far longer than any terminal line, " * 5
    fires = [
        BoardFire(due_at=now - timedelta(hours=h), status=status, message=long, run_id=h or None)
        for h, status in enumerate(BoardStatus)
    ]
    scenario = BoardScenario(
        project="A_VERY_LONG_PROJECT_KEY",
        scenario="an_equally_long_scenario_identifier",
        name="x",
        active=True,
        timezone="America/Argentina/Buenos_Aires",
        next_fire=now + timedelta(days=1),
        sla=None,
        deadline=now + timedelta(hours=1),
        status=BoardStatus.LATE,
        p95_seconds=None,
        fires=fires,
        alerts=[],
        stale_datasets=[],
    )
    board = Board(
        generated_at=now,
        since=now - timedelta(days=1),
        scenarios=[scenario],
        stale_datasets=[],
        counts={status: 1 for status in BoardStatus},
        needs_attention=True,
    )
    health = Health(
        status="degraded",
        checked_at=now,
        components=[HealthComponent(name="disk", status="warning", message=long)],
    )
    lines = morning_check_lines(board, health)
    assert max(len(click_unstyle(line)) for line in lines) <= 100
    text = "\n".join(lines)
    assert "\x1b[38;5;208mlate" in text  # orange
    assert "\x1b[31mfailed" in text and "\x1b[90mmissed" in text
    assert "America/Argenti…" in lines[2]  # the zone the times are in, clipped but shown


def click_unstyle(line: str) -> str:
    import click

    return click.unstyle(line)
