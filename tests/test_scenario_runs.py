"""Scenario runs end to end: real papermill and ipykernel, the local executor, the live API.

Notebook runs cost a kernel start each (a few seconds on a small machine), so the tests that need
several start their runs together and wait for all of them; steps that need no kernel
(``run_checks``, ``set_variables``, ``sql``, ``run_scenario``) stand in wherever a notebook is not
the point. Everything runs on SQLite except the store-only test of claiming and recovering runs,
which also runs on PostgreSQL.
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook
from sqlalchemy import select, update

from himalia.hosts.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.scenarios.steps.notebook import typed_expand
from himalia.scenarios.workers import this_worker
from himalia.store.orm import ApiToken, RunStep, Scenario, ScenarioRun, utcnow
from himalia.wire.compute import TierSpec
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection
from himalia.wire.identity import CreateGroup, CreateProject, CreateToken, CreateUser, SetGrant
from himalia.wire.scenarios import RunRequest, SaveScenario

from .conftest import LiveAPI

BASE = "/projects/ALPHA/scenarios"


def notebook(*cells: str, parameters: str = "x: int = 1") -> dict[str, Any]:
    node = new_notebook(
        cells=[new_code_cell(parameters, metadata={"tags": ["parameters"]})] + [new_code_cell(c) for c in cells]
    )
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return dict(nbformat.from_dict(node))


@pytest.fixture
def backend() -> str:
    return "sqlite"


def start_engine(plane: ControlPlane, api: LiveAPI, tmp_path: Path, warm: int) -> LiveAPI:
    """Start executing runs in ``plane``: every run of these tests acts as ``admin``, so the
    per-user limit is raised for tests that run several scenarios at once."""
    plane.api_url = api.base
    plane.notebook_root = str(tmp_path / "notebooks")
    plane.max_concurrent_runs = 8
    plane.max_concurrent_runs_per_user = 8
    plane.config.LocalExecutor.warm_workers = warm
    plane.start_engine(schedule=False)
    return api


@pytest.fixture
def runner(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> Iterator[LiveAPI]:
    """The engine with two warm papermill workers, for tests that run notebooks."""
    yield start_engine(plane, api, tmp_path, warm=2)


@pytest.fixture
def light(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> Iterator[LiveAPI]:
    """The engine without warm workers, for tests whose runs start no kernel."""
    yield start_engine(plane, api, tmp_path, warm=0)


@pytest.fixture
def exchange() -> Iterator[Path]:
    """A folder kernels may write, whichever OS account they run as (pytest's ``tmp_path`` is
    root's alone when the tests run as root and the kernels as their users' own accounts)."""
    folder = Path(tempfile.mkdtemp(prefix="himalia-exchange-", dir="/var/tmp"))
    os.chmod(folder, 0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def save(api: LiveAPI, definition: dict[str, Any], notebooks: dict[str, Any] | None = None, role: str = "admin") -> Any:
    return api.request(
        "PUT", f"{BASE}/{definition['id']}", role, json={"definition": definition, "notebooks": notebooks or {}}
    )


def saved(api: LiveAPI, definition: dict[str, Any], notebooks: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = save(api, definition, notebooks)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def start(api: LiveAPI, scenario: str, role: str = "admin", **body: Any) -> int:
    reply = api.request("POST", f"{BASE}/{scenario}/run", role, json=body)
    assert reply.status_code == 201, reply.text
    run_id: int = reply.json()["id"]
    return run_id


def get_run(api: LiveAPI, scenario: str, run: int) -> dict[str, Any]:
    reply = api.request("GET", f"{BASE}/{scenario}/runs/{run}")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def wait(api: LiveAPI, scenario: str, run: int, timeout: float = 60, until: tuple[str, ...] = ()) -> dict[str, Any]:
    """Poll a run until it ended (or reached one of ``until``)."""
    deadline = time.monotonic() + timeout
    while True:
        body = get_run(api, scenario, run)
        if body["state"] in until or (not until and body["state"] not in ("queued", "running")):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run} of {scenario} still {body['state']}: {body}")
        time.sleep(0.1)


def log_of(api: LiveAPI, scenario: str, run: int) -> str:
    return api.request("GET", f"{BASE}/{scenario}/runs/{run}/log").text


def steps(run: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["state"], s["message"]) for s in run["steps"]]


def error_of(reply: Any, status: int) -> tuple[str, str | None]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    return body["message"], body.get("field")


def add_row_checks(plane: ControlPlane) -> None:
    """Checks on ``transactions`` (300 rows): one fails with ERROR, one with WARNING."""
    admin = plane.users.caller_for("admin")
    plane.checks.save_check(
        admin, "ALPHA", "transactions", CheckSpec(name="Enough rows", type="range", metric="record_count", min=1000)
    )
    plane.checks.save_check(
        admin,
        "ALPHA",
        "transactions",
        CheckSpec(name="Plenty of rows", type="range", metric="record_count", soft_min=1000),
    )


def warehouse_url(plane: ControlPlane) -> str:
    """The URL of the seeded SQLite warehouse behind the connection ``wh``."""
    params = plane.connections.get_connection(plane.users.caller_for("admin"), "wh").params
    assert params is not None
    return str(params["url"])


def values_step(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "type": "set_variables", "values": {name.lower().replace(" ", "_"): 1}, **more}


def blocker(gate: Path) -> dict[str, Any]:
    """A step that waits (in a child process, without a kernel) until the file ``gate`` exists."""
    return {
        "name": "Block",
        "type": "set_variables",
        "code": "import os, time\n\n"
        "def variables(current):\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        time.sleep(0.05)\n"
        "    return {'released': True}\n",
    }


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- notebooks ------------------------------------------------------------------------------------


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
    assert error_of(reader, 403)[0] == "This needs the 'run_scenarios' permission on project ALPHA."
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


# -- steps without kernels ------------------------------------------------------------------------


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


# -- validation, permissions, export --------------------------------------------------------------


def test_parameters_are_checked(light: LiveAPI) -> None:
    nb = {"p.ipynb": notebook("print(x)", parameters='x: int = 1\nname: str = "a"')}

    def definition(parameters: dict[str, Any], scenario: str = "params") -> dict[str, Any]:
        return {
            "id": scenario,
            "name": "Params",
            "variables": {"n": 5, "t": "five"},
            "steps": [
                values_step("First"),
                {"name": "Nb", "type": "notebook", "notebook": "p.ipynb", "parameters": parameters},
            ],
        }

    message, field = error_of(save(light, definition({"zz": 1}), nb), 400)
    assert field == "steps[1].parameters.zz"
    assert message == "steps[1].parameters.zz: p.ipynb declares no parameter 'zz' (declared: name, x)"
    message, field = error_of(save(light, definition({"x": "seven"}), nb), 400)
    assert field == "steps[1].parameters.x"
    assert message == 'steps[1].parameters.x: the notebook declares x: int, not str "seven"'
    assert error_of(save(light, definition({"x": True}), nb), 400)[1] == "steps[1].parameters.x"
    assert light.request("GET", f"{BASE}/params").status_code == 404

    saved(light, definition({"x": 3}), nb)
    message, field = error_of(light.request("POST", f"{BASE}/params/run", json={"parameters": {"y": 1}}), 400)
    assert field == "parameters.y"
    assert message == "parameters.y: no notebook step of 'params' declares a parameter 'y' (declared: name, x)"
    message, field = error_of(light.request("POST", f"{BASE}/params/run", json={"parameters": {"x": 1.5}}), 400)
    assert field == "parameters.x"
    assert message == "parameters.x: the notebook declares x: int, not float 1.5"
    assert light.request("GET", f"{BASE}/params/runs").json()["total"] == 0
    described = light.request("GET", f"{BASE}/params/parameters").json()
    assert described["steps"][0]["parameters"] == [
        {"name": "x", "type": "int", "default": "1", "help": "", "value": 3},
        {"name": "name", "type": "str", "default": '"a"', "help": "", "value": None},
    ]

    # "${t}" keeps the variable's type (text here): an int parameter refuses it before any kernel starts.
    saved(light, definition({"x": "${t}"}), nb)
    run = wait(light, "params", start(light, "params"))
    assert run["state"] == "failed"
    assert steps(run)[1] == ("failed", 'parameters.x: the notebook declares x: int, not str "five"')
    assert run["artifacts"] == [] and "papermill" not in log_of(light, "params", run["id"])
    saved(light, {"id": "nonb", "name": "No notebook", "steps": [values_step("Only")]})
    message, field = error_of(light.request("POST", f"{BASE}/nonb/run", json={"parameters": {"x": 1}}), 400)
    assert (message, field) == (
        "parameters.x: no notebook step of 'nonb' declares a parameter 'x' (declared: none)",
        "parameters.x",
    )
    saved(light, definition({"name": "${nope}"}), nb)
    run = wait(light, "params", start(light, "params"))
    assert steps(run)[1] == ("failed", "Unknown variable 'nope' in \"${nope}\".")


def test_missing_notebooks(light: LiveAPI, tmp_path: Path) -> None:
    root = Path(light.plane.notebook_root)
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "on-disk.ipynb").write_text(json.dumps(notebook("print(1)")))
    (tmp_path / "outside.ipynb").write_text(json.dumps(notebook("print(1)")))

    def definition(path: str) -> dict[str, Any]:
        return {
            "id": "disk",
            "name": "Disk",
            "steps": [values_step("First"), {"name": "Nb", "type": "notebook", "notebook": path}],
        }

    for path in ("nowhere.ipynb", "../outside.ipynb"):
        message, field = error_of(save(light, definition(path)), 400)
        assert field == "steps[1].notebook"
        assert message == f"steps[1].notebook: there is no notebook '{path}' (send its content, or save it first)."
    message, field = error_of(save(light, definition("sub")), 400)  # not a notebook path: the schema refuses it
    assert field is not None and "steps.1.notebook" in field and "ipynb" in message
    described = saved(light, definition("sub/on-disk.ipynb"))
    assert list(described["notebooks"]) == ["sub/on-disk.ipynb"]
    bad = save(light, definition("bad.ipynb"), {"bad.ipynb": {"cells": "no"}})
    message, field = error_of(bad, 400)
    assert field == "notebooks.bad.ipynb" and message.startswith("notebooks.bad.ipynb: not a valid notebook")


def test_permissions(light: LiveAPI) -> None:
    plane = light.plane
    operator = Caller.operator("test", client_address="test")
    plane.users.create_group(operator, CreateGroup(name="launchers"))
    plane.users.create_user(operator, CreateUser(login="launch", email="launch@example.org", groups=["launchers"]))
    plane.projects.set_grant(
        plane.users.caller_for("projadmin"), "ALPHA", SetGrant(group="launchers", preset="launcher")
    )
    launch_token = plane.tokens.create_token(operator, CreateToken(user="launch")).token

    def as_launcher(method: str, path: str, **kwargs: Any) -> Any:
        return light.request(method, path, "anonymous", headers={"Authorization": f"token {launch_token}"}, **kwargs)

    nb_definition = {
        "id": "nb",
        "name": "Notebook",
        "steps": [{"name": "Nb", "type": "notebook", "notebook": "n.ipynb"}],
    }
    checks = {
        "id": "chk",
        "name": "Checks",
        "steps": [{"name": "Checks", "type": "run_checks", "dataset": "transactions"}],
    }
    saved(light, nb_definition, {"n.ipynb": notebook("print(1)")})

    # contributor: write_content and run_scenarios, but neither write_isolated_code nor write_unsafe_code
    message, _ = error_of(save(light, nb_definition, {"n.ipynb": notebook("print(2)")}, "contributor"), 403)
    assert "write_isolated_code" in message
    code = {"name": "Code", "type": "set_variables", "code": "def variables(c):\n    return {}"}
    assert save(light, {**checks, "id": "code", "steps": [code]}, role="contributor").status_code == 403
    elevated = save(light, {**checks, "run_as": "admin"}, role="contributor")
    assert error_of(elevated, 403)[0] == "run_as: only an administrator may make a scenario run as someone else."
    created = save(light, checks, role="contributor")
    assert created.status_code == 200, created.text
    assert (created.json()["owner"], created.json()["run_as"]) == ("contributor", "contributor")
    run_id = start(light, "chk", "contributor")
    run = wait(light, "chk", run_id)
    assert run["state"] == "succeeded" and run["run_as"] == "contributor" and run["requested_by"] == "contributor"

    # a run acts as its run-as user: a connection the contributor may not use stays closed to its run
    admin = plane.users.caller_for("admin")
    warehouse = warehouse_url(plane)
    plane.connections.create_connection(
        admin,
        CreateConnection(name="locked", type="sql", params={"url": warehouse}, usable_by=AccessSpec(mode="nobody")),
    )
    query = {"name": "Query", "type": "sql", "connection": "locked", "statement": "SELECT 1"}
    saved_q = save(light, {"id": "lockedq", "name": "Locked", "steps": [query]}, role="contributor")
    assert saved_q.status_code == 200, saved_q.text
    locked = wait(light, "lockedq", start(light, "lockedq", "contributor"))
    assert locked["state"] == "failed"
    assert steps(locked) == [("failed", "You may not use the connection 'locked'.")]

    # reader: reads scenarios and runs, may not run, abort, re-run or save
    listed = light.request("GET", BASE, "reader").json()["items"]
    assert {"nb", "chk"} <= {s["id"] for s in listed}
    for path in (
        "/chk",
        "/chk/export",
        "/chk/parameters",
        "/chk/runs",
        f"/chk/runs/{run_id}",
        f"/chk/runs/{run_id}/log",
    ):
        assert light.request("GET", BASE + path, "reader").status_code == 200, path
    for method, path in (
        ("POST", "/chk/run"),
        ("POST", f"/chk/runs/{run_id}/rerun"),
        ("POST", f"/chk/runs/{run_id}/abort"),
    ):
        message, _ = error_of(light.request(method, BASE + path, "reader", json={}), 403)
        assert message == "This needs the 'run_scenarios' permission on project ALPHA.", (path, message)
    assert save(light, checks, role="reader").status_code == 403
    assert light.request("DELETE", f"{BASE}/chk", "reader").status_code == 403

    # launcher: sees and runs scenarios without read_content, may not change them
    assert {"nb", "chk"} <= {s["id"] for s in as_launcher("GET", BASE).json()["items"]}
    assert as_launcher("GET", f"{BASE}/nb/parameters").status_code == 200
    launched = as_launcher("POST", f"{BASE}/chk/run", json={})
    assert launched.status_code == 201, launched.text
    assert launched.json()["requested_by"] == "launch" and launched.json()["run_as"] == "contributor"
    assert wait(light, "chk", launched.json()["id"])["state"] == "succeeded"
    assert as_launcher("PUT", f"{BASE}/chk", json={"definition": checks}).status_code == 403
    assert as_launcher("GET", "/projects/ALPHA/datasets").status_code == 403

    # no grant: the project and its scenarios do not exist; anonymous: not authenticated
    for role, status in (("nogrant", 404), ("anonymous", 401)):
        for method, path in (
            ("GET", ""),
            ("GET", "/chk"),
            ("GET", f"/chk/runs/{run_id}"),
            ("GET", f"/chk/runs/{run_id}/log"),
            ("POST", "/chk/run"),
            ("POST", f"/chk/runs/{run_id}/abort"),
            ("PUT", "/chk"),
        ):
            body = {"definition": checks} if method == "PUT" else {}
            assert light.request(method, BASE + path, role, json=body).status_code == status, (role, method, path)
    assert light.request("GET", f"{BASE}/chk/runs/999999").status_code == 404
    assert light.request("GET", f"{BASE}/chk/runs/abc").status_code == 404


def test_export_round_trip(light: LiveAPI) -> None:
    add_row_checks(light.plane)
    nb = {"score.ipynb": notebook("print(x)")}
    definition = {
        "id": "roundtrip",
        "name": "Round trip: «quotes» and 'colons'",
        "description": "Multi-line\ndescription: with a colon",
        "active": False,
        "timeout": "2h",
        "concurrency": "queue",
        "catch_up": "run_once",
        "variables": {"threshold": 0.8, "nested": {"a": [1, "two"]}, "text": "${threshold}"},
        "steps": [
            {"name": "Checks", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]},
            {"name": "Metrics", "type": "compute_metrics", "dataset": "transactions"},
            {
                "name": "Day",
                "type": "set_variables",
                "code": "def variables(current):\n    return {'day': 'yesterday'}\n",
            },
            {
                "name": "Score",
                "type": "notebook",
                "notebook": "score.ipynb",
                "parameters": {"x": 2},
                "timeout": "90s",
                "retries": 1,
                "hide_code": True,
                "run_if": "always",
                "ignore_failure": True,
            },
            {
                "name": "Query",
                "type": "sql",
                "connection": "wh",
                "statement": "SELECT :v",
                "parameters": {"v": "${day}"},
            },
        ],
        "triggers": [
            {"type": "time", "schedule": "daily at 02:00", "timezone": "Europe/Paris"},
            {"type": "dataset_change", "dataset": "transactions", "column": "transaction_id", "grace": "1m"},
        ],
        "reporters": [
            {"type": "email", "to": ["team@example.org"], "when": "failure", "attach": {"log": True}},
            {"type": "webhook", "url": "https://hooks.example.org/x", "format": "slack"},
        ],
    }
    first = saved(light, definition, nb)
    exported = light.request("GET", f"{BASE}/roundtrip/export")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/yaml")
    text = exported.text
    assert text.startswith("# Scenario ALPHA/roundtrip, revision 1")
    assert yaml.safe_load(text)["id"] == "roundtrip"
    put = light.request("PUT", f"{BASE}/roundtrip", json={"yaml": text, "notebooks": nb})
    assert put.status_code == 200, put.text
    second = put.json()
    assert second["revision"] == 2
    assert second["definition"] == first["definition"]
    assert second["notebooks"] == first["notebooks"]
    again = light.request("GET", f"{BASE}/roundtrip/export").text
    assert again.replace("revision 2", "revision 1") == text
    wrong = light.request("PUT", f"{BASE}/other", json={"yaml": text, "notebooks": nb})
    assert error_of(wrong, 400) == ("id: the body describes 'roundtrip', not 'other'.", "id")
    broken = light.request("PUT", f"{BASE}/roundtrip", json={"yaml": text.replace("timeout: 90s", "timeout: soon")})
    message, field = error_of(broken, 400)
    assert field == "steps[3].timeout" and "'soon' is not a duration" in message


# -- the store: claiming and recovering runs (both backends) --------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_claims_and_crash_recovery(plane: ControlPlane, backend: str) -> None:
    admin = plane.users.caller_for("admin")
    for scenario, policy in (("one", "queue"), ("two", "queue"), ("three", "parallel")):
        definition = {
            "id": scenario,
            "name": scenario,
            "concurrency": policy,
            "steps": [values_step("First"), values_step("Second")],
        }
        plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario.model_validate({"definition": definition}))

    def request(scenario: str) -> int:
        return plane.runs.request_run(admin, "ALPHA", scenario, RunRequest()).id

    plane.max_concurrent_runs_per_user = 2
    one_a, one_b, two, three_a, three_b = (request(s) for s in ("one", "one", "two", "three", "three"))
    claimed = [plane.runs.claim_next("elsewhere:1:x", 0) for _ in range(3)]
    assert claimed == [one_a, two, None]  # one_b waits for one_a (queue); then the per-user limit
    plane.max_concurrent_runs_per_user = 10
    assert plane.runs.claim_next("elsewhere:1:x", 4) is None  # this engine's own limit (4)
    assert [plane.runs.claim_next("elsewhere:1:x", 0) for _ in range(3)] == [three_a, three_b, None]
    ours = request("three")
    assert plane.runs.claim_next(this_worker(), 0) == ours

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    workers = {
        one_a: f"{host}:{dead.pid}:cafe0001",  # a dead process on this host
        two: f"{host}:{os.getpid()}:cafe0002",  # this pid, an earlier incarnation
        three_a: "elsewhere:1:x",  # another host, silent for ten minutes
        three_b: "elsewhere:2:y",  # another host, alive
    }
    with plane.db.write() as session:
        for run_id, worker in workers.items():
            heartbeat = utcnow() - timedelta(minutes=10 if run_id == three_a else 0)
            session.execute(
                update(ScenarioRun).where(ScenarioRun.id == run_id).values(worker=worker, heartbeat_at=heartbeat)
            )
        session.get_one(RunStep, (one_a, 0)).state = "running"
        token = ApiToken(user_id=admin.user_id, name="run", prefix="x", digest="d" * 64, project_id=None)
        session.add(token)
        session.flush()
        session.get_one(ScenarioRun, one_a).token_id = token.id
        token_id = token.id
    mine = request("one")  # queued behind one_b

    recovered = plane.runs.recover(timedelta(minutes=5))
    assert sorted(recovered) == sorted([one_a, two, three_a])
    with plane.db.read() as session:
        runs = {r.id: r for r in session.scalars(select(ScenarioRun))}
        crashed = runs[one_a]
        assert crashed.state == "failed" and crashed.ended_at is not None
        assert crashed.message.startswith(f"The control plane running this run ({workers[one_a]}) stopped; last heard")
        assert [(s.state, s.message) for s in sorted(crashed.steps, key=lambda s: s.position)] == [
            ("failed", "interrupted: the control plane stopped"),
            ("skipped", ""),
        ]
        assert session.get(ApiToken, token_id) is None
        assert runs[two].state == "failed" and runs[three_a].state == "failed"
        assert runs[three_b].state == "running" and runs[ours].state == "running"
        assert runs[one_b].state == "queued" and runs[mine].state == "queued"
    assert plane.runs.recover(timedelta(minutes=5)) == []

    # An abort asked of a run held elsewhere reaches its engine with the next heartbeat.
    plane.runs.abort(admin, "ALPHA", "three", three_b)
    assert plane.runs.heartbeat("elsewhere:2:y") == [three_b]
    # Starting an engine marks failed what a stopped control plane left running.
    with plane.db.write() as session:
        session.execute(
            update(ScenarioRun)
            .where(ScenarioRun.id == three_b)
            .values(worker=f"{host}:{dead.pid}:cafe0003", abort_requested=False)
        )
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=False)
    with plane.db.read() as session:
        assert session.get_one(ScenarioRun, three_b).state == "failed"
    # ... and runs what was queued behind the crashed run.
    deadline = time.monotonic() + 20
    while True:
        with plane.db.read() as session:
            states = [session.get_one(ScenarioRun, r).state for r in (one_b, mine)]
        if states == ["succeeded", "succeeded"]:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)


def test_a_lone_reference_keeps_the_variables_type() -> None:
    variables = {"n": 5, "ratio": 0.8, "day": "2018-06-01"}
    expanded = typed_expand({"a": "${n}", "b": "${ratio}", "c": "day ${day}", "d": "$${n}", "e": 3}, variables)
    assert expanded == {"a": 5, "b": 0.8, "c": "day 2018-06-01", "d": "${n}", "e": 3}
