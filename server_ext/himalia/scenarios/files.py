"""The project files a scenario's notebooks run beside, snapshotted when it is saved.

A notebook that does ``from utils import summarize`` and ``pd.read_csv("sales.csv")`` needs the
files next to it. Saving a scenario with notebook steps therefore collects a **file tree**:

- its root is the folder of the scenario's first notebook, below the folder notebook paths are
  relative to (the ``--notebooks`` folder of ``himalia scenario apply``; ``ControlPlane.notebook_root``,
  the Jupyter server's root in standalone mode, for the lab and the API), when that notebook is
  there (a notebook only sent in the request comes without files);
- by default the whole tree below it; with ``files:`` in the YAML, only the files matching those
  globs (``.gitignore`` syntax, relative to the root: ``*.py``, ``data/``, ``lib/**/*.csv``);
- never ``.git``, ``.ipynb_checkpoints``, ``__pycache__``, caches, virtual environments (``.venv``,
  ``venv``, any folder holding ``pyvenv.cfg``), ``node_modules``, nor what the root's
  ``.himaliaignore`` (``.gitignore`` syntax) lists, nor the control plane's home, store or keys;
- regular files only: a link (to a file or a folder, inside or out) is left out, so nothing
  outside the root is ever read;
- within ``ProjectFiles.max_files``, ``max_file_bytes`` and ``max_total_bytes``: a bigger tree is
  refused, naming the limit and its setting.

Each file's bytes are stored once (``project_file_blobs``, by SHA-256, shared by every revision
and scenario), the tree as its sorted entries (``file_trees``, by the SHA-256 of those). The
scenario records its tree, each run the tree it used, and a run writes it in its job folder
(:func:`himalia.execution.files.materialize`).
"""

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pathspec
from sqlalchemy import select
from sqlalchemy.orm import Session
from traitlets import Int
from traitlets.config import LoggingConfigurable

from himalia.core.errors import InvalidInput
from himalia.store.db import Database
from himalia.store.orm import FileTree, ProjectFileBlob
from himalia.wire.scenarios import FileTreeSummary
from himalia.wire.steps import ProjectFile, project_path_problem

#: Folders never snapshotted: version control, Jupyter's checkpoints, caches, environments.
EXCLUDED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".ipynb_checkpoints",
        "__pycache__",
        ".cache",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        "node_modules",
        # Credentials belong in connections; these folders hold a person's own, never a project's.
        ".ssh",
        ".aws",
        ".azure",
        ".gnupg",
        ".kube",
        ".docker",
        ".config",
    }
)
IGNORE_FILE = ".himaliaignore"
#: How many entries (files and folders, ignored ones included) a walk looks at per file it may keep.
WALK_FACTOR = 20
MB = 1024 * 1024


class ProjectFiles(LoggingConfigurable):
    """How big a scenario's project files may be (``c.ProjectFiles.*``); every file is read whole
    into the store, so the limits bound what one save may cost."""

    max_files = Int(1000, min=1, config=True, help="The most project files a scenario may snapshot.")
    max_file_bytes = Int(20 * MB, min=1, config=True, help="The largest project file a scenario may snapshot.")
    max_total_bytes = Int(100 * MB, min=1, config=True, help="The most bytes of project files one scenario snapshots.")

    def __init__(self, protected: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init__(**kwargs)
        #: Real paths never read (the control plane's home, its store's files, key files).
        self.protected = tuple(Path(path) for path in protected)

    def collect(self, root: Path, first_notebook: str, globs: list[str] | None) -> dict[str, bytes]:
        """The files of the tree of ``first_notebook``'s folder below ``root``: path -> bytes.

        Only a notebook that is in ``root`` has files there: a notebook only sent with the request
        (an API client's own copy) has none, so a save never snapshots a folder of this server
        that holds no notebook of the scenario."""
        if PurePosixPath(first_notebook).suffix != ".ipynb":
            raise InvalidInput(f"notebook: '{first_notebook[:200]}' is not a notebook (.ipynb).", field="notebook")
        top = root / PurePosixPath(first_notebook).parent
        if not (root / first_notebook).is_file():
            if globs is None:
                return {}  # a notebook sent with the request, from a folder this server does not have
            raise InvalidInput(
                f"files: the globs are read beside {first_notebook}, which is not in {root}.", field="files"
            )
        if not top.resolve().is_relative_to(root.resolve()) or not top.is_dir() or self._is_protected(top):
            raise InvalidInput(f"files: the notebook's folder '{top}' cannot be read.", field="files")
        ignored = _spec(_read_ignore(top))
        wanted = _spec(globs) if globs is not None else None
        found: dict[str, bytes] = {}
        total = 0
        for path, absolute in self._walk(top, ignored):
            if ignored.match_file(path) or (wanted is not None and not wanted.match_file(path)):
                continue
            problem = project_path_problem(path)
            if problem:
                raise InvalidInput(f"files: cannot snapshot '{path[:200]!r}': {problem}.", field="files")
            if len(found) >= self.max_files:
                raise InvalidInput(
                    f"files: the notebook's folder holds more than {self.max_files} files "
                    f"(ProjectFiles.max_files): list those it needs under 'files:' or in {IGNORE_FILE}.",
                    field="files",
                )
            content = self._read(absolute, path, self.max_total_bytes - total)
            total += len(content)
            found[path] = content
        return found

    def _walk(self, top: Path, ignored: pathspec.PathSpec) -> list[tuple[str, Path]]:
        """Every regular file below ``top`` (relative posix path, absolute path), sorted, without
        following or keeping links, without entering excluded, ignored or protected folders."""
        files: list[tuple[str, Path]] = []
        pending = [(top, "")]
        seen, bound = 0, self.max_files * WALK_FACTOR
        while pending:
            folder, prefix = pending.pop()
            if self._is_protected(folder) or (folder / "pyvenv.cfg").exists():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > bound:
                        raise InvalidInput(
                            f"files: the notebook's folder holds more than {bound} files and folders to look "
                            f"through ({WALK_FACTOR} x ProjectFiles.max_files): move the notebook to a folder "
                            f"of its own, or leave folders out with {IGNORE_FILE}.",
                            field="files",
                        )
                    relative = f"{prefix}{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in EXCLUDED_FOLDERS and not ignored.match_file(relative + "/"):
                            pending.append((Path(entry.path), relative + "/"))
                    elif entry.is_file(follow_symlinks=False) and not self._is_protected(Path(entry.path)):
                        files.append((relative, Path(entry.path)))
        return sorted(files)

    def _is_protected(self, path: Path) -> bool:
        real = path.resolve()
        return any(real == protected or real.is_relative_to(protected) for protected in self.protected)

    def accept(self, sent: Mapping[str, bytes]) -> dict[str, bytes]:
        """Project files a save carries (hub mode: read by the person's own server), held to the
        same limits as those read here; their paths were checked when the request was parsed."""
        if len(sent) > self.max_files:
            raise InvalidInput(
                f"project_files: {len(sent)} files, more than {self.max_files} (ProjectFiles.max_files).",
                field="project_files",
            )
        for path, content in sent.items():
            if len(content) > self.max_file_bytes:
                raise InvalidInput(
                    f"project_files: '{path[:200]}' has {len(content)} bytes, more than {self.max_file_bytes} "
                    "(ProjectFiles.max_file_bytes).",
                    field="project_files",
                )
        total = sum(len(content) for content in sent.values())
        if total > self.max_total_bytes:
            raise InvalidInput(
                f"project_files: {total} bytes, more than {self.max_total_bytes} (ProjectFiles.max_total_bytes).",
                field="project_files",
            )
        return dict(sorted(sent.items()))

    def _read(self, absolute: Path, path: str, budget: int) -> bytes:
        """A regular file's bytes, opened without following a link planted since the walk."""
        try:
            descriptor = os.open(absolute, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            raise InvalidInput(f"files: cannot read '{path}': {error.strerror}.", field="files") from None
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise InvalidInput(f"files: '{path}' is not a regular file.", field="files")
            if status.st_size > self.max_file_bytes:
                raise InvalidInput(
                    f"files: '{path}' has {status.st_size} bytes, more than {self.max_file_bytes} "
                    f"(ProjectFiles.max_file_bytes): leave it out with {IGNORE_FILE} or 'files:'.",
                    field="files",
                )
            content = handle.read(min(self.max_file_bytes, budget) + 1)
        if len(content) > budget:
            raise InvalidInput(
                f"files: the project files hold more than {self.max_total_bytes} bytes "
                f"(ProjectFiles.max_total_bytes): list those the notebooks need under 'files:' or in {IGNORE_FILE}.",
                field="files",
            )
        if len(content) > self.max_file_bytes:
            raise InvalidInput(
                f"files: '{path}' grew past {self.max_file_bytes} bytes (ProjectFiles.max_file_bytes).", field="files"
            )
        return content


def _read_ignore(top: Path) -> list[str]:
    ignore = top / IGNORE_FILE
    if ignore.is_symlink() or not ignore.is_file():
        return []
    return ignore.read_text(encoding="utf-8", errors="replace").splitlines()


def _spec(lines: list[str]) -> pathspec.PathSpec:
    # Python's own matching: pathspec would pick RE2 where it is installed (row conditions need it),
    # which cannot match a file name that is not UTF-8; such a name is refused by name, not by a crash.
    return pathspec.GitIgnoreSpec.from_lines(lines, backend="simple")


def store_tree(session: Session, files: dict[str, bytes]) -> FileTree:
    """The tree of these files, each file's bytes stored once across every tree."""
    entries = sorted((path, hashlib.sha256(content).hexdigest(), len(content)) for path, content in files.items())
    digests = {digest for _, digest, _ in entries}
    query = select(ProjectFileBlob.digest).where(ProjectFileBlob.digest.in_(digests))
    known = set(session.scalars(query)) if digests else set()
    for path, digest, size in entries:
        if digest not in known:
            session.add(ProjectFileBlob(digest=digest, size=size, content=files[path]))
            known.add(digest)
    listed = [list(entry) for entry in entries]
    digest = hashlib.sha256(json.dumps(listed, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    tree = session.get(FileTree, digest)
    if tree is None:
        total = sum(size for _, _, size in entries)
        tree = FileTree(digest=digest, entries=listed, file_count=len(entries), total_bytes=total)
        session.add(tree)
    session.flush()
    return tree


def summary(tree: FileTree) -> FileTreeSummary:
    return FileTreeSummary(digest=tree.digest, files=tree.file_count, bytes=tree.total_bytes)


def tree_entries(session: Session, digest: str | None) -> list[ProjectFile]:
    """A stored tree's entries as jobs carry them (none without a tree)."""
    if digest is None:
        return []
    tree = session.get_one(FileTree, digest)
    return [ProjectFile(path=path, digest=sha, size=size) for path, sha, size in tree.entries]


def read_project_file(db: Database, digest: str) -> bytes:
    """A project file's bytes by SHA-256: what executors are given to write a job's files."""
    with db.read() as session:
        blob = session.get(ProjectFileBlob, digest)
        if blob is None:
            raise LookupError(f"no project file {digest[:12]} in the store")
        return blob.content


def notebook_folder(first_notebook: str, notebook: str) -> str:
    """Where ``notebook`` runs in the tree of ``first_notebook``'s folder: its own folder when it is
    inside the tree, else the tree's root."""
    top, own = PurePosixPath(first_notebook).parent, PurePosixPath(notebook).parent
    if own == top or not own.is_relative_to(top):
        return ""
    return own.relative_to(top).as_posix()
