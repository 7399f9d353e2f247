"""Class 5, one machine, one OS account: scenario kernels run as their run-as user's own account.

The kernel of a notebook step tries what an analyst's notebook tried on the shared account: read
the control plane's home (the store, its WAL, a key file, the audit head), list it, plant a file in
it, read the control plane's environment through ``/proc``; a second person's kernel tries the
first one's job folder while it runs. Each attempt is counted in the ledger; controls (the step's
own folder, a world-readable file) must succeed, so a kernel that could do nothing at all fails.
Saving notebook steps needs ``write_isolated_code``; code that runs inside the control plane
(``set_variables`` code, custom Python checks) still needs ``write_unsafe_code``.
"""

import asyncio
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from himalia.controlplane import ControlPlane
from himalia.core.errors import Forbidden
from himalia.core.permissions import GlobalPermission as G
from himalia.core.private_files import create_private_file
from himalia.execution.accounts import (
    IsolationUnavailable,
    OsAccount,
    UserIsolation,
    account_name,
    find_account,
    read_produced,
)
from himalia.execution.files import PROJECT_FOLDER
from himalia.identity.caller import Caller
from himalia.wire.data import CheckSpec
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateGroup, CreateUser
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI, make_plane
from ..scenarios.conftest import log_of, notebook, saved, start, start_engine, wait
from .conftest import Ledger

CLASS = "5 one OS account"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as other OS accounts needs root")

#: What the probe notebook does: each attempt of ``targets`` ([kind, path]), then its identity.
PROBE = """
import json, os, time
report = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),
          "env": dict(os.environ), "attempts": []}
report["umask"] = os.umask(0o077)
for kind, path in json.loads(targets):
    try:
        if kind == "read":
            with open(path, "rb") as handle:
                handle.read(16)
        elif kind == "list":
            os.listdir(path)
        else:
            with open(path, "w") as handle:
                handle.write("planted by a kernel")
        report["attempts"].append([kind, path, None])
    except OSError as error:
        report["attempts"].append([kind, path, type(error).__name__])
with open("secret.txt", "w") as handle:
    handle.write("only mine")
print("PROBE " + json.dumps(report))
"""
WAIT = """
deadline = time.monotonic() + 120
while wait_for and not os.path.exists(wait_for) and time.monotonic() < deadline:
    time.sleep(0.2)
"""
PROBE_NOTEBOOK = notebook(PROBE, WAIT, parameters='targets: str = "[]"\nwait_for: str = ""')


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plane(db_url: str) -> Iterator[ControlPlane]:
    """A control plane whose home lies where any account could reach it if its modes allowed
    (pytest's own folders are root's alone, which would hide what the home's modes do), with its
    store inside the home, as `make demo` has it."""
    base = Path(tempfile.mkdtemp(prefix="himalia-isolation-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    home = base / "home"
    home.mkdir()
    store = home / "himalia.sqlite"
    shutil.copyfile(str(make_url(db_url).database), store)
    control_plane = make_plane(home, f"sqlite:///{store}")
    yield control_plane
    control_plane.stop()
    shutil.rmtree(base, ignore_errors=True)


def add_notebook_writers(plane: ControlPlane, *logins: str) -> None:
    """People who may write ALPHA's content and save notebook steps, nothing more."""
    op = Caller.operator("test-setup", client_address="test")
    plane.users.create_group(op, CreateGroup(name="notebook_writers", permissions=[G.WRITE_ISOLATED_CODE]))
    for login in logins:
        plane.users.create_user(
            op, CreateUser(login=login, email=f"{login}@example.org", groups=["contributors", "notebook_writers"])
        )


def probe_scenario(api: LiveAPI, scenario: str, run_as: str) -> None:
    definition = {
        "id": scenario,
        "name": f"Probe as {run_as}",
        "run_as": run_as,
        "steps": [{"name": "Probe", "type": "notebook", "notebook": "probe.ipynb"}],
    }
    saved(api, definition, {"probe.ipynb": PROBE_NOTEBOOK})


def report_of(api: LiveAPI, scenario: str, run: int) -> dict[str, Any]:
    found = re.search(r"PROBE (\{.*\})", log_of(api, scenario, run))
    assert found, log_of(api, scenario, run)
    report: dict[str, Any] = json.loads(found.group(1))
    return report


def job_folder_of(root: Path, run: int, timeout: float = 120) -> Path:
    """The running step's folder, once its kernel has written its secret in its project folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in root.glob(f"run-{run}-*"):
            if (folder / PROJECT_FOLDER / "secret.txt").exists():
                return folder
        time.sleep(0.2)
    raise AssertionError(f"run {run} made no job folder with a secret under {root}")


@needs_root
def test_a_scenario_kernel_is_its_users_account_and_reaches_neither_the_platform_nor_others(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIMALIA_CONTROL_PLANE_MARKER", "seen-by-the-kernel")  # any variable of the plane's
    home = Path(plane.home)
    create_private_file(home / "secret.key", "a Fernet key, as the control plane keeps one\n")
    add_notebook_writers(plane, "ana", "ben")
    runner = start_engine(plane, api, tmp_path, warm=0)
    assert plane.engine is not None
    isolation: UserIsolation = plane.engine.executor.isolation  # type: ignore[attr-defined]
    assert isolation.isolated
    probe_scenario(runner, "probe-ana", "ana")
    probe_scenario(runner, "probe-ben", "ben")

    platform_files = sorted(str(path) for path in home.rglob("*") if path.is_file())
    assert {"himalia.sqlite", "secret.key"} <= {Path(path).name for path in platform_files}
    attacks = [["read", path] for path in platform_files]
    attacks += [["list", str(home)], ["write", str(home / "planted.pth")], ["read", f"/proc/{os.getpid()}/environ"]]
    controls = [["read", "/etc/passwd"], ["write", "mine.txt"]]
    first = start(runner, "probe-ana", parameters={"targets": json.dumps(attacks + controls), "wait_for": "done"})
    folder = job_folder_of(Path(isolation.job_root), first)

    ana = find_account(account_name(isolation.account_template, "ana"))
    assert ana is not None
    held = folder.stat()
    assert (held.st_uid, stat.S_IMODE(held.st_mode)) == (ana.uid, 0o700)

    workdir = folder / PROJECT_FOLDER
    others = [["list", str(folder)], ["read", str(workdir / "secret.txt")], ["write", str(workdir / "planted")]]
    second = start(runner, "probe-ben", parameters={"targets": json.dumps(others)})
    assert wait(runner, "probe-ben", second, timeout=120)["state"] == "succeeded"
    (workdir / "done").touch()
    ben = find_account(account_name(isolation.account_template, "ben"))
    assert ben is not None and ben.uid != ana.uid
    assert wait(runner, "probe-ana", first, timeout=120)["state"] == "succeeded"

    mine, theirs = report_of(runner, "probe-ana", first), report_of(runner, "probe-ben", second)
    assert (mine["uid"], mine["gid"], theirs["uid"]) == (ana.uid, ana.gid, ben.uid)
    assert 0 not in (mine["uid"], mine["gid"]) and set(mine["groups"]) <= {ana.gid}
    assert mine["umask"] == 0o077 and mine["cwd"] == f"./{PROJECT_FOLDER}"  # the log shows the job folder as .
    assert mine["env"]["HOME"] == "~" and mine["env"]["USER"] == ana.name  # the log shows its home as ~
    leaked = [name for name in mine["env"] if name.startswith("HIMALIA_CONTROL_PLANE") or name == "HIMALIA_DB_URL"]
    assert ledger.tried(CLASS, "the control plane's environment variables", not leaked), leaked

    outcomes = {(kind, path): error for kind, path, error in mine["attempts"] + theirs["attempts"]}
    for kind, path in attacks + others:
        assert ledger.tried(CLASS, f"{kind} {path}", outcomes[(kind, path)] is not None), (kind, path)
    assert [outcomes[(kind, path)] for kind, path in controls] == [None, None]  # the kernel did run its code
    assert not (home / "planted.pth").exists() and not (workdir / "planted").exists()
    assert not folder.exists()  # the step's folder goes with it


def test_account_names_are_valid_and_never_shared() -> None:
    logins = ["ana", "Bob.Smith", "bob-smith", "bob.smith", "a@b.example", "x" * 90, "x" * 91]
    names = [account_name("himalia-{login}", login) for login in logins]
    assert names[0] == "himalia-ana" and names[2] == "himalia-bob-smith"
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name) for name in names)


def test_a_plane_that_cannot_switch_accounts_refuses_notebooks_in_a_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolation = UserIsolation(home=str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(IsolationUnavailable, match=r"needs the control plane to run as root.*shared_account_unsafe"):
        isolation.for_login("ana")
    assert UserIsolation(home=str(tmp_path), mode="shared_account_unsafe").for_login("ana") is None


@needs_root
def test_a_missing_account_is_named_when_creating_accounts_is_off(tmp_path: Path) -> None:
    isolation = UserIsolation(home=str(tmp_path), create_accounts=False, account_template="himalia-absent-{login}")
    with pytest.raises(IsolationUnavailable, match="'himalia-absent-nobody' does not exist"):
        isolation.for_login("nobody")


@needs_root
def test_results_are_never_read_through_a_link_or_from_a_file_not_the_accounts(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    account = OsAccount("nobody", nobody.pw_uid, nobody.pw_gid, Path("/nonexistent"))
    secret = tmp_path / "secret.key"
    secret.write_text("the plane's key")
    (tmp_path / "linked.html").symlink_to(secret)
    os.link(secret, tmp_path / "hard.html")
    own = tmp_path / "report.html"
    own.write_text("<html>")
    os.chown(own, account.uid, account.gid)
    os.mkfifo(tmp_path / "pipe.html")
    assert read_produced(tmp_path, "report.html", account) == b"<html>"
    for name in ("linked.html", "hard.html", "secret.key", "pipe.html", "missing.html"):
        assert read_produced(tmp_path, name, account) is None, name


def test_job_folders_of_stopped_control_planes_are_removed(tmp_path: Path) -> None:
    isolation = UserIsolation(mode="shared_account_unsafe", job_root=str(tmp_path))
    running = isolation.job_folder(None, prefix="run-1-")  # this control plane's, still in use
    ended = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    left = tmp_path / f"run-2-p{int(ended.stdout)}-k2j1"  # a crashed control plane's
    left.mkdir()
    (left / "executed.ipynb").write_text("{}")
    assert isolation.reap_job_folders() == [left]
    assert running.is_dir() and not left.exists()


def test_notebooks_need_write_isolated_code_and_control_plane_code_write_unsafe_code(
    plane: ControlPlane, ledger: Ledger
) -> None:
    add_notebook_writers(plane, "ana")
    contributor, ana = plane.users.caller_for("contributor"), plane.users.caller_for("ana")
    assert not ana.has(G.WRITE_UNSAFE_CODE)
    notebook_step = {"name": "Nb", "type": "notebook", "notebook": "n.ipynb"}
    code_step = {"name": "Code", "type": "set_variables", "code": "def variables(c):\n    return {}"}

    def save(caller: Caller, scenario: str, step: dict[str, Any]) -> str | None:
        definition = ScenarioDefinition.model_validate({"id": scenario, "name": scenario, "steps": [step]})
        spec = SaveScenario(definition=definition, notebooks={"n.ipynb": notebook("print(1)")})
        try:
            plane.scenarios.save_scenario(caller, "ALPHA", spec)
        except Forbidden as error:
            return error.message
        return None

    refused = save(contributor, "nb", notebook_step)
    assert ledger.tried(CLASS, "notebook step without write_isolated_code", refused is not None)
    assert refused is not None and "'write_isolated_code'" in refused
    assert save(ana, "nb", notebook_step) is None
    refused = save(ana, "code", code_step)
    assert ledger.tried(CLASS, "set_variables code with write_isolated_code only", refused is not None)
    assert refused is not None and "'write_unsafe_code'" in refused
    custom = CheckSpec(name="Mine", type="custom_python", code="def check(df):\n    return 'OK'")
    with pytest.raises(Forbidden, match="write_unsafe_code") as check_refused:
        plane.checks.save_check(ana, "ALPHA", "transactions", custom)
    ledger.tried(CLASS, "custom Python check with write_isolated_code only", check_refused.value is not None)
    assert plane.users.caller_for("admin").has(G.WRITE_ISOLATED_CODE)


def test_a_shared_account_needs_write_unsafe_code_to_run_notebooks(
    plane: ControlPlane, api: LiveAPI, tmp_path: Path, ledger: Ledger
) -> None:
    add_notebook_writers(plane, "ana")
    plane.config.UserIsolation.mode = "shared_account_unsafe"
    runner = start_engine(plane, api, tmp_path, warm=0)
    assert plane.engine is not None and not plane.engine.executor.isolates_code
    probe_scenario(runner, "probe-ana", "ana")
    run = wait(runner, "probe-ana", start(runner, "probe-ana"), timeout=60)
    refused = run["state"] == "failed" and "'write_unsafe_code'" in run["steps"][0]["message"]
    assert ledger.tried(CLASS, "notebook on the shared account without write_unsafe_code", refused), run


def hub_spawner(login: str) -> Any:
    from himalia.hub.spawners import LocalTierSpawner

    user = SimpleNamespace(name=login, url=f"/user/{login}/", id=1, orm_user=None, settings={}, admin=False)
    return LocalTierSpawner(user=user, name="", orm_spawner=None, hub=None)


@needs_root
def test_a_hub_server_runs_as_its_persons_account(ledger: Ledger) -> None:
    """The LocalTierSpawner's process switch, as JupyterHub applies it to a server it starts."""
    state = Path(tempfile.mkdtemp(prefix="himalia-hub-state-", dir="/var/tmp"))
    os.chmod(state, 0o755)  # passable: only the files' own modes protect them
    secret, public = state / "jupyterhub_cookie_secret", state / "readme.txt"
    secret.write_text("the hub's cookie secret")
    os.chmod(secret, 0o600)
    public.write_text("anyone may read this\n")
    os.chmod(public, 0o644)
    spawned = {}
    try:
        for login in ("ana", "ben"):
            spawner = hub_spawner(login)
            spawner.account = UserIsolation().for_login(login)
            probe = f"id -u; id -G; pwd; umask; echo $HOME; cat {public}; cat {secret} 2>/dev/null || echo refused"
            done = subprocess.run(
                ["sh", "-c", probe],
                preexec_fn=spawner.make_preexec_fn(login),
                env=spawner.user_env({}),
                capture_output=True,
                text=True,
                check=True,
            )
            spawned[login] = (spawner.account, done.stdout.split("\n"))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    (ana, seen), (ben, seen_by_ben) = spawned["ana"], spawned["ben"]
    assert seen[:6] == [str(ana.uid), str(ana.gid), str(ana.home), "0077", str(ana.home), "anyone may read this"]
    assert seen_by_ben[0] == str(ben.uid) != str(ana.uid)
    for login, (_, lines) in spawned.items():
        assert ledger.tried(CLASS, f"{login}'s server reads the hub's cookie secret", lines[6] == "refused"), lines


def test_a_hub_that_cannot_switch_accounts_refuses_the_server_in_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    from tornado import web

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv("HIMALIA_USER_ISOLATION", raising=False)
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(hub_spawner("ana").start())
    assert refused.value.status_code == 503 and "shared_account_unsafe" in str(refused.value.log_message)
