"""Writing a run's project files into its job folder: one function for every executor.

The local executor (as the control plane, handing each file to the run-as account) and a
Kubernetes step's pod (fetching each file with the run's token) both call :func:`materialize`.
It trusts nothing it is handed: every path is checked again (relative, no ``..``, no NUL), every
folder is entered through the one above it without following links, and every file is created
new (``O_EXCL | O_NOFOLLOW``), so a link planted in the folder cannot send a write elsewhere.
Each file's bytes must have the SHA-256 and size its entry names.
"""

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from himalia.wire.steps import ProjectFile, project_path_problem

#: The folder of the job folder the project tree is written in (the job's own files sit beside it).
PROJECT_FOLDER = "project"
#: Digest -> the file's bytes.
ReadFile = Callable[[str], bytes]
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class MaterializeError(Exception):
    """A project file that cannot be written, in a sentence naming it."""


@contextlib.contextmanager
def _folder(root: int, parts: list[str], owner: tuple[int, int] | None) -> Iterator[int]:
    """A descriptor of ``root/parts...``, each folder created (0700) if missing, never through a link."""
    descriptor = os.dup(root)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=descriptor)
                if owner is not None:
                    os.chown(part, *owner, dir_fd=descriptor, follow_symlinks=False)
            inner = os.open(part, _FOLDER_FLAGS, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
        yield descriptor
    finally:
        os.close(descriptor)


def materialize(
    files: list[ProjectFile], folder: str, job_folder: Path, read: ReadFile, owner: tuple[int, int] | None = None
) -> Path:
    """Write ``files`` under ``job_folder/project`` and return where the notebook runs (its
    ``folder`` there, created even when it holds no file). ``owner`` (uid, gid) is given the
    folders and files when the control plane writes for another account."""
    for path in [folder, *(file.path for file in files)]:
        problem = project_path_problem(path) if path else None
        if problem:
            raise MaterializeError(f"project file '{path[:200]!r}': {problem}")
    root = os.open(job_folder, _FOLDER_FLAGS)
    try:
        with _folder(root, [PROJECT_FOLDER], owner) as tree:
            for file in files:
                _write(tree, file, read, owner)
            with _folder(tree, folder.split("/") if folder else [], owner):
                pass
    except OSError as error:
        raise MaterializeError(f"cannot write the project files: {error}") from None
    finally:
        os.close(root)
    return job_folder / PROJECT_FOLDER / folder if folder else job_folder / PROJECT_FOLDER


def _write(tree: int, file: ProjectFile, read: ReadFile, owner: tuple[int, int] | None) -> None:
    content = read(file.digest)
    if len(content) != file.size or hashlib.sha256(content).hexdigest() != file.digest:
        raise MaterializeError(f"project file '{file.path}': its content does not match its SHA-256 and size")
    *parents, name = file.path.split("/")
    with _folder(tree, parents, owner) as parent:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            descriptor = os.open(name, flags, 0o600, dir_fd=parent)
        except FileExistsError:
            raise MaterializeError(f"project file '{file.path}' is listed twice or is a folder too") from None
        with os.fdopen(descriptor, "wb") as handle:
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(content)
