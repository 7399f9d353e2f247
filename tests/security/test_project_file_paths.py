"""Project file paths never leave their tree: refused in ``files:`` globs at save, never collected
through a link, refused in a job however it was built, and never written through a link.

Each attack class is generated in variants: ``..`` parts, absolute paths, NUL and control
characters, backslashes, names longer than the file system allows, non-UTF-8 names, links out.
"""

import hashlib
import os
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from himalia.core.documents import DocumentError
from himalia.core.errors import InvalidInput
from himalia.execution.files import PROJECT_FOLDER, MaterializeError, materialize
from himalia.scenarios.files import ProjectFiles
from himalia.wire.definitions import load_scenario
from himalia.wire.steps import ProjectFile, StepJob

TRAVERSALS = [
    "..",
    "../secrets.txt",
    "a/../../b",
    "a/..",
    "./a",
    "a//b",
    "/etc/passwd",
    "//server/share",
    "a\x00b",
    "a\nb",
    "a\\..\\b",
    "x" * 256,
    "a/" * 600 + "b",
    "",
]
CONTENT = b"planted\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_a_files_glob_outside_the_tree_is_refused_naming_its_field_and_line(path: str) -> None:
    steps = [{"name": "a", "type": "notebook", "notebook": "a.ipynb"}]
    text = yaml.safe_dump({"id": "x", "name": "X", "files": ["*.py", path], "steps": steps}, sort_keys=False)
    with pytest.raises(DocumentError) as refused:
        load_scenario(text)
    assert re.search(r"<scenario>:\d+: files\[1\]", str(refused.value)), str(refused.value)


@pytest.mark.parametrize("path", TRAVERSALS)
def test_a_job_naming_a_path_outside_its_tree_is_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        ProjectFile(path=path, digest=DIGEST, size=len(CONTENT))
    if path:
        with pytest.raises(ValidationError):
            StepJob(run_id=1, step="s", notebook="n", content="{}", parameters={}, env={}, folder=path)


@pytest.mark.parametrize("path", TRAVERSALS)
def test_materialize_refuses_a_path_outside_the_tree_however_the_job_was_built(path: str, tmp_path: Path) -> None:
    forged = ProjectFile.model_construct(path=path, digest=DIGEST, size=len(CONTENT))
    with pytest.raises(MaterializeError):
        materialize([forged], "", tmp_path, lambda digest: CONTENT)
    assert not (tmp_path.parent / "secrets.txt").exists()


def test_materialize_never_writes_through_a_link(tmp_path: Path) -> None:
    job, outside = tmp_path / "job", tmp_path / "outside"
    job.mkdir()
    outside.mkdir()
    (job / PROJECT_FOLDER).mkdir()
    (job / PROJECT_FOLDER / "data").symlink_to(outside, target_is_directory=True)
    (job / PROJECT_FOLDER / "utils.py").symlink_to(outside / "utils.py")
    for path in ("data/sales.csv", "utils.py"):
        with pytest.raises(MaterializeError):
            materialize([ProjectFile(path=path, digest=DIGEST, size=len(CONTENT))], "", job, lambda digest: CONTENT)
    assert list(outside.iterdir()) == []
    with pytest.raises(MaterializeError):
        materialize([], "data", job, lambda digest: CONTENT)


def test_materialize_refuses_content_that_is_not_what_the_job_lists(tmp_path: Path) -> None:
    with pytest.raises(MaterializeError, match="does not match its SHA-256"):
        materialize([ProjectFile(path="a.py", digest=DIGEST, size=len(CONTENT))], "", tmp_path, lambda d: b"other\n")


def test_collecting_never_follows_a_link_nor_reads_the_control_planes_files(tmp_path: Path) -> None:
    root, outside, home = tmp_path / "project", tmp_path / "outside", tmp_path / "project" / "himalia-home"
    root.mkdir()
    outside.mkdir()
    home.mkdir()
    (root / "a.ipynb").write_text("{}")
    (outside / "secret.txt").write_text("secret")
    (home / "secret.key").write_text("key")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "hard.txt").write_text("a regular file of the project")
    os.mkfifo(root / "pipe")
    collected = ProjectFiles(protected=(str(home.resolve()),)).collect(root, "a.ipynb", None)
    assert sorted(collected) == ["a.ipynb", "hard.txt"]
    (outside / "a.ipynb").write_text("{}")
    with pytest.raises(InvalidInput, match="cannot be read"):
        ProjectFiles().collect(root, "linked/a.ipynb", None)  # a notebook folder that is a link out
    (home / "x.ipynb").write_text("{}")
    with pytest.raises(InvalidInput, match="cannot be read"):
        ProjectFiles(protected=(str(home.resolve()),)).collect(root, "himalia-home/x.ipynb", ["*"])


@pytest.mark.parametrize("name", [b"bad\\name.txt", b"new\nline.txt", b"not-utf8-\xff.txt"])
def test_collecting_refuses_a_file_name_a_job_could_not_carry(tmp_path: Path, name: bytes) -> None:
    (tmp_path / "a.ipynb").write_text("{}")
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as handle:
        handle.write(b"x")
    with pytest.raises(InvalidInput, match="cannot snapshot"):
        ProjectFiles().collect(tmp_path, "a.ipynb", None)
