"""Class 5 with project files: an isolated step's files are written as its person's own account.

The control plane (root) writes the run's project files into the job folder of the run-as
user's OS account, each folder and file handed to that account (0700 / 0600), never through a
link; the kernel, as that account, imports the sibling module and reads the sibling CSV.
"""

import json
import os
import re
from pathlib import Path

import pytest

from himalia.controlplane import ControlPlane
from himalia.execution.accounts import account_name, find_account
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI
from ..scenarios.conftest import log_of, notebook, start, start_engine, wait
from .test_os_accounts import add_notebook_writers, backend, needs_root, plane  # noqa: F401  (fixtures)

SIBLINGS = notebook(
    "import os, stat, csv\nfrom utils import total\n"
    "rows = list(csv.DictReader(open('sales.csv')))\n"
    "modes = {name: [os.stat(name).st_uid, oct(stat.S_IMODE(os.stat(name).st_mode))] for name in ('utils.py', '.')}\n"
    "print('SIBLINGS ' + json.dumps({'total': total(rows), 'modes': modes}))",
    parameters="import json",
)


@needs_root
def test_an_isolated_step_gets_its_project_files_as_its_own_account(
    plane: ControlPlane,  # noqa: F811
    api: LiveAPI,
    tmp_path: Path,
) -> None:
    add_notebook_writers(plane, "ana")
    runner = start_engine(plane, api, tmp_path, warm=0)
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "job.ipynb").write_text(json.dumps(SIBLINGS))
    (root / "utils.py").write_text("def total(rows):\n    return sum(int(r['n']) for r in rows)\n")
    (root / "sales.csv").write_text("n\n4\n5\n")
    definition = ScenarioDefinition.model_validate(
        {"id": "siblings", "name": "Siblings", "steps": [{"name": "Job", "type": "notebook", "notebook": "job.ipynb"}]}
    )
    spec = SaveScenario(definition=definition, notebooks={"job.ipynb": SIBLINGS})
    saved = plane.scenarios.save_scenario(plane.users.caller_for("ana"), "ALPHA", spec, files_root=root)
    assert saved.files is not None and saved.files.files == 3
    run = start(runner, "siblings")
    assert wait(runner, "siblings", run, timeout=120)["state"] == "succeeded", log_of(runner, "siblings", run)
    found = re.search(r"SIBLINGS (\{.*\})", log_of(runner, "siblings", run))
    assert found, log_of(runner, "siblings", run)
    report = json.loads(found.group(1))
    assert plane.engine is not None
    isolation = plane.engine.executor.isolation  # type: ignore[attr-defined]
    ana = find_account(account_name(isolation.account_template, "ana"))
    assert ana is not None and ana.uid != os.geteuid()
    assert report == {"total": 9, "modes": {"utils.py": [ana.uid, "0o600"], ".": [ana.uid, "0o700"]}}


@pytest.fixture(autouse=True)
def _isolated(plane: ControlPlane) -> None:  # noqa: F811
    assert plane.config.UserIsolation.get("mode", "os_accounts") == "os_accounts"
