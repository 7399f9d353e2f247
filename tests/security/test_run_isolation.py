"""What a scenario kernel leaves behind: no live token in what readers see, no process after its plane.

Two attacks of class 10. A notebook that prints its environment, in every way a notebook can,
must leave no token value in the run log, the executed notebook or the HTML report, and never
see the control plane's own credentials. And ``kill -9`` of the control plane must take its
workers and kernels with it, or, when even the worker was killed, leave them to be killed by
the next control plane that starts on the same home. Everything runs for real: papermill,
ipykernel, the local executor, and control planes in child processes.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from himalia.controlplane import ControlPlane
from himalia.execution.base import inherited_environment, is_secret_name
from himalia.execution.local import LocalExecutor
from himalia.scenarios.redaction import Redactor
from himalia.wire.steps import StepJob

from ..conftest import LiveAPI
from .conftest import Ledger

TOKENS = "10 token in run output"
ORPHANS = "10 orphaned processes"
BASE = "/projects/ALPHA/scenarios"
#: Credentials of the control plane's own environment, which no kernel may inherit.
PLATFORM_SECRETS = {
    "JUPYTERHUB_API_TOKEN": "hub-service-token-4f2a9c1e7b3d",
    "HIMALIA_WEBHOOK_KEY": "webhook-signing-key-91ab77",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key-zz81",
}


def notebook(*cells: str) -> str:
    node = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(node)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


# -- tokens in run output --------------------------------------------------------------------------

#: Each cell prints the run's token (or a credential) one way; ``seen`` lets the test know the value.
LEAKS = {
    "print": "print('token:', os.environ['HIMALIA_TOKEN'])",
    "environment repr": "print(os.environ)",
    "environment as JSON": "print(json.dumps(dict(os.environ)))",
    "shell env": "get_ipython().system('env')",
    "stderr": "sys.stderr.write('on stderr ' + os.environ['HIMALIA_TOKEN'] + '\\n')",
    "logging": "logging.getLogger('leak').warning('header Authorization: token %s', os.environ['HIMALIA_TOKEN'])",
    "rich HTML output": "display(HTML('<b>' + os.environ['HIMALIA_TOKEN'] + '</b>'))",
    "expression value": "os.environ['HIMALIA_TOKEN']",
    "a token-shaped string": "print('pasted hml_' + 'Q' * 43)",
    "platform credentials": "print({name: os.environ.get(name) for name in PLATFORM})",
    "in an error": "raise RuntimeError('cannot go on with ' + os.environ['HIMALIA_TOKEN'])",
}


@pytest.fixture
def leaky_run(plane: ControlPlane, api: LiveAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in PLATFORM_SECRETS.items():
        monkeypatch.setenv(name, value)
    plane.api_url = api.base
    plane.notebook_root = str(tmp_path)
    plane.config.LocalExecutor.warm_workers = 1
    plane.start_engine(schedule=False)
    yield api


def test_a_notebook_printing_its_environment_leaves_no_token_in_log_notebook_or_report(
    leaky_run: LiveAPI, ledger: Ledger
) -> None:
    api = leaky_run
    # The kernel may run as another OS account: it tells the test what it got through the log,
    # reversed (which no redaction could know) and by names only.
    setup = (
        "import json, logging, os, sys\n"
        "from IPython.display import HTML, display\n"
        f"PLATFORM = {sorted(PLATFORM_SECRETS)!r}\n"
        "print('reversed token:', os.environ['HIMALIA_TOKEN'][::-1])\n"
        "print('environment names:', json.dumps(sorted(os.environ)))"
    )
    source = json.loads(notebook(setup, *LEAKS.values()))
    definition = {
        "id": "leaky",
        "name": "Leaky",
        "steps": [{"name": "Print", "type": "notebook", "notebook": "leaky.ipynb"}],
    }
    reply = api.request("PUT", f"{BASE}/leaky", json={"definition": definition, "notebooks": {"leaky.ipynb": source}})
    assert reply.status_code == 200, reply.text
    run_id = api.request("POST", f"{BASE}/leaky/run", json={}).json()["id"]
    deadline = time.monotonic() + 120
    while (run := api.request("GET", f"{BASE}/leaky/runs/{run_id}", "reader").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)

    log = api.request("GET", f"{BASE}/leaky/runs/{run_id}/log", "reader").text
    token = re.search(r"reversed token: (\S+)", log)[1][::-1]  # type: ignore[index]
    names = json.loads(re.search(r"environment names: (\[.*\])", log)[1])  # type: ignore[index]
    assert token.startswith("hml_") and len(token) > 40
    assert not set(PLATFORM_SECRETS) & set(names), "the kernel inherited the platform's credentials"
    stored = {
        "log": log,
        "notebook": api.request("GET", f"{BASE}/leaky/runs/{run_id}/notebook", "reader").text,
        "report": api.request("GET", f"{BASE}/leaky/runs/{run_id}/report", "reader").text,
        "run": json.dumps(run),
    }
    assert run["state"] == "failed" and "cannot go on with ***" in run["steps"][0]["message"], run
    assert "on stderr ***" in stored["log"] and "<b>***</b>" in stored["notebook"]
    assert "pasted ***" in stored["log"] and "token: ***" in stored["report"]
    secrets = [token, token[4:24], *PLATFORM_SECRETS.values()]
    for where, text in stored.items():
        leaked = [secret for secret in secrets if secret in text]
        assert ledger.tried(TOKENS, f"{len(LEAKS)} leaks, read in the {where}", refused=not leaked), (where, leaked)
    for case in LEAKS:
        ledger.tried(TOKENS, case, refused=token not in stored["log"] + stored["notebook"] + stored["report"])


def test_redaction_spellings_and_what_is_not_masked() -> None:
    token = "hml_" + "a1B2-c3_D" * 5
    quoted = 'pw"with<odd>&chars'
    redactor = Redactor([token, quoted, "short"])
    assert redactor.text(f"x {token} y") == "x *** y"
    assert redactor.text(json.dumps({"v": quoted})) == '{"v": "***"}'
    assert redactor.text("<td>pw&quot;with&lt;odd&gt;&amp;chars</td>") == "<td>***</td>"
    assert redactor.text("a short value stays") == "a short value stays"  # shorter than 8: not masked
    assert redactor.data(b"\xff" + token.encode()) == b"\xff***"


def test_workers_inherit_no_credential_of_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**PLATFORM_SECRETS, "HIMALIA_SMTP_PASSWORD": "x" * 9, "PGPASSWORD": "y" * 9}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    inherited = inherited_environment()
    assert not {name for name in inherited if is_secret_name(name)}
    assert "JUPYTERHUB_API_TOKEN" not in inherited and "HIMALIA_SMTP_PASSWORD" not in inherited
    assert inherited["TOKENIZERS_PARALLELISM"] == "false" and inherited["PATH"] == os.environ["PATH"]


# -- processes that outlive their control plane ----------------------------------------------------

CONTROL_PLANE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from himalia.execution.local import LocalExecutor
    from himalia.wire.steps import StepJob

    home, content, warm = Path(sys.argv[1]), Path(sys.argv[2]).read_text(), int(sys.argv[3])
    executor = LocalExecutor(work_root=home / "work", warm_workers=warm)
    job = StepJob(run_id=1, step="Sleep", notebook="s.ipynb", content=content, parameters={}, env={})
    handle = executor.start(job, lambda line: None)
    print(json.dumps({"worker": handle.process.pid}), flush=True)
    time.sleep(600)
    """
)


def sleeper(pidfile: Path) -> str:
    """A notebook whose kernel starts a child and sleeps, after writing both pids to ``pidfile``."""
    return notebook(
        "import json, os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pidfile)!r} + '.tmp', 'w').write(json.dumps([os.getpid(), child.pid]))\n"
        f"os.replace({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\n"
        "time.sleep(300)"
    )


def recorded(home: Path) -> set[int]:
    """The pids the control planes of ``home`` recorded."""
    pids: set[int] = set()
    for path in (home / "run-processes").glob("*.json"):
        pids |= {mark["pid"] for mark in json.loads(path.read_text())["processes"]}
    return pids


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[Any]:
    """Start a control plane's executor in a child process running a sleeping notebook step."""
    started: list[subprocess.Popen[str]] = []

    def start(warm: int = 0) -> tuple[subprocess.Popen[str], int, int, int]:
        home, pidfile = tmp_path / "home", tmp_path / f"pids-{len(started)}.json"
        content = tmp_path / "sleeper.ipynb"
        content.write_text(sleeper(pidfile))
        script = tmp_path / "control_plane.py"
        script.write_text(CONTROL_PLANE)
        process = subprocess.Popen(
            [sys.executable, str(script), str(home), str(content), str(warm)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        worker = json.loads(process.stdout.readline())["worker"]
        wait_until(pidfile.exists, 60, "the kernel did not start")
        kernel, child = json.loads(pidfile.read_text())
        wait_until(
            lambda: {worker, kernel, child} <= recorded(home),
            30,
            f"the registry missed some of {worker, kernel, child}: {recorded(home)}",
        )
        return process, worker, kernel, child

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
    for pid in recorded(tmp_path / "home"):
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_kill_9_of_the_control_plane_takes_its_workers_and_kernels(control_plane: Any, ledger: Ledger) -> None:
    process, worker, kernel, child = control_plane(warm=1)
    # Every worker, idle ones included, and the kernel's family; not what already ended by itself
    # (a step's short-lived helpers, such as the probe of its kernel's environment).
    family = {pid for pid in recorded(Path(process.args[2])) if not gone(pid)}
    assert {worker, kernel, child} <= family and len(family) >= 4

    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = time.monotonic()
    deadline = killed_at + 5
    while not all(gone(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name, pid in {"worker": worker, "kernel": kernel, "kernel's child": child}.items():
        assert ledger.tried(ORPHANS, f"{name} after kill -9 of its control plane", refused=gone(pid)), name
    idle = family - {worker, kernel, child}
    assert ledger.tried(ORPHANS, "idle worker after kill -9", refused=all(gone(pid) for pid in idle)), idle
    assert time.monotonic() - killed_at < 5


def test_what_a_crash_left_is_killed_when_the_next_control_plane_starts(
    control_plane: Any, tmp_path: Path, ledger: Ledger
) -> None:
    """The worker itself is killed first (no chance to clean up), then its control plane: the
    kernel's child is left running, and the next executor on the home kills it, but not the
    processes of a control plane that still runs beside it."""
    home = tmp_path / "home"
    alive = LocalExecutor(work_root=home / "work", warm_workers=1)  # a control plane that keeps running
    try:
        (alive_worker,) = alive._idle
        process, worker, kernel, child = control_plane()
        os.kill(worker, signal.SIGKILL)
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(1.5)  # the kernel's own parent poller may end the kernel; its child stays
        assert not gone(child), "nothing was left to clean up: the test proves nothing"

        restarted = LocalExecutor(work_root=home / "work", warm_workers=0)
        restarted.close()
        assert child in restarted.reaped
        for name, pid in {"kernel": kernel, "kernel's child": child, "worker": worker}.items():
            assert ledger.tried(ORPHANS, f"{name} left by a crash, at restart", refused=gone(pid)), name
        assert not gone(alive_worker.pid), "the restart killed a live control plane's worker"
        assert alive_worker.pid in recorded(home) and not (recorded(home) & {worker, kernel, child})
    finally:
        alive.close()


def test_a_child_the_kernel_leaves_behind_dies_with_the_step(tmp_path: Path, ledger: Ledger) -> None:
    pidfile = tmp_path / "pids.json"
    leaves_a_daemon = notebook(
        "import json, os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(json.dumps([os.getpid(), child.pid]))\n"
        "time.sleep(1)"
    )
    executor = LocalExecutor(work_root=tmp_path / "home" / "work", warm_workers=0)
    try:
        job = StepJob(run_id=1, step="Daemon", notebook="d.ipynb", content=leaves_a_daemon, parameters={}, env={})
        result = executor.start(job, lambda line: None).wait()
        assert result.ok, result
        kernel, child = json.loads(pidfile.read_text())
        assert ledger.tried(ORPHANS, "a session the kernel started, after the step", refused=gone(child))
        assert gone(kernel)
    finally:
        executor.close()
