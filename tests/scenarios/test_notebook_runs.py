"""Notebook steps: failures, timeouts, retries, aborts, parameters, the run token and re-runs."""

import json
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.store.orm import ApiToken, ScenarioRun
from himalia.wire.compute import TierSpec
from himalia.wire.identity import CreateProject

from ..conftest import LiveAPI
from .conftest import (
    BASE,
    add_row_checks,
    error_of,
    get_run,
    gone,
    log_of,
    notebook,
    save,
    saved,
    start,
    start_engine,
    steps,
    values_step,
    wait,
)


def test_failures_timeouts_and_retries(runner: LiveAPI, exchange: Path) -> None:
    """A cell error, a dead kernel, a step timeout, a scenario timeout and a retried step, run together."""
    marker = exchange / "first-attempt"
    boom = notebook("print('before the error')", "1/0", "print('never printed')")
    scenarios: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (
            {
                "id": "cellerr",
                "name": "Cell error",
                "steps": [
                    {"name": "Boom", "type": "notebook", "notebook": "boom.ipynb", "parameters": {"x": 2}},
                    values_step("After"),
                    values_step("Cleanup", run_if="always"),
                ],
            },
            {"boom.ipynb": boom},
        ),
        (
            {
                "id": "dead",
                "name": "Dead kernel",
                "steps": [{"name": "Exit", "type": "notebook", "notebook": "exit.ipynb"}],
            },
            {"exit.ipynb": notebook("import os\nos._exit(1)")},
        ),
        (
            {
                "id": "slowstep",
                "name": "Step timeout",
                "steps": [
                    {"name": "Sleep", "type": "notebook", "notebook": "sleep.ipynb", "timeout": "3s"},
                    values_step("After"),
                ],
            },
            {"sleep.ipynb": notebook("import time\ntime.sleep(60)")},
        ),
        (
            {
                "id": "slowrun",
                "name": "Scenario timeout",
                "timeout": "3s",
                "steps": [
                    {"name": "Sleep", "type": "notebook", "notebook": "sleep.ipynb"},
                    values_step("After", run_if="always"),
                ],
            },
            {"sleep.ipynb": notebook("import time\ntime.sleep(60)")},
        ),
        (
            {
                "id": "flaky",
                "name": "Retried",
                "steps": [
                    {
                        "name": "Flaky",
                        "type": "notebook",
                        "notebook": "flaky.ipynb",
                        "retries": 2,
                        "parameters": {"marker": str(marker)},
                    }
                ],
            },
            {
                "flaky.ipynb": notebook(
                    "import pathlib\nm = pathlib.Path(marker)\n"
                    "if not m.exists():\n    m.touch()\n    raise RuntimeError('first attempt fails')\n"
                    "print('second attempt')",
                    parameters='marker: str = ""',
                )
            },
        ),
    ]
    for definition, notebooks in scenarios:
        saved(runner, definition, notebooks)
    began = time.monotonic()
    ids = {definition["id"]: start(runner, definition["id"]) for definition, _ in scenarios}
    runs = {scenario: wait(runner, scenario, run) for scenario, run in ids.items()}
    assert time.monotonic() - began < 45, "the timeouts did not stop the sleeping notebooks"

    # A cell error: the cell, its prompt and the exception; later steps skipped unless run_if: always.
    run = runs["cellerr"]
    assert run["state"] == "failed", run
    # cell indexes count from 0 and include the parameters papermill injects: 1/0 is cell 3, In [4]
    assert steps(run) == [
        ("failed", "cell 3 (In [4]): ZeroDivisionError: division by zero"),
        ("skipped", "not run: an earlier step failed"),
        ("succeeded", "scenario variables: cleanup=1"),
    ]
    assert run["variables"] == {"cleanup": 1}
    assert run["artifacts"] == ["step-0.html", "step-0.ipynb"]
    executed = runner.request("GET", f"{BASE}/cellerr/runs/{run['id']}/notebook")
    assert executed.status_code == 200
    assert executed.headers["Content-Disposition"].startswith("attachment;")
    cells = executed.json()["cells"]
    errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["ZeroDivisionError"]
    report = runner.request("GET", f"{BASE}/cellerr/runs/{run['id']}/report", params={"step": "Boom"})
    assert report.status_code == 200
    assert report.headers["Content-Security-Policy"].startswith("sandbox")
    assert "allow-same-origin" not in report.headers["Content-Security-Policy"]
    assert report.headers["X-Content-Type-Options"] == "nosniff"
    assert report.headers["Content-Type"].startswith("text/html")
    assert "ZeroDivisionError" in report.text and "before the error" in report.text
    missing = runner.request("GET", f"{BASE}/cellerr/runs/{run['id']}/report", params={"step": "After"})
    assert error_of(missing, 404)[0] == f"Run #{run['id']} has no HTML report for step 'After'."
    assert "never printed" not in log_of(runner, "cellerr", run["id"])

    # A kernel that exits.
    run = runs["dead"]
    assert run["state"] == "failed", run
    assert steps(run) == [("failed", "the kernel died (it exited or was killed while running a cell)")]

    # A step over its own limit fails and the run stops there.
    run = runs["slowstep"]
    assert run["state"] == "failed", run
    assert steps(run) == [
        ("failed", "the step ran longer than its 3s limit"),
        ("skipped", "not run: an earlier step failed"),
    ]

    # A scenario over its limit: even run_if: always steps are not run any more.
    run = runs["slowrun"]
    assert run["state"] == "failed", run
    assert run["message"] == "The scenario ran longer than its 3s limit."
    assert steps(run) == [
        ("failed", "the scenario ran longer than its 3s limit"),
        ("skipped", "not run: the run was stopped"),
    ]

    # Retries: the first attempt fails, the second succeeds.
    run = runs["flaky"]
    assert run["state"] == "succeeded", run
    assert run["steps"][0]["attempts"] == 2
    log = log_of(runner, "flaky", run["id"])
    assert "retrying" in log and "attempt 2" in log and "second attempt" in log


@pytest.fixture
def warm_runner(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> Iterator[LiveAPI]:
    """Two warm workers even as root: steps run as the platform's own account (isolated ones each
    start a worker, whose imports take seconds on a busy machine and count against a step's limit)."""
    plane.config.UserIsolation.mode = "shared_account_unsafe"
    yield start_engine(plane, api, tmp_path, warm=2)


def test_a_step_of_many_short_cells_ends_at_its_timeout(warm_runner: LiveAPI) -> None:
    """The step's limit holds for the whole step, not for each cell: forty cells of 0.3 s (12 s in
    all) under a 3 s limit end at 3 s, stopped by the worker itself, which still writes the
    executed notebook and its report (a worker killed by its executor writes no report)."""
    api = warm_runner
    cells = ["import time"] + [f"time.sleep(0.3)\nprint('cell {n} done')" for n in range(40)]
    many = [{"name": "Cells", "type": "notebook", "notebook": "cells.ipynb", "timeout": "3s"}]
    saved(api, {"id": "manycells", "name": "Many short cells", "steps": many}, {"cells.ipynb": notebook(*cells)})
    warm_up = [{"name": "Print", "type": "notebook", "notebook": "print.ipynb"}]
    saved(api, {"id": "warmup", "name": "Warm-up", "steps": warm_up}, {"print.ipynb": notebook("print(x)")})
    # A step's limit counts from its start, its worker's start-up included: once the warm-up ran,
    # the other warm worker has imported papermill.
    assert wait(api, "warmup", start(api, "warmup"))["state"] == "succeeded"

    run = wait(api, "manycells", start(api, "manycells"))
    assert run["state"] == "failed", run
    assert steps(run) == [("failed", "the step ran longer than its 3s limit")]
    [step] = run["steps"]
    took = (datetime.fromisoformat(step["ended_at"]) - datetime.fromisoformat(step["started_at"])).total_seconds()
    assert 3 <= took < 7, f"a 3 s step ended after {took:.1f} s:\n{log_of(api, 'manycells', run['id'])}"
    assert run["artifacts"] == ["step-0.html", "step-0.ipynb"]
    executed = api.request("GET", f"{BASE}/manycells/runs/{run['id']}/notebook").json()
    printed = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout"]
    assert len(printed) < 10, "the cells after the deadline did not run"


def test_abort_kills_the_kernel_and_its_children(runner: LiveAPI, exchange: Path) -> None:
    pidfile = exchange / "pids.json"
    sleeper = notebook(
        "import json, os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "with open(pidfile + '.tmp', 'w') as f:\n"
        "    json.dump([os.getpid(), child.pid], f)\n"
        "os.replace(pidfile + '.tmp', pidfile)\n"
        "time.sleep(60)",
        parameters='pidfile: str = ""',
    )
    definition = {
        "id": "sleeper",
        "name": "Sleeper",
        "steps": [
            {"name": "Sleep", "type": "notebook", "notebook": "s.ipynb", "parameters": {"pidfile": str(pidfile)}},
            values_step("After", run_if="always"),
        ],
    }
    saved(runner, definition, {"s.ipynb": sleeper})
    run_id = start(runner, "sleeper")
    deadline = time.monotonic() + 40
    while not pidfile.exists():
        assert time.monotonic() < deadline, get_run(runner, "sleeper", run_id)
        time.sleep(0.1)
    kernel, child = json.loads(pidfile.read_text())
    assert not gone(kernel) and not gone(child)
    assert psutil.Process(child).ppid() == kernel
    with runner.plane.db.read() as session:
        token_id = session.get_one(ScenarioRun, run_id).token_id
    assert token_id is not None

    reader = runner.request("POST", f"{BASE}/sleeper/runs/{run_id}/abort", "reader")
    assert error_of(reader, 403)[0] == (
        "reader may read ALPHA but does not hold 'run_scenarios' on it: "
        "ask projadmin (ALPHA administrators) for it, or an administrator."
    )
    asked = time.monotonic()
    reply = runner.request("POST", f"{BASE}/sleeper/runs/{run_id}/abort")
    assert reply.status_code == 200, reply.text
    assert reply.json()["abort_requested"] is True
    run = wait(runner, "sleeper", run_id, timeout=15)
    assert time.monotonic() - asked < 8
    assert run["state"] == "aborted" and run["message"] == "Aborted.", run
    assert steps(run) == [("aborted", "aborted"), ("skipped", "not run: the run was stopped")]
    deadline = time.monotonic() + 5
    while not (gone(kernel) and gone(child)):
        assert time.monotonic() < deadline, f"kernel {kernel} or its child {child} survived the abort"
        time.sleep(0.1)
    with runner.plane.db.read() as session:
        assert session.get(ApiToken, token_id) is None
    again = runner.request("POST", f"{BASE}/sleeper/runs/{run_id}/abort")
    assert error_of(again, 409)[0] == f"Run #{run_id} already ended (aborted)."


def test_variables_feed_notebook_parameters(runner: LiveAPI) -> None:
    """The training's ``previous_day``: set by code, expanded into a notebook parameter; project scope
    updates the project's variables; the run request overrides scenario variables."""
    put = runner.request("PUT", "/projects/ALPHA/variables", json={"variables": {"region": "apac", "keep": 1}})
    assert put.status_code == 200, put.text
    prepare = notebook(
        "print(f'prepare {day} {label} {region}')",
        parameters='day: str = ""\nlabel: str = ""\nregion: str = ""',
    )
    definition = {
        "id": "daily",
        "name": "Daily",
        "variables": {"region": "eu", "suffix": "x"},
        "steps": [
            {
                "name": "Previous day",
                "type": "set_variables",
                "code": "from datetime import date, timedelta\n\n"
                "def variables(current):\n"
                "    return {'previous_day': (date.today() - timedelta(days=1)).isoformat(),\n"
                "            'seen_region': current['region']}\n",
            },
            {
                "name": "Defaults",
                "type": "set_variables",
                "values": {"label": "day ${previous_day}", "threshold": 0.5},
            },
            {
                "name": "Publish",
                "type": "set_variables",
                "scope": "project",
                "values": {"last_day": "${previous_day}"},
            },
            {
                "name": "Prepare",
                "type": "notebook",
                "notebook": "prepare.ipynb",
                "parameters": {"day": "${previous_day}", "label": "${label}", "region": "${region}"},
            },
        ],
    }
    saved(runner, definition, {"prepare.ipynb": prepare})
    before = (date.today() - timedelta(days=1)).isoformat()
    run = wait(runner, "daily", start(runner, "daily", variables={"region": "us"}))
    after = (date.today() - timedelta(days=1)).isoformat()
    assert run["state"] == "succeeded", run
    day = run["variables"]["previous_day"]
    assert day in (before, after)
    assert run["variables"] == {
        "region": "us",
        "suffix": "x",
        "previous_day": day,
        "seen_region": "us",
        "label": f"day {day}",
        "threshold": 0.5,
        "last_day": day,
    }
    assert run["steps"][0]["outputs"] == {"variables": {"previous_day": day, "seen_region": "us"}}
    assert run["steps"][2]["message"] == f"project variables: last_day='{day}'"
    assert run["steps"][3]["outputs"]["parameters"] == {"day": day, "label": f"day {day}", "region": "us"}
    log = runner.request("GET", f"{BASE}/daily/runs/{run['id']}/log")
    assert f"prepare {day} day {day} us" in log.text
    assert log.headers["Content-Type"].startswith("text/plain")
    cursor = log.headers["X-Himalia-Log-Cursor"]
    assert runner.request("GET", f"{BASE}/daily/runs/{run['id']}/log", params={"after": cursor}).text == ""
    project = runner.request("GET", "/projects/ALPHA/variables").json()["variables"]
    assert project == {"region": "apac", "keep": 1, "last_day": day}


def test_run_token_and_kernel_environment(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path, exchange: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel reaches the API as the run-as user limited to the project, with a token that dies
    with the run, and never sees the control plane's database URL or keys."""
    private = {
        "HIMALIA_DB_URL": "postgresql://leak@db/himalia",
        "HIMALIA_SECRET_KEYS": "leaked-secret-key",
        "HIMALIA_AUDIT_KEY": "leaked-audit-key",
        "HIMALIA_HOME": "/leaked/home",
    }
    for name, value in private.items():
        monkeypatch.setenv(name, value)
    start_engine(plane, api, tmp_path, warm=1)
    plane.tiers.put_tier(Caller.operator("test-setup", client_address="test"), "small", TierSpec())
    plane.projects.create_project(plane.users.caller_for("admin"), CreateProject(key="BETA", name="Beta"))
    out = exchange / "kernel.json"
    probe = notebook(
        "import json, os, requests, himalia\n"
        "recorded = himalia.record_metric('answer', 42)\n"
        "url, token = os.environ['HIMALIA_API_URL'], os.environ['HIMALIA_TOKEN']\n"
        "auth = {'Authorization': f'token {token}'}\n"
        "seen = {\n"
        "    'env': dict(os.environ),\n"
        "    'me': requests.get(url + '/me', headers=auth).json()['login'],\n"
        "    'alpha': requests.get(url + '/projects/ALPHA', headers=auth).status_code,\n"
        "    'beta': requests.get(url + '/projects/BETA', headers=auth).status_code,\n"
        "    'new_project': requests.post(url + '/projects', headers=auth,\n"
        "                                 json={'key': 'GAMMA', 'name': 'G'}).status_code,\n"
        "    'unscoped_token': requests.post(url + '/tokens', headers=auth, json={'name': 'x'}).status_code,\n"
        "    'recorded_run': recorded['run_id'],\n"
        "}\n"
        "with open(out, 'w') as f:\n"
        "    json.dump(seen, f)",
        parameters='out: str = ""',
    )
    definition = {
        "id": "token",
        "name": "Token",
        "tier": "small",
        "steps": [{"name": "Probe", "type": "notebook", "notebook": "probe.ipynb", "parameters": {"out": str(out)}}],
    }
    saved(api, definition, {"probe.ipynb": probe})
    run = wait(api, "token", start(api, "token"))
    assert run["state"] == "succeeded", (run, log_of(api, "token", run["id"]))
    seen = json.loads(out.read_text())
    env = seen["env"]
    assert not set(private) & set(env), sorted(set(private) & set(env))
    assert not any(value in json.dumps(env) for value in private.values())
    assert env["HIMALIA_API_URL"] == api.base
    assert env["HIMALIA_PROJECT"] == "ALPHA" and env["HIMALIA_RUN_ID"] == str(run["id"])
    assert env["HIMALIA_SCENARIO"] == "token" and env["HIMALIA_TIER"] == "small"
    assert seen["me"] == "admin"
    assert seen["alpha"] == 200
    assert seen["beta"] == 404, "the run token reaches another project"
    assert seen["new_project"] == 403
    assert seen["unscoped_token"] == 403
    assert seen["recorded_run"] == str(run["id"])
    assert run["steps"][0]["outputs"]["metrics"] == {"answer": 42}
    history = api.request("GET", "/projects/ALPHA/metrics", params={"metric": "answer"}).json()
    assert [(h["value"], h["run_id"], h["actor"], h["origin"]) for h in history] == [
        (42, str(run["id"]), "admin", "run")
    ]
    dead = api.request("GET", "/me", "anonymous", headers={"Authorization": f"token {env['HIMALIA_TOKEN']}"})
    assert dead.status_code == 401


def test_rerun_uses_the_same_snapshots(runner: LiveAPI) -> None:
    add_row_checks(runner.plane)
    definition = {
        "id": "again",
        "name": "Again",
        "concurrency": "parallel",
        "steps": [
            {"name": "Vars", "type": "set_variables", "values": {"v": "kept"}},
            {"name": "Nb", "type": "notebook", "notebook": "again.ipynb", "parameters": {"label": "${v}"}},
            {"name": "Gate", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]},
            values_step("After"),
            {"name": "Final", "type": "set_variables", "values": {"w": "${v}-final"}, "run_if": "always"},
        ],
    }
    first = saved(
        runner, definition, {"again.ipynb": notebook("print('version 1', label)", parameters='label: str = ""')}
    )
    original = wait(runner, "again", start(runner, "again", parameters={"label": "from-run"}))
    assert original["state"] == "failed", original
    assert original["notebooks"] == first["notebooks"]
    assert "version 1 from-run" in log_of(runner, "again", original["id"])
    resaved = save(
        runner, definition, {"again.ipynb": notebook("print('version 2', label)", parameters='label: str = ""')}
    )
    assert resaved.status_code == 200 and resaved.json()["notebooks"] != first["notebooks"]

    full = runner.request("POST", f"{BASE}/again/runs/{original['id']}/rerun", json={})
    partial = runner.request("POST", f"{BASE}/again/runs/{original['id']}/rerun", json={"from_failed_step": True})
    assert full.status_code == 201 and partial.status_code == 201, (full.text, partial.text)
    full_run = wait(runner, "again", full.json()["id"])
    partial_run = wait(runner, "again", partial.json()["id"])

    assert full_run["trigger"] == "rerun" and full_run["rerun_of"] == original["id"]
    assert full_run["trigger_detail"] == {"user": "admin", "run": original["id"]}
    assert full_run["notebooks"] == original["notebooks"]
    assert full_run["parameters"] == {"label": "from-run"} and full_run["start_step"] == 0
    assert [s["state"] for s in full_run["steps"]] == ["succeeded", "succeeded", "failed", "skipped", "succeeded"]
    assert full_run["steps"][1]["outputs"]["snapshot"] == original["steps"][1]["outputs"]["snapshot"]
    full_log = log_of(runner, "again", full_run["id"])
    assert "version 1 from-run" in full_log and "version 2" not in full_log

    kept = f"kept from run #{original['id']}"
    assert partial_run["start_step"] == 2 and partial_run["notebooks"] == original["notebooks"]
    assert steps(partial_run)[:4] == [
        ("skipped", kept),
        ("skipped", kept),
        ("failed", "Enough rows: " + original["steps"][2]["message"].split(": ", 1)[1]),
        ("skipped", "not run: an earlier step failed"),
    ]
    assert partial_run["steps"][4]["outputs"] == {"variables": {"w": "kept-final"}}
    assert partial_run["state"] == "failed"
    assert partial_run["artifacts"] == []

    ok = saved(runner, {"id": "fine", "name": "Fine", "steps": [values_step("Only")]})
    fine = wait(runner, "fine", start(runner, "fine"))
    assert fine["state"] == "succeeded" and ok["revision"] == 1
    nothing = runner.request("POST", f"{BASE}/fine/runs/{fine['id']}/rerun", json={"from_failed_step": True})
    assert error_of(nothing, 400) == (f"Run #{fine['id']} has no failed step to start from.", "from_failed_step")
    unknown = runner.request("POST", f"{BASE}/fine/runs/{original['id']}/rerun", json={})
    assert unknown.status_code == 404
