"""Scenario runs end to end: real papermill and ipykernel, the local executor, the live API."""

import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from himalia.controlplane import ControlPlane

from .conftest import LiveAPI


def notebook(*cells: str, parameters: str = "x: int = 1") -> dict[str, Any]:
    node = new_notebook(cells=[new_code_cell(parameters, metadata={"tags": ["parameters"]})] + [new_code_cell(c) for c in cells])
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return dict(nbformat.from_dict(node))


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def runner(plane: ControlPlane, api: LiveAPI) -> Iterator[LiveAPI]:
    plane.api_url = api.base
    plane.start_engine(schedule=False)
    yield api


def save(api: LiveAPI, definition: dict[str, Any], notebooks: dict[str, Any], role: str = "admin") -> Any:
    return api.request("PUT", f"/projects/ALPHA/scenarios/{definition['id']}", role, json={"definition": definition, "notebooks": notebooks})


def wait(api: LiveAPI, scenario: str, run: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.request("GET", f"/projects/ALPHA/scenarios/{scenario}/runs/{run}").json()
        if body["state"] not in ("queued", "running"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"run {run} still {body['state']}")


def test_notebook_step_runs(runner: LiveAPI) -> None:
    definition = {"id": "simple", "name": "Simple", "steps": [{"name": "Nb", "type": "notebook", "notebook": "a.ipynb", "parameters": {"x": 5}}]}
    nb = notebook("import os\nprint('x is', x, os.environ['HIMALIA_RUN_ID'])")
    reply = save(runner, definition, {"a.ipynb": nb})
    assert reply.status_code == 200, reply.text
    started = runner.request("POST", "/projects/ALPHA/scenarios/simple/run", json={"parameters": {"x": 7}})
    assert started.status_code == 201, started.text
    run = wait(runner, "simple", started.json()["id"])
    assert run["state"] == "succeeded", run
    log = runner.request("GET", f"/projects/ALPHA/scenarios/simple/runs/{run['id']}/log").text
    assert f"x is 7 {run['id']}" in log
    report = runner.request("GET", f"/projects/ALPHA/scenarios/simple/runs/{run['id']}/report")
    assert report.status_code == 200 and "x is" in report.text
