"""Two runs of a scenario side by side (``GET …/runs/{a}/compare/{b}``, ``himalia scenario compare``):
parameters and variables, the notebook snapshots cell by cell, the project files, the steps, and
the metrics and check outcomes each run recorded."""

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.scenarios.comparison import compare_cells
from himalia.store.orm import RunStep
from himalia.wire.data import CheckSpec
from himalia.wire.scenarios import RunRequest

from ..conftest import LiveAPI
from .conftest import BASE, notebook, saved, start, wait
from .test_project_files import apply, project


def test_two_runs_differ_in_what_they_were_given_ran_and_recorded(
    plane: ControlPlane, tmp_path: Path, api: LiveAPI
) -> None:
    admin = plane.users.caller_for("admin")
    work = project(tmp_path / "work")
    apply(plane, tmp_path)
    first = plane.runs.request_run(admin, "ALPHA", "files", RunRequest(parameters={"x": 1}, variables={"region": "EU"}))
    plane.runs.abort(admin, "ALPHA", "files", first.id)  # no engine here; and one run at a time
    score = json.loads((work / "score.ipynb").read_text())
    score["cells"][1]["source"] = "from utils import summarize\nrows = []"  # changed
    score["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "## Added"})
    (work / "score.ipynb").write_text(json.dumps(score))
    (work / "utils.py").write_text("def summarize(rows):\n    return 0\n")
    (work / "extra.csv").write_text("a\n1\n")
    (work / "reports" / "note.txt").unlink()
    apply(plane, tmp_path)
    second = plane.runs.request_run(
        admin, "ALPHA", "files", RunRequest(parameters={"x": 2}, variables={"region": "EU"})
    )

    answer = api.request("GET", f"{BASE}/files/runs/{first.id}/compare/{second.id}", role="reader")
    assert answer.status_code == 200, answer.text
    compared = answer.json()
    drawn = api.request(
        "GET",
        f"{BASE}/files/runs/{first.id}/compare/{second.id}/notebook",
        role="reader",
        params={"path": "work/score.ipynb"},
    )
    assert drawn.status_code == 200, drawn.text  # what nbdime's view draws: run a's snapshot and nbdime's diff
    nbdime_diff = drawn.json()
    assert "rows = list(csv.DictReader(open('sales.csv')))" in json.dumps(nbdime_diff["base"])
    (cells,) = [entry for entry in nbdime_diff["diff"] if entry["key"] == "cells"]
    assert {entry["op"] for entry in cells["diff"]} >= {"addrange"} and "## Added" in json.dumps(cells)
    for path, status in (("work/none.ipynb", 404), ("", 400)):
        refused = api.request(
            "GET", f"{BASE}/files/runs/{first.id}/compare/{second.id}/notebook", params={"path": path}
        )
        assert refused.status_code == status, refused.text
    assert (compared["a"]["id"], compared["b"]["id"], compared["a"]["state"]) == (first.id, second.id, "aborted")
    assert compared["parameters"] == [{"name": "x", "dataset": None, "a": 1, "b": 2, "same": False}]
    assert compared["variables"] == [{"name": "region", "dataset": None, "a": "EU", "b": "EU", "same": True}]
    notebooks = {n["path"]: n for n in compared["notebooks"]}
    assert notebooks["work/reports/again.ipynb"]["same"] is True
    changed = notebooks["work/score.ipynb"]
    assert not changed["same"] and [c["change"] for c in changed["cells"]] == ["changed", "added"]
    assert "-rows = list(csv.DictReader(open('sales.csv')))" in changed["cells"][0]["diff"]
    assert "+rows = []" in changed["cells"][0]["diff"] and "+## Added" in changed["cells"][1]["diff"]
    files = compared["files"]
    assert (files["added"], files["removed"], files["changed"]) == (
        ["extra.csv"],
        ["reports/note.txt"],
        ["score.ipynb", "utils.py"],
    )
    assert files["unchanged"] == 3 and files["a"] != files["b"]
    assert [(s["name"], s["a"], s["b"]) for s in compared["steps"]] == [
        ("Score", "skipped", "pending"),
        ("Again", "skipped", "pending"),
    ]

    cli = CliRunner().invoke(
        main,
        [
            "--home",
            plane.home,
            "--db-url",
            plane.db_url,
            "scenario",
            "compare",
            "ALPHA",
            "files",
            str(first.id),
            str(second.id),
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert "parameter" in cli.output and "work/score.ipynb: 2 cell(s) differ" in cli.output
    assert "project files: 1 added, 1 removed, 2 changed, 3 the same" in cli.output and "  + extra.csv" in cli.output


def test_metrics_and_check_outcomes_side_by_side(plane: ControlPlane, light: LiveAPI) -> None:
    """A scenario runs the checks of ``transactions``; between its runs a check is made to fail."""
    steps = [{"name": "Check", "type": "run_checks", "dataset": "transactions"}]
    saved(light, {"id": "checking", "name": "Checking", "steps": steps})
    first = wait(light, "checking", start(light, "checking"))
    admin = plane.users.caller_for("admin")
    plane.checks.save_check(
        admin,
        "ALPHA",
        "transactions",
        CheckSpec(name="Columns 13", type="in_set", metric="column_count", values=[12]),
        replace="Columns 13",
    )
    second = wait(light, "checking", start(light, "checking"))
    path = f"{BASE}/checking/runs/{first['id']}/compare/{second['id']}"
    compared = light.request("GET", path, role="reader").json()
    assert compared["checks"] == [
        {"name": "Columns 13", "dataset": "transactions", "a": "OK", "b": "ERROR", "same": False}
    ]
    assert {"name": "column_count", "dataset": "transactions", "a": 13, "b": 13, "same": True} in compared["metrics"]
    assert [(s["name"], s["a"], s["b"]) for s in compared["steps"]] == [("Check", "succeeded", "failed")]
    assert compared["a"]["seconds"] is not None

    for role, status in (("nogrant", 404), ("anonymous", 401)):
        assert light.request("GET", path, role=role).status_code == status
    for wrong in (
        f"{BASE}/checking/runs/{first['id']}/compare/99999",
        f"{BASE}/checking/runs/x/compare/{second['id']}",
    ):
        assert light.request("GET", wrong, role="reader").status_code == 404


def test_cells_are_aligned_so_one_inserted_cell_is_one_change() -> None:
    before = ["import a", "x = 1", "print(x)"]
    after = ["import a", "# new", "x = 1", "print(x + 1)"]
    cells = compare_cells(before, after)
    assert [(c.a, c.b, c.change) for c in cells] == [(None, 1, "added"), (2, 3, "changed")]
    assert compare_cells(before, before) == []
    assert [(c.a, c.change) for c in compare_cells(before, [])] == [(0, "removed"), (1, "removed"), (2, "removed")]


def test_each_notebook_step_keeps_what_its_kernel_ran_on_and_the_comparison_names_what_moved(
    runner: LiveAPI,
) -> None:
    saved(
        runner,
        {"id": "env", "name": "Env", "steps": [{"name": "Nb", "type": "notebook", "notebook": "env.ipynb"}]},
        {"env.ipynb": notebook("print(x)")},
    )
    first = wait(runner, "env", start(runner, "env"))
    second = wait(runner, "env", start(runner, "env"))
    assert (first["state"], second["state"]) == ("succeeded", "succeeded"), (first, second)
    record = first["steps"][0]["outputs"]["environment"]
    assert record["kernel"] == "python3" and record["python"] == platform.python_version()
    assert record["packages"]["papermill"] == importlib.metadata.version("papermill")
    assert (record["executor"], record["tier"]) == ("LocalExecutor", None) and len(record["digest"]) == 64

    def compared() -> dict[str, Any]:
        answer = runner.request("GET", f"{BASE}/env/runs/{first['id']}/compare/{second['id']}", role="reader")
        assert answer.status_code == 200, answer.text
        (environment,) = answer.json()["environments"]
        return dict(environment)

    same = compared()
    assert all(setting["same"] for setting in same["settings"]) and same["step"] == "Nb"
    assert (same["added"], same["removed"], same["changed"]) == ([], [], [])

    # As if the first run had been made before an upgrade of papermill and the removal of a package.
    with runner.plane.db.write() as session:
        step = session.scalars(select(RunStep).where(RunStep.run_id == first["id"])).one()
        older = dict(step.outputs["environment"])
        older["packages"] = {**older["packages"], "papermill": "2.0.0", "left-behind": "1.0"}
        older["digest"] = "0" * 64
        step.outputs = {**step.outputs, "environment": older}
    moved = compared()
    assert moved["removed"] == ["left-behind==1.0"] and moved["added"] == []
    assert [(c["name"], c["a"], c["b"]) for c in moved["changed"]] == [
        ("papermill", "2.0.0", importlib.metadata.version("papermill"))
    ]
    assert [s["name"] for s in moved["settings"] if not s["same"]] == ["digest"]
