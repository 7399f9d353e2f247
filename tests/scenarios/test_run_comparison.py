"""Two runs of a scenario side by side (``GET …/runs/{a}/compare/{b}``, ``himalia scenario compare``):
parameters and variables, the notebook snapshots cell by cell, the project files, the steps, and
the metrics and check outcomes each run recorded."""

import json
from pathlib import Path

from click.testing import CliRunner

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.scenarios.comparison import compare_cells
from himalia.wire.data import CheckSpec
from himalia.wire.scenarios import RunRequest

from ..conftest import LiveAPI
from .conftest import BASE, saved, start, wait
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
