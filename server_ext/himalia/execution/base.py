"""Executors run the steps of a scenario that execute user code: notebooks.

The run itself (sequencing, checks, variables, reporters) is orchestrated by the control plane;
an executor only has to run one notebook with its parameters and environment, stream its output,
honour a time limit and an abort, and hand back the executed notebook and its HTML report. The
local executor does so in worker processes on this machine; a Kubernetes executor does the same
with one Job per step, its pod fetching the snapshot with the run's token.

Local workers and their kernels never outlive the control plane unsupervised: each worker asks
Linux for a signal when its parent dies (``PR_SET_PDEATHSIG``) and watches its parent, and then
kills its kernels before it exits (``step_worker``); the executor records every process of its
steps, with their start times, in a file of the home (``ProcessRegistry``), and a control plane
that starts kills what a crashed predecessor's file still lists.
"""

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from himalia.execution.accounts import OsAccount, UserIsolation, read_produced

log = logging.getLogger(__name__)

#: Never handed to user code: the store's URL and the keys are the control plane's alone.
PRIVATE_ENVIRONMENT = ("HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY", "HIMALIA_HOME")

#: Tells a worker which process it must die with (``step_worker``).
PARENT_VARIABLE = "HIMALIA_WORKER_PARENT"
_SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|KEY|KEYS|APIKEY|CREDENTIAL|CREDENTIALS)(_|$)", re.IGNORECASE
)

Reason = Literal["ok", "cell_error", "kernel_died", "timeout", "aborted", "failed"]


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential (``JUPYTERHUB_API_TOKEN``,
    ``AWS_SECRET_ACCESS_KEY``, ``HIMALIA_SMTP_PASSWORD``, …)."""
    return bool(_SECRET_NAME.search(name))


def inherited_environment() -> dict[str, str]:
    """The control plane's environment as workers get it: without its private settings nor any
    variable whose name says it is a credential (a hub service's ``JUPYTERHUB_API_TOKEN``, the
    SMTP password, …). A run's own token comes with the job."""
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_ENVIRONMENT and not is_secret_name(k)}


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
    #: The run-as user's login: the local executor runs the step as that person's OS account.
    run_as: str | None = None


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
    #: Whether user code runs apart from the control plane's files (its own OS account, its own pod).
    isolates_code: bool = False

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


@dataclass(frozen=True)
class ProcessMark:
    """A process as it was seen: its pid and start time, so that a reused pid is not mistaken for it."""

    pid: int
    started: float

    @classmethod
    def of(cls, process: psutil.Process) -> "ProcessMark":
        return cls(process.pid, process.create_time())

    def running(self) -> psutil.Process | None:
        """The process, if this very process still runs (not a zombie, not a newcomer with its pid)."""
        try:
            process = psutil.Process(self.pid)
            same = abs(process.create_time() - self.started) < 0.01
            return process if same and process.status() != psutil.STATUS_ZOMBIE else None
        except psutil.Error:
            return None


def kill_marked(marks: list[ProcessMark]) -> list[int]:
    """Kill those of ``marks`` that still run, and the process groups they lead; the pids killed."""
    running = [process for mark in marks if (process := mark.running()) is not None]
    for process in running:
        with contextlib.suppress(psutil.Error):
            leads_group = os.getpgid(process.pid) == process.pid
            process.kill()
            if leads_group:
                os.killpg(process.pid, signal.SIGKILL)
    psutil.wait_procs(running, timeout=5)
    return [process.pid for process in running]


class ProcessRegistry:
    """The processes of one control plane's steps, in a file, so that a successor kills what a crash left.

    Each control plane keeps ``<folder>/<pid>-<start>-<random>.json``: its own mark and those of its
    workers and of everything they started (kernels and their children), collected every
    ``interval`` seconds while the steps run. A step's processes are killed when it ends, and
    its marks dropped. ``reap`` (at start) kills the processes listed by control planes that no
    longer run, and removes their files; those of control planes still running are left alone.
    """

    def __init__(self, folder: Path, interval: float = 0.25) -> None:
        self.folder, self.interval = folder, interval
        self.owner = ProcessMark.of(psutil.Process())
        # One file per registry (two executors of one process must not overwrite each other's).
        self.path = folder / f"{self.owner.pid}-{int(self.owner.started * 1000)}-{os.urandom(3).hex()}.json"
        self._families: dict[int, dict[int, ProcessMark]] = {}  # worker pid -> every process seen
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> list[int]:
        """Kill the leftovers of control planes that died, then start watching ours; the pids killed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        killed = self.reap()
        self._thread = threading.Thread(target=self._watch, name="himalia-process-registry", daemon=True)
        self._thread.start()
        return killed

    def reap(self) -> list[int]:
        killed: list[int] = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                owner = ProcessMark(**record["owner"])
                marks = [ProcessMark(**mark) for mark in record["processes"]]
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("Ignoring an unreadable process record %s", path)
                continue
            if owner == self.owner or owner.running() is not None:
                continue
            killed += kill_marked(marks)
            path.unlink(missing_ok=True)
        if killed:
            log.warning("Killed %d step processes a stopped control plane left running: %s", len(killed), killed)
        return killed

    def add(self, worker: subprocess.Popen[str]) -> None:
        """Record a worker as soon as it is started (before any step is handed to it)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            mark = ProcessMark.of(psutil.Process(worker.pid))
            with self._lock:
                self._families[worker.pid] = {worker.pid: mark}
                self._write()

    def release(self, worker_pid: int) -> list[int]:
        """A worker's step ended: kill whatever of it still runs (a child the kernel left behind)."""
        self._collect(worker_pid)
        with self._lock:
            family = self._families.pop(worker_pid, {})
            self._write()
        return kill_marked(list(family.values()))

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._families.clear()
        self.path.unlink(missing_ok=True)

    def _collect(self, worker_pid: int) -> bool:
        """Add the worker's current descendants to its family; whether any was new."""
        with self._lock:
            family = self._families.get(worker_pid)
            worker = family.get(worker_pid) if family else None
        process = worker.running() if worker else None
        if family is None or process is None:
            return False
        try:
            seen = [ProcessMark.of(child) for child in process.children(recursive=True)]
        except psutil.Error:
            return False
        with self._lock:
            new = [mark for mark in seen if mark.pid not in family]
            family.update((mark.pid, mark) for mark in new)
        return bool(new)

    def _watch(self) -> None:
        unwritten = False
        while not self._stopping.wait(self.interval):
            try:
                with self._lock:
                    workers = list(self._families)
                if any([self._collect(pid) for pid in workers]) or unwritten:
                    unwritten = True
                    with self._lock:
                        self._write()
                    unwritten = False
            except Exception:  # keep watching, and try the file again at the next round
                log.exception("Could not record the processes of the running steps")

    def _write(self) -> None:
        """Replace the file (atomically: a crash mid-write must not lose the previous list)."""
        marks = [vars(mark) for family in self._families.values() for mark in family.values()]
        record: dict[str, Any] = {"owner": vars(self.owner), "processes": marks}
        partial = self.path.with_suffix(".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(record, handle)
        os.replace(partial, self.path)


class _LocalStep(StepHandle):
    def __init__(
        self,
        process: subprocess.Popen[str],
        folder: Path,
        job: NotebookJob,
        on_output: Callable[[str], None],
        processes: ProcessRegistry,
        account: OsAccount | None = None,
    ):
        self.process, self.folder, self.job, self.processes = process, folder, job, processes
        self.account = account  # whose files the results must be (None: the control plane's own)
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
        self.processes.release(self.process.pid)  # what the step left running dies with it
        self._reader.join(timeout=10)
        try:
            return self._result()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _result(self) -> NotebookResult:
        files = {
            "executed": read_produced(self.folder, "executed.ipynb", self.account),
            "html": read_produced(self.folder, "report.html", self.account),
        }
        if self._stopped == "timeout":
            return NotebookResult("timeout", f"the step ran longer than its {self.job.timeout:g} s limit", **files)
        if self._stopped == "aborted":
            return NotebookResult("aborted", "aborted", **files)
        answer = read_produced(self.folder, "result.json", self.account)
        if answer is None:
            code = self.process.returncode
            return NotebookResult("failed", f"the worker process ended with status {code} before finishing", **files)
        outcome = json.loads(answer)
        return NotebookResult(outcome["reason"], outcome["error"], **files)

    def _stop(self, reason: Reason) -> None:
        if self._stopped is None and self.process.poll() is None:
            self._stopped = reason
            kill_tree(self.process.pid)

    def abort(self) -> None:
        self._stop("aborted")


class LocalExecutor(Executor):
    """Worker processes on this machine, started ahead of need so a step does not wait for imports.

    Each worker runs one step in its own process group and exits. With ``isolation`` in its
    ``os_accounts`` mode (``UserIsolation``), each worker is started for its step as the run-as
    user's own OS account, in a job folder only that account may enter, with a minimal
    environment; no worker is kept warm then (it would have to be one per account), so every
    notebook step pays Python's and papermill's imports (a second or two). In the
    ``shared_account_unsafe`` mode, ``warm_workers`` idle ones are kept ready and run as the
    control plane's own OS user, without its private environment but with its files.

    Workers die with the control plane (see ``step_worker``). Linux sends the parent-death
    signal when the *thread* that started a child ends, so one long-lived thread starts them
    all. ``registry`` is the folder of the process records (default: ``run-processes`` beside
    ``work_root``, in the home); processes a crashed control plane left are killed on start.
    """

    name = "local"

    def __init__(
        self,
        work_root: Path,
        warm_workers: int = 1,
        registry: Path | None = None,
        isolation: UserIsolation | None = None,
    ) -> None:
        self.work_root = work_root
        self.isolation = isolation or UserIsolation(mode="shared_account_unsafe", job_root=str(work_root))
        self.isolates_code = self.isolation.isolated
        self.isolation.reap_job_folders()
        self.warm_workers = 0 if self.isolates_code else warm_workers
        self.processes = ProcessRegistry(registry or work_root.parent / "run-processes")
        #: Pids of the processes a stopped control plane had left running, killed at start.
        self.reaped = self.processes.start()
        self._idle: deque[subprocess.Popen[str]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="himalia-spawner")
        self._spawner.submit(self._fill).result()

    def _spawn(self) -> subprocess.Popen[str]:
        """Start a worker from the spawner thread (see the class docstring)."""
        return self._spawner.submit(self._start_worker).result()

    def _start_worker(self, account: OsAccount | None = None, folder: Path | None = None) -> subprocess.Popen[str]:
        """A worker as the control plane's user, or as ``account`` in its job ``folder``: that uid
        and gid, no supplementary group, files private to it (umask 077)."""
        env = self.isolation.environment(account, inherited_environment(), folder or self.work_root)
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_VARIABLE] = str(os.getpid())
        identity: dict[str, Any] = {}
        if account is not None:
            identity = {"user": account.uid, "group": account.gid, "extra_groups": [], "umask": 0o077}
        worker = subprocess.Popen(
            [sys.executable, "-m", "himalia.execution.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=folder or self.work_root,
            start_new_session=True,
            **identity,
        )
        self.processes.add(worker)
        return worker

    def _fill(self) -> None:
        """Top up the idle workers; runs on the spawner thread."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            while not self._closed and len(self._idle) < self.warm_workers:
                self._idle.append(self._start_worker())

    def _take(self) -> subprocess.Popen[str]:
        with self._lock:
            while self._idle:
                worker = self._idle.popleft()
                if worker.poll() is None:
                    return worker
        return self._spawn()

    def start(self, job: NotebookJob, on_output: Callable[[str], None]) -> StepHandle:
        account = self.isolation.for_login(job.run_as)  # refuses in a sentence when it cannot isolate
        folder = self.isolation.job_folder(account, prefix=f"run-{job.run_id}-")
        try:
            if account is None:
                worker = self._take()
            else:
                worker = self._spawner.submit(self._start_worker, account, folder).result()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
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
        with contextlib.suppress(RuntimeError):  # closing: no more workers
            self._spawner.submit(self._fill)
        return _LocalStep(worker, folder, job, on_output, self.processes, account)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        for worker in idle:
            if worker.stdin:
                worker.stdin.close()
            kill_tree(worker.pid)
            worker.wait()
        self._spawner.shutdown(wait=True)
        self.processes.close()
