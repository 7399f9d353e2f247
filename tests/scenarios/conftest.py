"""Scenario runs end to end: real papermill and ipykernel, the local executor, the live API.

Notebook runs cost a kernel start each (a few seconds on a small machine), so the tests that need
several start their runs together and wait for all of them; steps that need no kernel
(``run_checks``, ``set_variables``, ``sql``, ``run_scenario``) stand in wherever a notebook is not
the point. Everything runs on SQLite except the store-only test of claiming and recovering runs,
which also runs on PostgreSQL. This module holds the fixtures and helpers the run tests share.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from himalia.controlplane import ControlPlane
from himalia.wire.data import CheckSpec

from ..conftest import LiveAPI

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
