"""Project files on Kubernetes: a step's pod fetches the files its job lists, with the run's token only.

The pod side runs for real (``python -m himalia.execution.kubernetes.pod`` started by the simulated
kubelet of ``test_kubernetes``), against the live API's run-step handlers.
"""

import base64
import hashlib
import json
import threading
from functools import partial
from pathlib import Path
from typing import Any

from nbformat.v4 import new_code_cell, new_notebook

from himalia.controlplane import ControlPlane
from himalia.scenarios.files import read_project_file
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI
from .test_kubernetes import JOBS, PODS, SECRETS, Kubelet, cluster, on_kubernetes, run_state, until

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}
SCORE = new_notebook(
    cells=[
        new_code_cell("threshold: float = 0.5", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "from utils import summarize\nimport csv\n"
            "print('summary', summarize(list(csv.DictReader(open('data/sales.csv')))))"
        ),
    ],
    metadata={"kernelspec": KERNEL},
)
UTILS = b"def summarize(rows):\n    return sum(int(r['amount']) for r in rows)\n"


def save_with_files(plane: ControlPlane, root: Path) -> None:
    """``himalia scenario apply`` of a scenario whose notebook sits beside a module and a CSV."""
    (root / "data").mkdir(parents=True)
    (root / "score.ipynb").write_text(json.dumps(SCORE))
    (root / "utils.py").write_bytes(UTILS)
    (root / "data" / "sales.csv").write_text("day,amount\n1,5\n2,7\n")
    definition = ScenarioDefinition.model_validate(
        {
            "id": "scoring",
            "name": "Scoring on Kubernetes",
            "tier": "small",
            "steps": [{"name": "Score data", "type": "notebook", "notebook": "score.ipynb"}],
        }
    )
    spec = SaveScenario(definition=definition, notebooks={"score.ipynb": json.loads(json.dumps(SCORE))})
    saved = plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", spec, files_root=root)
    assert saved.files is not None and saved.files.files == 3


def start(api: LiveAPI) -> int:
    started = api.request("POST", "/projects/ALPHA/scenarios/scoring/run", json={})
    assert started.status_code == 201, started.text
    run_id: int = started.json()["id"]
    return run_id


def test_a_pod_runs_its_notebook_beside_the_project_files(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> None:
    k8s = cluster(["job-active.json"], ["pods-none.json"])
    kubelet = Kubelet(k8s, tmp_path)
    k8s.on("POST", JOBS, kubelet.create_job, status=201)
    k8s.on("GET", JOBS + "/[^/]+/status", kubelet.job)
    k8s.on("GET", PODS, kubelet.pods)
    k8s.on("GET", PODS + "/[^/]+/log", kubelet.follow_log)
    executor = on_kubernetes(plane, api, k8s)
    executor.project_file = partial(read_project_file, plane.db)
    save_with_files(plane, tmp_path / "project")
    try:
        run_id = start(api)
        run = run_state(api, run_id)
    finally:
        kubelet.stop()
    assert run["state"] == "succeeded", (run, kubelet.log.read_text())
    log = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}/log").text
    assert "[himalia] fetching 3 project files" in log
    assert "summary 12\n" in log


def test_only_the_run_token_fetches_only_the_files_its_step_lists(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path
) -> None:
    reported = threading.Event()
    k8s = cluster(
        [lambda: "job-complete.json" if reported.is_set() else "job-active.json"],
        [lambda: "pods-succeeded.json" if reported.is_set() else "pods-running.json"],
    )
    executor = on_kubernetes(plane, api, k8s)
    executor.project_file = partial(read_project_file, plane.db)
    save_with_files(plane, tmp_path / "project")
    run_id = start(api)
    [(_, secret)] = until(lambda: k8s.made("POST", SECRETS))
    token = secret["stringData"]["token"]
    step = f"/projects/ALPHA/runs/{run_id}/steps/Score%20data"

    def call(method: str, path: str, token: str | None = None, role: str = "anonymous", **body: Any) -> Any:
        headers = {"Authorization": f"token {token}"} if token else {}
        return api.request(method, path, role, headers=headers, **body)

    job = until(lambda: call("GET", f"{step}/job", token)).json()
    listed = {file["path"]: file for file in job["files"]}
    assert sorted(listed) == ["data/sales.csv", "score.ipynb", "utils.py"] and job["folder"] == ""
    utils = f"{step}/files/{listed['utils.py']['digest']}"
    fetched = call("GET", utils, token)
    assert (fetched.status_code, fetched.content) == (200, UTILS)

    assert call("GET", utils, role="reader").status_code == 404, "another user learns nothing"
    assert call("GET", utils, role="admin").status_code == 403, "an administrator is told why not"
    assert call("GET", utils).status_code == 401
    unlisted = hashlib.sha256(b"a file of another scenario").hexdigest()
    assert call("GET", f"{step}/files/{unlisted}", token).status_code == 404
    assert call("GET", f"{step}/files/..%2F..%2Fetc%2Fpasswd", token).status_code == 404
    other_step = f"/projects/ALPHA/runs/{run_id}/steps/Other/files/{listed['utils.py']['digest']}"
    assert call("GET", other_step, token).status_code == 404

    result = {"reason": "ok", "error": None, "executed": base64.b64encode(b"{}").decode(), "html": None}
    assert call("POST", f"{step}/result", token, json=result).status_code == 204
    reported.set()
    run_state(api, run_id)
    assert call("GET", utils, token).status_code == 401, "the run's token dies with the run"
