"""Steps without kernels (checks, sql, run_scenario), concurrency, and when reports are sent."""

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from himalia.controlplane import ControlPlane
from himalia.store.orm import Scenario
from himalia.wire.data import CreateConnection

from ..conftest import LiveAPI
from .conftest import (
    BASE,
    add_row_checks,
    at,
    blocker,
    error_of,
    get_run,
    saved,
    start,
    start_engine,
    steps,
    values_step,
    wait,
    warehouse_url,
)


def test_checks_conditions_and_ignored_failures(light: LiveAPI) -> None:
    add_row_checks(light.plane)
    gate = {"name": "Gate", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]}
    soft = {"name": "Soft", "type": "run_checks", "dataset": "transactions", "checks": ["Plenty of rows"]}
    scenarios: list[dict[str, Any]] = [
        {
            "id": "gate",
            "name": "Gate",
            "steps": [
                gate,
                values_step("After"),
                values_step("Always", run_if="always"),
                values_step("On failure", run_if="prior_failure"),
            ],
        },
        {
            "id": "soft",
            "name": "Soft",
            "steps": [
                soft,
                values_step("After"),
                values_step("On failure", run_if="prior_failure"),
                {"name": "All", "type": "run_checks", "dataset": "transactions", "ignore_failure": True},
            ],
        },
        {
            "id": "ignored",
            "name": "Ignored",
            "steps": [
                gate | {"ignore_failure": True},
                {"name": "Unknown", "type": "run_checks", "dataset": "transactions", "checks": ["Nope"]}
                | {"ignore_failure": True},
                values_step("After"),
                values_step("On failure", run_if="prior_failure"),
            ],
        },
    ]
    for definition in scenarios:
        saved(light, definition)
    runs = {d["id"]: wait(light, d["id"], start(light, d["id"])) for d in scenarios}

    run = runs["gate"]
    assert run["state"] == "failed", run
    assert run["steps"][0]["state"] == "failed"
    assert run["steps"][0]["message"].startswith("Enough rows: ")
    assert "300" in run["steps"][0]["message"]
    assert run["steps"][0]["outputs"]["results"] == [
        {"check": "Enough rows", "outcome": "ERROR", "message": run["steps"][0]["message"].split(": ", 1)[1]}
    ]
    assert steps(run)[1:] == [
        ("skipped", "not run: an earlier step failed"),
        ("succeeded", "scenario variables: always=1"),
        ("succeeded", "scenario variables: on_failure=1"),
    ]

    run = runs["soft"]
    assert run["state"] == "warning", run
    assert run["steps"][0]["state"] == "warning" and run["steps"][0]["message"].startswith("Plenty of rows: ")
    assert steps(run)[1:3] == [
        ("succeeded", "scenario variables: after=1"),
        ("skipped", "not run: no earlier step failed"),
    ]
    outcomes = {r["check"]: r["outcome"] for r in run["steps"][3]["outputs"]["results"]}
    assert outcomes == {"Columns 13": "OK", "Enough rows": "ERROR", "Plenty of rows": "WARNING"}
    assert run["steps"][3]["state"] == "failed"

    run = runs["ignored"]
    assert run["state"] == "warning", run
    assert run["steps"][0]["state"] == "failed" and run["steps"][0]["message"].endswith("(failure ignored)")
    assert steps(run)[1:] == [
        ("failed", "transactions has no check named Nope (failure ignored)"),
        ("succeeded", "scenario variables: after=1"),
        ("skipped", "not run: no earlier step failed"),
    ]
    described = light.request("GET", f"{BASE}/ignored").json()
    assert described["last_run"]["id"] == run["id"] and described["last_run"]["state"] == "warning"


def test_sql_steps_bind_variables_on_a_read_only_connection(light: LiveAPI, tmp_path: Path) -> None:
    # A copy of the seeded warehouse (shared by every test) behind a read-only connection like ``wh``.
    warehouse = tmp_path / "warehouse.sqlite"
    shutil.copyfile(warehouse_url(light.plane).removeprefix("sqlite:///"), warehouse)
    light.plane.connections.create_connection(
        light.plane.users.caller_for("admin"),
        CreateConnection(name="wh_copy", type="sql", params={"url": f"sqlite:///{warehouse}"}),
    )
    with sqlite3.connect(warehouse) as db:
        expected = db.execute("SELECT count(*) FROM transactions_2018 WHERE purchase_amount > 10").fetchone()[0]
    sneaky = "O'Brien'); DROP TABLE transactions_2018; --"
    definition = {
        "id": "sqlq",
        "name": "SQL",
        "variables": {"who": sneaky, "min_amount": 10},
        "steps": [
            {
                "name": "Count",
                "type": "sql",
                "connection": "wh_copy",
                "statement": "SELECT count(*) AS n, ${who} AS who, '$${who}' AS literal "
                "FROM transactions_2018 WHERE purchase_amount > ${min_amount}",
            },
            {
                "name": "Delete",
                "type": "sql",
                "connection": "wh_copy",
                "statement": "DELETE FROM transactions_2018",
                "ignore_failure": True,
            },
            {
                "name": "Recount",
                "type": "sql",
                "connection": "wh_copy",
                "statement": "SELECT count(*) FROM transactions_2018",
            },
            {
                "name": "Bound",
                "type": "sql",
                "connection": "wh_copy",
                "statement": "SELECT :lim AS lim",
                "parameters": {"lim": "at least ${min_amount}"},
            },
            {
                "name": "Unknown",
                "type": "sql",
                "connection": "wh_copy",
                "statement": "SELECT ${nope}",
                "ignore_failure": True,
            },
            {"name": "Broken", "type": "sql", "connection": "wh_copy", "statement": "SELEC 1", "ignore_failure": True},
        ],
    }
    saved(light, definition)
    run = wait(light, "sqlq", start(light, "sqlq"))
    assert run["state"] == "warning", run
    count, delete, recount, bound, unknown, broken = run["steps"]
    assert count["outputs"] == {"rows": [[str(expected), sneaky, "${who}"]], "affected": 1}
    assert count["message"] == "1 rows (read-only connection)"
    assert delete["state"] == "failed" and "not authorized" in delete["message"]  # refused by SQLite itself
    assert recount["outputs"]["rows"] == [["300"]]
    assert bound["outputs"]["rows"] == [["at least 10"]]
    assert (unknown["state"], unknown["message"]) == (
        "failed",
        "statement: there is no variable 'nope' (failure ignored)",
    )
    assert broken["state"] == "failed" and "cannot parse the SQL" in broken["message"]
    with sqlite3.connect(warehouse) as db:
        assert db.execute("SELECT count(*) FROM transactions_2018").fetchone()[0] == 300


def test_reports_are_sent_after_the_slot_is_released_and_waiting_scenarios_fired(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path
) -> None:
    """With one slot, a report that waits for the scenario fired after its run still sees that
    scenario's run finish: reporters (which may retry SMTP for minutes) hold up nothing."""
    plane.api_url, plane.max_concurrent_runs, plane.max_concurrent_runs_per_user = api.base, 1, 1
    plane.config.LocalExecutor.warm_workers = 0
    checks = [{"name": "checks", "type": "run_checks", "dataset": "transactions"}]
    email = {"type": "email", "to": ["ops@example.com"]}
    saved(api, {"id": "upstream", "name": "Upstream", "steps": checks, "reporters": [email]})
    after = {"type": "after_scenario", "scenario": "upstream", "on": "any"}
    saved(api, {"id": "downstream", "name": "Downstream", "steps": checks, "triggers": [after]})
    engine = plane.start_engine()
    admin = plane.users.caller_for("admin")
    seen: dict[str, Any] = {}

    def report(reporters: Any, summary: Any) -> list[Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "downstream" not in seen:
            fired = plane.runs.list_runs(admin, "ALPHA", "downstream", 10, 0).items
            if fired and fired[0].state not in ("queued", "running"):
                seen["downstream"] = fired[0].state
            time.sleep(0.1)
        seen["reported"] = summary.run_id
        return []

    engine.report = report
    run = start(api, "upstream")
    wait(api, "upstream", run)
    deadline = time.monotonic() + 40
    while "reported" not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen.get("reported") == run
    assert seen.get("downstream") in ("succeeded", "warning", "failed"), seen


def test_run_scenario_steps(light: LiveAPI, tmp_path: Path) -> None:
    add_row_checks(light.plane)
    saved(light, {"id": "child-ok", "name": "Child OK", "steps": [values_step("Child")]})
    bad_checks = {"name": "Gate", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]}
    saved(light, {"id": "child-bad", "name": "Child bad", "steps": [bad_checks]})
    saved(
        light,
        {
            "id": "parent",
            "name": "Parent",
            "steps": [
                {"name": "Ok", "type": "run_scenario", "scenario": "child-ok"},
                {"name": "Bad", "type": "run_scenario", "scenario": "child-bad"},
                values_step("After"),
                {"name": "Async", "type": "run_scenario", "scenario": "child-ok", "wait": False, "run_if": "always"},
            ],
        },
    )
    run = wait(light, "parent", start(light, "parent"))
    assert run["state"] == "failed", run
    ok_id, bad_id, async_id = (run["steps"][i]["outputs"]["run"] for i in (0, 1, 3))
    assert steps(run) == [
        ("succeeded", f"run #{ok_id} of child-ok: succeeded"),
        ("failed", f"run #{bad_id} of child-bad: failed"),
        ("skipped", "not run: an earlier step failed"),
        ("succeeded", f"run #{async_id} of child-ok: queued"),
    ]
    child = get_run(light, "child-ok", ok_id)
    assert child["state"] == "succeeded"
    assert child["trigger"] == "scenario" and child["trigger_detail"] == {"run": run["id"], "scenario": "parent"}
    assert child["requested_by"] == "admin"
    parent_step = run["steps"][0]
    assert (
        at(parent_step["started_at"]) <= at(child["started_at"]) <= at(child["ended_at"]) <= at(parent_step["ended_at"])
    )
    bad = get_run(light, "child-bad", bad_id)
    assert bad["state"] == "failed" and bad["trigger"] == "scenario"
    later = wait(light, "child-ok", async_id)
    assert later["state"] == "succeeded" and later["trigger"] == "scenario"
    runs = light.request("GET", f"{BASE}/child-ok/runs").json()
    assert [r["id"] for r in runs["items"]] == [async_id, ok_id] and runs["total"] == 2

    # Aborting a parent aborts the child it waits for; aborting the child fails the parent's step.
    gate = tmp_path / "gate"
    saved(
        light,
        {"id": "blocked", "name": "Blocked", "concurrency": "parallel", "steps": [blocker(gate), values_step("After")]},
    )
    for boss in ("boss1", "boss2"):
        definition = {
            "id": boss,
            "name": boss,
            "steps": [{"name": "Child", "type": "run_scenario", "scenario": "blocked"}, values_step("After")],
        }
        saved(light, definition)
    boss1, boss2 = start(light, "boss1"), start(light, "boss2")
    deadline = time.monotonic() + 10
    children: dict[int, int] = {}
    while len(children) < 2:
        assert time.monotonic() < deadline, children
        items = light.request("GET", f"{BASE}/blocked/runs").json()["items"]
        children = {r["trigger_detail"]["run"]: r["id"] for r in items if r["state"] == "running"}
        time.sleep(0.1)
    assert light.request("POST", f"{BASE}/boss1/runs/{boss1}/abort").status_code == 200
    assert light.request("POST", f"{BASE}/blocked/runs/{children[boss2]}/abort").status_code == 200
    gate.touch()
    first, second = wait(light, "boss1", boss1), wait(light, "boss2", boss2)
    assert first["state"] == "aborted", first
    assert steps(first) == [
        ("aborted", f"run #{children[boss1]} of blocked: aborted"),
        ("skipped", "not run: the run was stopped"),
    ]
    assert second["state"] == "failed", second
    assert steps(second) == [
        ("failed", f"run #{children[boss2]} of blocked: aborted"),
        ("skipped", "not run: an earlier step failed"),
    ]
    for child_id in children.values():
        assert get_run(light, "blocked", child_id)["state"] == "aborted"


def test_concurrency_policies_and_queue_limit(light: LiveAPI, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    for scenario, policy in (("skipper", "skip"), ("queuer", "queue"), ("para", "parallel")):
        definition = {
            "id": scenario,
            "name": scenario,
            "concurrency": policy,
            "steps": [blocker(gate), values_step("After")],
        }
        saved(light, definition)
    s1, q1, p1, p2 = (start(light, s) for s in ("skipper", "queuer", "para", "para"))
    for scenario, run in (("skipper", s1), ("queuer", q1), ("para", p1), ("para", p2)):
        wait(light, scenario, run, until=("running",), timeout=10)

    refused = light.request("POST", f"{BASE}/skipper/run", json={})
    message, _ = error_of(refused, 409)
    assert message == f"'skipper' was not started: run #{s1} was still in progress (concurrency policy 'skip')."
    with light.plane.db.write() as session:
        row = session.scalar(select(Scenario).where(Scenario.slug == "skipper"))
        assert row is not None
        fired = light.plane.runs.enqueue(
            session, row, trigger="time", detail={"fire_time": "x"}, requested_by="scheduler", fire_key="skipper-1"
        )
        assert fired is not None
        fired_id = fired.id
    fired_run = get_run(light, "skipper", fired_id)
    assert fired_run["state"] == "skipped"
    assert fired_run["message"] == f"Skipped: run #{s1} was still in progress (concurrency policy 'skip')."
    assert {s["state"] for s in fired_run["steps"]} == {"skipped"}

    busy = light.request("POST", f"{BASE}/queuer/runs/{q1}/rerun", json={})
    assert error_of(busy, 409)[0] == f"Run #{q1} is not finished yet."

    refused = light.request("DELETE", f"{BASE}/para")
    assert error_of(refused, 409)[0] == f"Run #{p1} of 'para' is not finished: abort it first."

    light.plane.max_queued_runs = 2
    q2, q3 = start(light, "queuer"), start(light, "queuer")
    full = light.request("POST", f"{BASE}/queuer/run", json={})
    assert error_of(full, 429)[0] == "'queuer' was not started: the run queue is full (2 runs waiting, the limit is 2)."
    cancelled = light.request("POST", f"{BASE}/queuer/runs/{q3}/abort")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "aborted"
    assert cancelled.json()["message"] == "Aborted by admin before it started."
    time.sleep(1.5)  # the dispatcher looked at least once: q2 must wait for q1
    assert get_run(light, "queuer", q2)["state"] == "queued"
    assert get_run(light, "para", p2)["state"] == "running"

    # Aborting a run between kernels takes effect when its current step ends.
    assert light.request("POST", f"{BASE}/para/runs/{p2}/abort").status_code == 200
    time.sleep(0.5)
    assert get_run(light, "para", p2)["state"] == "running"
    gate.touch()
    pairs = (("skipper", s1), ("queuer", q1), ("para", p1), ("para", p2))
    runs = {run: wait(light, scenario, run) for scenario, run in pairs}
    assert [runs[r]["state"] for r in (s1, q1, p1)] == ["succeeded"] * 3
    assert runs[p2]["state"] == "aborted" and runs[p2]["abort_requested"] is True
    assert steps(runs[p2]) == [
        ("succeeded", "scenario variables: released=True"),
        ("skipped", "not run: the run was stopped"),
    ]
    second = wait(light, "queuer", q2)
    assert second["state"] == "succeeded"
    assert at(second["started_at"]) >= at(runs[q1]["ended_at"])
    assert at(runs[p2]["started_at"]) < at(runs[p1]["ended_at"]) and at(runs[p1]["started_at"]) < at(
        runs[p2]["ended_at"]
    )
    assert get_run(light, "queuer", q3)["state"] == "aborted"
    assert {s["state"] for s in get_run(light, "queuer", q3)["steps"]} == {"skipped"}


def test_an_idle_dispatcher_sleeps_until_a_run_is_queued(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> None:
    """The dispatcher looks at the queue when it starts and when a run is queued or a slot frees,
    not every second: idle for 2.5 s, it claims nothing; a run requested then starts at once."""
    looks: list[float] = []
    claim_next = plane.runs.claim_next

    def counted(*args: Any) -> int | None:
        looks.append(time.monotonic())
        return claim_next(*args)

    plane.runs.claim_next = counted  # type: ignore[method-assign]
    saved(api, {"id": "idle", "name": "Idle", "steps": [values_step("Only")]})
    start_engine(plane, api, tmp_path, warm=0)
    time.sleep(2.5)
    assert len(looks) == 1, looks  # the look on start; a dispatcher polling each second had made three
    requested = time.monotonic()
    run = start(api, "idle")
    assert wait(api, "idle", run, timeout=10)["state"] == "succeeded"
    assert looks[1] - requested < 1.0
