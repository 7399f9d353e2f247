"""Project files in runs: a scheduled notebook sees the files next to it, as it did interactively.

Saving snapshots the tree of the first notebook's folder (or the ``files:`` globs), within the
``ProjectFiles`` limits, without excluded folders, ``.himaliaignore`` entries or links; runs write
that tree in their job folder, run each notebook in its own folder with the tree's root on
``sys.path``, and a re-run uses the run's tree whatever changed on disk since.
"""

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from sqlalchemy import func, select

from himalia.controlplane import ControlPlane
from himalia.core.errors import InvalidInput
from himalia.store.orm import FileTree, ProjectFileBlob, Scenario, ScenarioRun
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import DescribeScenario, SaveScenario

from ..conftest import LiveAPI
from .conftest import BASE, error_of, get_run, notebook, start, wait

USES_SIBLINGS = notebook(
    "from utils import summarize\nimport csv\nrows = list(csv.DictReader(open('sales.csv')))",
    "total = summarize(rows)\nassert total == 60, total\nprint('total', total)",
    parameters="x: int = 1",
)
#: A notebook in a subfolder of the tree: it runs there, and imports from the tree's root.
IN_SUBFOLDER = notebook(
    "from utils import summarize\nimport csv\nrows = list(csv.DictReader(open('../sales.csv')))",
    "print('again', summarize(rows))\nprint(open('note.txt').read())",
)


def project(folder: Path) -> Path:
    """A notebook folder as someone works in it: a module, a CSV, a subfolder, and clutter."""
    (folder / "reports").mkdir(parents=True)
    (folder / "score.ipynb").write_text(json.dumps(USES_SIBLINGS))
    (folder / "reports" / "again.ipynb").write_text(json.dumps(IN_SUBFOLDER))
    (folder / "reports" / "note.txt").write_text("from the subfolder")
    (folder / "utils.py").write_text("def summarize(rows):\n    return sum(int(r['amount']) for r in rows)\n")
    (folder / "sales.csv").write_text("day,amount\n1,10\n2,20\n3,30\n")
    for clutter in (".git", ".ipynb_checkpoints", "__pycache__", "node_modules", ".venv", "env"):
        (folder / clutter).mkdir()
        (folder / clutter / "junk.py").write_text("raise SystemExit('never snapshotted')\n")
    (folder / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "big.bin").write_bytes(b"x" * 1000)
    (folder / "secret.log").write_text("ignored")
    (folder / ".himaliaignore").write_text("scratch/\n*.log\n")
    return folder


def definition(files: list[str] | None = None, scenario_id: str = "files") -> ScenarioDefinition:
    steps: list[dict[str, Any]] = [
        {"name": "Score", "type": "notebook", "notebook": "work/score.ipynb"},
        {"name": "Again", "type": "notebook", "notebook": "work/reports/again.ipynb"},
    ]
    data: dict[str, Any] = {"id": scenario_id, "name": "Files", "steps": steps}
    if files is not None:
        data["files"] = files
    return ScenarioDefinition.model_validate(data)


def spec_of(root: Path, scenario: ScenarioDefinition) -> SaveScenario:
    """The request ``himalia scenario apply`` makes: the definition with its notebooks read below ``root``."""
    notebooks = {
        s.notebook: json.loads((root / s.notebook).read_text()) for s in scenario.steps if s.type == "notebook"
    }
    return SaveScenario(definition=scenario, notebooks=notebooks)


def apply(
    plane: ControlPlane, root: Path, files: list[str] | None = None, scenario_id: str = "files"
) -> DescribeScenario:
    """Save as ``himalia scenario apply`` does: the notebooks and files read below ``root``."""
    spec = spec_of(root, definition(files, scenario_id))
    return plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", spec, files_root=root)


def entries(plane: ControlPlane, scenario: str = "files") -> list[str]:
    with plane.db.read() as session:
        row = session.scalar(select(Scenario).where(Scenario.slug == scenario))
        assert row is not None and row.file_tree is not None
        return [path for path, _, _ in session.get_one(FileTree, row.file_tree).entries]


EXPECTED = [".himaliaignore", "reports/again.ipynb", "reports/note.txt", "sales.csv", "score.ipynb", "utils.py"]


def test_saving_snapshots_the_notebook_folder_without_clutter_ignored_files_or_links(
    plane: ControlPlane, tmp_path: Path
) -> None:
    root = tmp_path / "checkout"
    work = project(root / "work")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the project's")
    (work / "linked.txt").symlink_to(outside)
    (work / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    (root / "beside.txt").write_text("outside the notebook's folder")
    saved = apply(plane, root)
    assert entries(plane) == EXPECTED
    assert saved.files is not None and saved.files.files == len(EXPECTED)
    assert saved.files.bytes == sum((work / path).stat().st_size for path in EXPECTED)


def test_files_globs_choose_what_is_snapshotted(plane: ControlPlane, tmp_path: Path) -> None:
    project(tmp_path / "work")
    apply(plane, tmp_path, files=["*.py", "*.csv", "reports/"])
    assert entries(plane) == ["reports/again.ipynb", "reports/note.txt", "sales.csv", "utils.py"]


@pytest.mark.parametrize(
    ("limit", "value", "named"),
    [
        ("max_files", 3, "more than 3 files (ProjectFiles.max_files)"),
        ("max_file_bytes", 50, "'reports/again.ipynb' has"),
        ("max_total_bytes", 800, "more than 800 bytes (ProjectFiles.max_total_bytes)"),
    ],
)
def test_each_limit_refuses_a_tree_too_big_naming_it(
    plane: ControlPlane, tmp_path: Path, limit: str, value: int, named: str
) -> None:
    project(tmp_path / "work")
    setattr(plane.scenarios.project_files, limit, value)
    with pytest.raises(InvalidInput, match="files: ") as refused:
        apply(plane, tmp_path)
    assert named in refused.value.message
    assert f"ProjectFiles.{limit}" in refused.value.message
    with plane.db.read() as session:
        assert session.scalar(select(func.count()).select_from(FileTree)) == 0, "nothing is stored"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_files_are_stored_once_across_revisions_and_scenarios(plane: ControlPlane, tmp_path: Path) -> None:
    work = project(tmp_path / "work")
    first = apply(plane, tmp_path)
    again = apply(plane, tmp_path)
    assert again.revision == first.revision and again.files == first.files, "the same save changes nothing"
    other = apply(plane, tmp_path, scenario_id="other")
    assert other.files == first.files, "another scenario of the same files shares their tree"
    (work / "utils.py").write_text("def summarize(rows):\n    return 0\n")
    changed = apply(plane, tmp_path)
    assert changed.files is not None and first.files is not None and changed.files.digest != first.files.digest
    with plane.db.read() as session:
        blobs = session.scalar(select(func.count()).select_from(ProjectFileBlob))
        trees = session.scalar(select(func.count()).select_from(FileTree))
    assert (blobs, trees) == (len(EXPECTED) + 1, 2), "only the changed file is stored again"


def test_a_notebook_without_a_kernel_is_refused_naming_the_step(plane: ControlPlane, tmp_path: Path) -> None:
    work = project(tmp_path / "work")
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    (work / "score.ipynb").write_text(nbformat.writes(bare))
    spec = spec_of(tmp_path, definition())
    with pytest.raises(InvalidInput) as refused:
        plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", spec, files_root=tmp_path)
    assert refused.value.field == "steps[0].kernel"
    assert refused.value.message.startswith("steps[0].kernel: work/score.ipynb names no kernel")
    assert "set the step's 'kernel:'" in refused.value.message
    kernel = definition().model_dump()
    kernel["steps"][0]["kernel"] = "python3"
    spec = spec_of(tmp_path, ScenarioDefinition.model_validate(kernel))
    assert plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", spec, files_root=tmp_path).files


def test_a_scheduled_notebook_imports_and_reads_its_siblings_and_reruns_on_the_same_tree(
    plane: ControlPlane, runner: LiveAPI, tmp_path: Path
) -> None:
    work = project(tmp_path / "work")
    apply(plane, tmp_path)
    run_id = start(runner, "files")
    run = wait(runner, "files", run_id, timeout=180)
    assert run["state"] == "succeeded", run
    log = runner.request("GET", f"{BASE}/files/runs/{run_id}/log").text
    assert "total 60" in log and "again 60" in log and "from the subfolder" in log

    (work / "utils.py").write_text("raise ImportError('changed on disk since the save')\n")
    (work / "sales.csv").unlink()
    rerun = runner.request("POST", f"{BASE}/files/runs/{run_id}/rerun", json={})
    assert rerun.status_code == 201, rerun.text
    again = wait(runner, "files", rerun.json()["id"], timeout=180)
    assert again["state"] == "succeeded", again
    with plane.db.read() as session:
        trees = {session.get_one(ScenarioRun, r).file_tree for r in (run_id, again["id"])}
    assert len(trees) == 1 and None not in trees
    assert get_run(runner, "files", run_id)["state"] == "succeeded"


@pytest.mark.parametrize("glob", ["../secrets.txt", "/etc/passwd", "a/../../b", "a\u0000b"])
def test_the_api_refuses_globs_outside_the_tree_naming_the_field(api: LiveAPI, glob: str) -> None:
    scenario = definition().model_dump(mode="json", exclude={"files"})
    reply = api.request("PUT", f"{BASE}/files", json={"definition": {**scenario, "files": ["*.py", glob]}})
    message, field = error_of(reply, 400)
    assert field is not None and field.endswith("files.1"), (message, field)


def test_the_preview_says_what_saving_would_snapshot_and_stores_nothing(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path
) -> None:
    project(tmp_path / "work")
    plane.notebook_root = str(tmp_path)
    preview = "/projects/ALPHA/project-files/preview"
    reply = api.request("POST", preview, json={"notebook": "work/score.ipynb"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["paths"] == EXPECTED and reply.json()["files"] == len(EXPECTED)
    chosen = api.request("POST", preview, json={"notebook": "work/score.ipynb", "files": ["*.py"]}).json()
    assert chosen["paths"] == ["utils.py"]
    with plane.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProjectFileBlob)) == 0

    plane.scenarios.project_files.max_files = 2
    message, field = error_of(api.request("POST", preview, json={"notebook": "work/score.ipynb"}), 400)
    assert field == "files" and "ProjectFiles.max_files" in message
    message, field = error_of(api.request("POST", preview, json={"notebook": "../etc/x.ipynb"}), 400)
    assert field == "notebook"
    message, _ = error_of(api.request("POST", preview, "contributor", json={"notebook": "work/score.ipynb"}), 403)
    assert "write_isolated_code" in message, message
    assert api.request("POST", preview, "reader", json={"notebook": "work/score.ipynb"}).status_code == 403
    assert api.request("POST", preview, "nogrant", json={"notebook": "work/score.ipynb"}).status_code == 404
    assert api.request("POST", preview, "anonymous", json={"notebook": "work/score.ipynb"}).status_code == 401


def test_a_folder_too_big_to_look_through_is_refused_unless_ignored(plane: ControlPlane, tmp_path: Path) -> None:
    work = project(tmp_path / "work")
    (work / "dump").mkdir()
    for number in range(70):
        (work / "dump" / f"{number}.json").write_text("{}")
    plane.scenarios.project_files.max_files = 3  # a walk looks through 20 entries per file it may keep
    with pytest.raises(InvalidInput, match=r"more than 60 files and folders to look through \(20 x ProjectFiles"):
        apply(plane, tmp_path, files=["*.py"])
    (work / ".himaliaignore").write_text("dump/\n")
    assert entries(plane, apply(plane, tmp_path, files=["*.py"]).id) == ["utils.py"]


def test_a_host_without_a_notebook_folder_reads_nothing_of_its_own_disk(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`himalia serve` and the hub's service have no notebook folder: whatever lies in the folder
    they started in, or in another person's, is never read or snapshotted for a caller."""
    project(tmp_path / "work")
    (tmp_path / "work" / ".ssh").mkdir()
    (tmp_path / "work" / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    monkeypatch.chdir(tmp_path)
    plane.notebook_root = ""
    preview = "/projects/ALPHA/project-files/preview"
    message, field = error_of(api.request("POST", preview, json={"notebook": "work/score.ipynb"}), 400)
    assert field == "notebook" and "reads no notebook folder" in message, message
    scenario = definition().model_dump(mode="json", exclude={"files"})
    message, field = error_of(api.request("PUT", f"{BASE}/files", json={"definition": scenario}), 400)
    assert field == "steps[0].notebook" and "send the content" in message, message
    with_content = spec_of(tmp_path, definition()).model_dump(mode="json")
    saved = api.request("PUT", f"{BASE}/files", json=with_content)
    assert saved.status_code == 200, saved.text
    assert saved.json()["files"] is None  # the notebooks it carried, no files of this disk
    globs = {**with_content, "definition": {**with_content["definition"], "files": ["*.py"]}}
    message, field = error_of(api.request("PUT", f"{BASE}/files", json=globs), 400)
    assert field == "files" and "reads no notebook folder" in message, message

    plane.notebook_root = str(tmp_path)  # standalone: the Jupyter root, its user's own files
    assert ".ssh/id_ed25519" not in api.request("POST", preview, json={"notebook": "work/score.ipynb"}).json()["paths"]
    message, field = error_of(api.request("POST", preview, json={"notebook": "work/utils.py"}), 400)
    assert field == "notebook" and "is not a notebook" in message, message
