"""``himalia backup`` of a store being written, ``himalia restore`` into another home, and the refusals."""

import shutil
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.scenarios.uptime import UptimeLog
from himalia.store.orm import utcnow
from himalia.wire.common import Variables

from ..conftest import AUDIT_KEY, SECRET_KEY, make_plane


@pytest.fixture(autouse=True)
def _no_environment_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HIMALIA_HOME", "HIMALIA_DB_URL", "HIMALIA_CONFIG", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY"):
        monkeypatch.delenv(variable, raising=False)


def himalia(home: Path, *arguments: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *arguments])


def live_plane(home: Path) -> ControlPlane:
    return make_plane(home, f"sqlite:///{home / 'himalia.sqlite'}")


def test_a_store_being_written_is_backed_up_and_restores_with_its_audit_chain_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    plane = live_plane(home)
    writing, stop = threading.Event(), threading.Event()

    def write() -> None:  # audited writes until the backup has ended
        index = 0
        while not stop.is_set():
            plane.variables.set_instance(Caller.operator(), Variables(variables={"n": index}))
            index += 1
            if index == 3:
                writing.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(timeout=30), "the writer did not start"
        backup = tmp_path / "store.sqlite"
        result = himalia(home, "backup", "-o", str(backup))
    finally:
        stop.set()
        writer.join()
        plane.stop()
    assert result.exit_code == 0, result.output
    assert f"to {backup}" in result.stdout and f"revision {plane.db.head_revision()}" in result.stdout
    assert "The keys are not in the backup" in result.stdout and str(home / "secret.key") in result.stdout
    with sqlite3.connect(backup) as copy:
        names = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
    assert "audit_entries" in names and not any(name.endswith(".key") for name in names)

    restored = tmp_path / "restored"
    monkeypatch.setenv("HIMALIA_SECRET_KEYS", SECRET_KEY)  # the keys travel apart from the backup
    monkeypatch.setenv("HIMALIA_AUDIT_KEY", AUDIT_KEY)
    result = himalia(restored, "restore", str(backup))
    assert result.exit_code == 0, result.output
    assert "Restored" in result.stdout
    verified = himalia(restored, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "chain intact" in verified.stdout


def test_refusals_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plane = live_plane(home)
    backup = tmp_path / "store.sqlite"
    try:
        assert himalia(home, "backup", "-o", str(backup)).exit_code == 0
        again = himalia(home, "backup", "-o", str(backup))
        assert (again.exit_code, again.stderr) == (1, f"error: {backup} exists: name another file with -o.\n")

        # A platform running on the target store: its scheduler beat a moment ago.
        UptimeLog(plane.db, "host:1:abc").begin(utcnow() - timedelta(seconds=5))
        running = himalia(home, "restore", str(backup))
        assert running.exit_code == 1
        assert running.stderr.startswith("error: A control plane is running on this store (host:1:abc)")
    finally:
        plane.stop()

    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("hello")
    refused = himalia(tmp_path / "other", "restore", str(not_a_store))
    assert refused.exit_code == 1 and "is not a Himalia store backup" in refused.stderr

    newer = tmp_path / "newer.sqlite"
    shutil.copy(backup, newer)
    with sqlite3.connect(newer) as copy:
        copy.execute("UPDATE alembic_version SET version_num = '9999'")
    refused = himalia(tmp_path / "other", "restore", str(newer))
    assert refused.exit_code == 1 and "is at revision 9999, newer than this Himalia's" in refused.stderr
