"""Class 8 (readable store files) and the read-only home of class 11.

The store holds token digests, the audit trail and every project's metadata; the key files
decrypt every connection secret. Before the fix ``himalia.sqlite`` and its ``-wal``/``-shm`` were
created 0644 in a 0755 home, readable by every local account. Each check runs the control plane
in a process of its own, with the umask set as a person's shell would, and looks at the files
while the store is open (``-wal`` and ``-shm`` exist only then).

A read-only home used to end every command in a 176-line traceback hiding SQLite's "unable to
open database file"; the real CLI and the Jupyter server are started on one and must say it in
one line. Root writes through any mode, so as root they run as ``nobody`` (as
``tests/postgres.py`` runs PostgreSQL), or, when ``nobody`` cannot run this Python, on a
read-only bind mount in a mount namespace of their own.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import Ledger

MODES = "8 store file modes"
READ_ONLY_HOME = "11 read-only home"
UMASKS = (0o000, 0o002, 0o022, 0o077)
BIN = Path(sys.executable).parent
#: The home and what lies in it once a store has been written, with the mode each must have.
EXPECTED_MODES = {
    ".": 0o700,
    "himalia.sqlite": 0o600,
    "himalia.sqlite-wal": 0o600,
    "himalia.sqlite-shm": 0o600,
    "secret.key": 0o600,
    "audit.key": 0o600,
    "audit.head": 0o600,
}
#: Settings that would take keys, store or head out of the home.
HOME_OVERRIDES = ("HIMALIA_HOME", "HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY", "HIMALIA_AUDIT_HEAD")

#: Run in a process of its own: set the umask, open the control plane, write, report the modes.
SNAPSHOT = """
import json, os, sys
os.umask(int(sys.argv[2], 8))
from pathlib import Path
from himalia.identity.caller import Caller
from himalia.controlplane import ControlPlane
from himalia.wire.identity import CreateUser

home = Path(sys.argv[1])
names = json.loads(sys.argv[3])
plane = ControlPlane(home=str(home))
plane.start()
try:
    plane.users.create_user(Caller.operator("modes-test"), CreateUser(login=f"written{os.getpid()}"))
    modes = {}
    for name in names:
        path = home / name if not os.path.isabs(name) else Path(name)
        modes[name] = path.stat().st_mode & 0o777 if path.exists() else None
    print(json.dumps(modes))
finally:
    plane.stop()
"""


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in HOME_OVERRIDES}
    return {**environment, **extra}


def _modes_while_open(home: Path, umask: int, names: list[str], **extra: str) -> dict[str, int | None]:
    done = subprocess.run(
        [sys.executable, "-c", SNAPSHOT, str(home), f"{umask:o}", json.dumps(names)],
        env=_environment(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modes: dict[str, int | None] = json.loads(done.stdout.strip().splitlines()[-1])
    return modes


def _wrong(modes: dict[str, int | None], expected: dict[str, int]) -> dict[str, str]:
    return {
        name: "absent" if modes[name] is None else oct(modes[name] or 0)
        for name in expected
        if modes[name] != expected[name]
    }


@pytest.mark.parametrize("umask", UMASKS, ids=[f"umask-{u:03o}" for u in UMASKS])
def test_a_new_home_and_its_files_are_private_whatever_the_umask(umask: int, tmp_path: Path, ledger: Ledger) -> None:
    home = tmp_path / "himalia-home"
    modes = _modes_while_open(home, umask, list(EXPECTED_MODES))
    for name, expected in EXPECTED_MODES.items():
        ledger.tried(MODES, f"umask {umask:03o}: new {name}", modes[name] == expected)
    assert _wrong(modes, EXPECTED_MODES) == {}


def test_an_existing_home_left_readable_is_made_private(tmp_path: Path, ledger: Ledger) -> None:
    """A home written by an older version (0755, files 0644), its store open in another process."""
    home = tmp_path / "old-home"
    _modes_while_open(home, 0o022, [])
    holder = sqlite3.connect(home / "himalia.sqlite")  # keeps -wal and -shm in place, as a running server does
    try:
        assert holder.execute("SELECT count(*) FROM audit_entries").fetchone()[0] > 0
        home.chmod(0o755)
        for name in EXPECTED_MODES:
            if name != ".":
                (home / name).chmod(0o644)
        modes = _modes_while_open(home, 0o022, list(EXPECTED_MODES))
    finally:
        holder.close()
    for name, expected in EXPECTED_MODES.items():
        ledger.tried(MODES, f"existing 0644/0755 {name}", modes[name] == expected)
    assert _wrong(modes, EXPECTED_MODES) == {}


def test_keys_head_and_store_are_private_on_either_backend(
    backend: str, db_url: str, tmp_path: Path, ledger: Ledger
) -> None:
    """With the store of the test fixtures (on SQLite a copy made 0644, outside the home)."""
    home = tmp_path / "backend-home"
    expected = {name: mode for name, mode in EXPECTED_MODES.items() if not name.startswith("himalia.sqlite")}
    if backend == "sqlite":
        store = db_url.removeprefix("sqlite:///")
        os.chmod(store, 0o644)
        expected |= {store: 0o600, store + "-wal": 0o600, store + "-shm": 0o600}
    modes = _modes_while_open(home, 0o000, list(expected), HIMALIA_DB_URL=db_url)
    for name, mode in expected.items():
        ledger.tried(MODES, f"umask 000 on {backend}: {Path(name).name}", modes[name] == mode)
    assert _wrong(modes, expected) == {}


# -- a read-only home ------------------------------------------------------------------------------


@dataclass
class Unprivileged:
    """How to run a command that a read-only home really stops: the prefix and whose files these are."""

    prefix: list[str]
    account: str | None  # chown the home to it; None: this process's own account

    def run(self, home: Path, argv: list[str], read_only: bool, **popen: object) -> subprocess.Popen[str]:
        prefix = list(self.prefix)
        if read_only and self.account is None and os.geteuid() == 0:
            prefix = [
                "unshare",
                "-m",
                "sh",
                "-c",
                f'mount --bind "{home}" "{home}" && mount -o remount,ro,bind "{home}" "{home}" && exec "$@"',
                "sh",
            ]
        # runuser resets HOME to the account's own: set both after it, with env.
        settings = [f"HIMALIA_HOME={home}", f"HOME={home.parent / 'user-home'}"]
        command = [*prefix, "env", *settings, *argv]
        return subprocess.Popen(command, env=_environment(), text=True, **popen)  # type: ignore[call-overload]


def _can_run(prefix: list[str]) -> bool:
    try:
        return subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def unprivileged() -> Unprivileged:
    if os.geteuid() != 0:
        return Unprivileged(prefix=[], account=None)
    as_nobody = ["runuser", "-u", "nobody", "--"]
    if shutil.which("runuser") and _can_run(as_nobody):
        return Unprivileged(prefix=as_nobody, account="nobody")
    if shutil.which("unshare") and _can_run(["unshare", "-m", "--"]):
        return Unprivileged(prefix=[], account=None)  # as root, on a read-only bind mount
    pytest.skip("as root, neither `nobody` nor a mount namespace can run this Python")


@pytest.fixture
def read_only_home(unprivileged: Unprivileged) -> Iterator[Path]:
    """A home folder, its parent and a HOME for the command, all the unprivileged account's."""
    root = Path(tempfile.mkdtemp(prefix="himalia-ro-"))
    (root / "home").mkdir()
    (root / "user-home").mkdir()
    if unprivileged.account:
        for path in (root, root / "home", root / "user-home"):
            shutil.chown(path, unprivileged.account)
    yield root / "home"
    for path in root.rglob("*"):
        if path.is_dir():
            path.chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


def _make_read_only(home: Path, unprivileged: Unprivileged) -> None:
    if unprivileged.account or os.geteuid() != 0:
        home.chmod(0o500)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


COMMANDS = {
    "himalia project list": [str(BIN / "himalia"), "project", "list"],
    "himalia serve": [str(BIN / "himalia"), "serve", "--port", "0"],
    "himalia audit verify": [str(BIN / "himalia"), "audit", "verify"],
    "himalia db upgrade": [str(BIN / "himalia"), "db", "upgrade"],
}


@pytest.mark.parametrize("with_store", [False, True], ids=["empty-home", "home-with-a-store"])
def test_every_command_says_in_one_line_that_the_home_is_read_only(
    with_store: bool, read_only_home: Path, unprivileged: Unprivileged, ledger: Ledger
) -> None:
    home = read_only_home
    if with_store:
        code, stderr = _finish(
            unprivileged.run(
                home, COMMANDS["himalia project list"], False, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
            )
        )
        assert code == 0, stderr
    _make_read_only(home, unprivileged)
    started = {  # side by side: each command spends seconds importing
        name: unprivileged.run(home, argv, True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        for name, argv in COMMANDS.items()
    }
    sentence = f"error: The Himalia home {home} is read-only for "
    wrong: dict[str, tuple[int, list[str]]] = {}
    for name, process in started.items():
        code, stderr = _finish(process)
        lines = [line for line in stderr.splitlines() if line.strip()]
        one_line = code == 1 and len(lines) == 1 and lines[0].startswith(sentence)
        if not ledger.tried(READ_ONLY_HOME, f"{name} ({'with' if with_store else 'without'} a store)", one_line):
            wrong[name] = (code, lines)
    assert wrong == {}


def test_the_jupyter_extension_says_in_one_line_that_the_home_is_read_only(
    read_only_home: Path, unprivileged: Unprivileged, ledger: Ledger
) -> None:
    home = read_only_home
    _make_read_only(home, unprivileged)
    argv = [
        str(BIN / "jupyter"),
        "server",
        "--allow-root",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        f"--ServerApp.root_dir={home.parent / 'user-home'}",
    ]
    process = unprivileged.run(home, argv, True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Himalia is off in this server" in line:  # it starts after the server answers
                break
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=30)  # whatever followed, a traceback included
        lines += rest.splitlines()
    about_himalia = [line for line in lines if "Himalia" in line]
    refused = [line for line in about_himalia if str(home) in line and "read-only" in line]
    one_line = len(refused) == 1 and not any("Traceback" in line for line in lines)
    assert ledger.tried(READ_ONLY_HOME, "jupyter server with the extension", one_line), "\n".join(lines)
