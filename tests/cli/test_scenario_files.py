"""``himalia scenario apply`` says which project files it snapshotted, and refuses in one line."""

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from .test_cli import himalia  # noqa: F401  (the fixture)

SCENARIO = "id: files\nname: Files\nsteps:\n  - {name: Score, type: notebook, notebook: work/score.ipynb}\n"


def test_apply_prints_the_project_files_and_refuses_a_notebook_without_kernel(  # type: ignore[no-untyped-def]
    himalia,  # noqa: F811
    tmp_path: Path,
) -> None:
    himalia("group", "add", "admins", "--permission", "admin")
    himalia("user", "add", "alice", "--group", "admins")
    himalia("--as", "alice", "project", "create", "OPS", "--name", "Ops")
    work = tmp_path / "checkout" / "work"
    work.mkdir(parents=True)
    scored = new_notebook(cells=[new_code_cell("from utils import x")])
    (work / "score.ipynb").write_text(nbformat.writes(scored))
    (work / "utils.py").write_text("x = 1\n")
    (work / "__pycache__").mkdir()
    (work / "__pycache__" / "utils.pyc").write_bytes(b"\0")
    (tmp_path / "files.yaml").write_text(SCENARIO)
    apply = ("--as", "alice", "scenario", "apply", "OPS", str(tmp_path / "files.yaml"), "--notebooks")

    refused = himalia(*apply, str(tmp_path / "checkout"), code=1)
    assert refused.output.startswith("error: steps[0].kernel: work/score.ipynb names no kernel"), refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1

    scored.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (work / "score.ipynb").write_text(nbformat.writes(scored))
    applied = himalia(*apply, str(tmp_path / "checkout")).output
    size = (work / "score.ipynb").stat().st_size + (work / "utils.py").stat().st_size
    assert f"  project files: 2 files, {size:,} bytes, tree " in applied, applied
    described = json.loads(himalia("--json", "--as", "alice", "scenario", "list", "OPS").output)["items"][0]
    assert described["files"]["files"] == 2
