"""Executors run the steps of a scenario that execute user code: notebooks.

The run itself (sequencing, checks, variables, reporters) is orchestrated by the control plane;
an executor only has to run one notebook with its parameters and environment, stream its output,
honour a time limit and an abort, and hand back the executed notebook and its HTML report. The
local executor does so in worker processes on this machine; a Kubernetes executor does the same
with one Job per step, its pod fetching the snapshot with the run's token.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

#: Never handed to user code: the store's URL and the keys are the control plane's alone.
PRIVATE_ENVIRONMENT = ("HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY", "HIMALIA_HOME")

Reason = Literal["ok", "cell_error", "kernel_died", "timeout", "aborted", "failed"]


@dataclass(frozen=True)
class NotebookJob:
    run_id: int
    step: str
    notebook: str
    content: str
    parameters: dict[str, object]
    env: dict[str, str]
    kernel: str | None = None
    timeout: float | None = None
    hide_code: bool = False
    tier: str | None = None


@dataclass
class NotebookResult:
    reason: Reason
    error: str | None = None
    executed: bytes | None = None
    html: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class StepHandle(ABC):
    @abstractmethod
    def wait(self) -> NotebookResult:
        """Block until the step ends, fails, times out or is aborted."""

    @abstractmethod
    def abort(self) -> None:
        """Stop the step now; ``wait`` then returns ``aborted``."""


class Executor(ABC):
    name: str

    @abstractmethod
    def start(self, job: NotebookJob, on_output: Callable[[str], None]) -> StepHandle:
        """Start ``job``; ``on_output`` receives its output lines as they come."""

    @abstractmethod
    def close(self) -> None:
        """Release what the executor holds (idle workers)."""


def kill_tree(pid: int) -> None:
    """Kill a process, its process group and every descendant (kernels start their own session)."""
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        family = []
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs(family, timeout=5)


class _LocalStep(StepHandle):
    def __init__(
        self, process: subprocess.Popen[str], folder: Path, job: NotebookJob, on_output: Callable[[str], None]
    ):
        self.process, self.folder, self.job = process, folder, job
        self._stopped: Reason | None = None
        self._reader = threading.Thread(target=self._read, args=(on_output,), daemon=True)
        self._reader.start()

    def _read(self, on_output: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            on_output(line)

    def wait(self) -> NotebookResult:
        try:
            self.process.wait(timeout=self.job.timeout)
        except subprocess.TimeoutExpired:
            self._stop("timeout")
            self.process.wait()
        self._reader.join(timeout=10)
        try:
            return self._result()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _result(self) -> NotebookResult:
        executed = self.folder / "executed.ipynb"
        report = self.folder / "report.html"
        files = {
            "executed": executed.read_bytes() if executed.exists() else None,
            "html": report.read_bytes() if report.exists() else None,
        }
        if self._stopped == "timeout":
            return NotebookResult("timeout", f"the step ran longer than its {self.job.timeout:g} s limit", **files)
        if self._stopped == "aborted":
            return NotebookResult("aborted", "aborted", **files)
        answer = self.folder / "result.json"
        if not answer.exists():
            code = self.process.returncode
            return NotebookResult("failed", f"the worker process ended with status {code} before finishing", **files)
        outcome = json.loads(answer.read_text())
        return NotebookResult(outcome["reason"], outcome["error"], **files)

    def _stop(self, reason: Reason) -> None:
        if self._stopped is None and self.process.poll() is None:
            self._stopped = reason
            kill_tree(self.process.pid)

    def abort(self) -> None:
        self._stop("aborted")


class LocalExecutor(Executor):
    """Worker processes on this machine, started ahead of need so a step does not wait for imports.

    Each worker runs one step in its own process group and exits; ``warm_workers`` idle ones are
    kept ready. They run as the control plane's operating-system user, without its private
    environment: isolation from the platform's files needs the Kubernetes executor.
    """

    name = "local"

    def __init__(self, work_root: Path, warm_workers: int = 1) -> None:
        self.work_root = work_root
        self.warm_workers = warm_workers
        self._idle: deque[subprocess.Popen[str]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._fill()

    def _spawn(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENVIRONMENT}
        env["PYTHONUNBUFFERED"] = "1"
        return subprocess.Popen(
            [sys.executable, "-m", "himalia.step_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.work_root,
            start_new_session=True,
        )

    def _fill(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            while not self._closed and len(self._idle) < self.warm_workers:
                self._idle.append(self._spawn())

    def _take(self) -> subprocess.Popen[str]:
        with self._lock:
            while self._idle:
                worker = self._idle.popleft()
                if worker.poll() is None:
                    return worker
        return self._spawn()

    def start(self, job: NotebookJob, on_output: Callable[[str], None]) -> StepHandle:
        self.work_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"run-{job.run_id}-", dir=self.work_root))
        worker = self._take()
        request = {
            "folder": str(folder),
            "content": job.content,
            "parameters": job.parameters,
            "kernel": job.kernel,
            "env": job.env,
            "hide_code": job.hide_code,
            "cell_timeout": job.timeout,
        }
        assert worker.stdin is not None
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.close()
        threading.Thread(target=self._fill, daemon=True).start()
        return _LocalStep(worker, folder, job, on_output)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        for worker in idle:
            if worker.stdin:
                worker.stdin.close()
            kill_tree(worker.pid)
            worker.wait()
