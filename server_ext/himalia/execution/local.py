"""The local executor: notebook steps in worker processes on this machine.

Local workers and their kernels never outlive the control plane unsupervised: each worker asks
Linux for a signal when its parent dies (``PR_SET_PDEATHSIG``) and watches its parent, and then
kills its kernels before it exits (``himalia.execution.worker``); the executor records every
process of its steps, with their start times, in a file of the home (``ProcessRegistry``), and a
control plane that starts kills what a crashed predecessor's file still lists.

A step ends at its deadline: the worker gives each cell only the time left until then, and the
executor kills the worker if it has not ended ``deadline_grace`` seconds after it.
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from traitlets import Float, Int

from himalia.execution.accounts import OsAccount, UserIsolation, read_produced
from himalia.execution.base import Executor, StepHandle, inherited_environment
from himalia.execution.files import materialize
from himalia.execution.worker import PARENT_VARIABLE
from himalia.wire.steps import Reason, StepJob, StepResult

log = logging.getLogger(__name__)


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
        job: StepJob,
        on_output: Callable[[str], None],
        executor: "LocalExecutor",
        account: OsAccount | None = None,
    ):
        self.process, self.folder, self.job, self.processes = process, folder, job, executor.processes
        self.grace = executor.deadline_grace
        self.account = account  # whose files the results must be (None: the control plane's own)
        self._stopped: Reason | None = None
        self._reader = threading.Thread(target=self._read, args=(on_output,), daemon=True)
        self._reader.start()

    def _read(self, on_output: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            on_output(line)

    def wait(self) -> StepResult:
        left = self.job.seconds_left()
        try:
            self.process.wait(timeout=None if left is None else max(left, 0) + self.grace)
        except subprocess.TimeoutExpired:
            self._stop(Reason.TIMEOUT)
            self.process.wait()
        self.processes.release(self.process.pid)  # what the step left running dies with it
        self._reader.join(timeout=10)
        try:
            return self._result()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _result(self) -> StepResult:
        files = {
            "executed": read_produced(self.folder, "executed.ipynb", self.account),
            "html": read_produced(self.folder, "report.html", self.account),
        }
        if self._stopped == Reason.TIMEOUT:
            error = f"the step ran past its deadline; its worker was killed {self.grace:g} s later"
            return StepResult(reason=Reason.TIMEOUT, error=error, **files)
        if self._stopped == Reason.ABORTED:
            return StepResult(reason=Reason.ABORTED, error="aborted", **files)
        answer = read_produced(self.folder, "result.json", self.account)
        if answer is None:
            code = self.process.returncode
            error = f"the worker process ended with status {code} before finishing"
            return StepResult(reason=Reason.FAILED, error=error, **files)
        return StepResult.model_validate_json(answer).model_copy(update=files)

    def _stop(self, reason: Reason) -> None:
        if self._stopped is None and self.process.poll() is None:
            self._stopped = reason
            kill_tree(self.process.pid)

    def abort(self) -> None:
        self._stop(Reason.ABORTED)


class LocalExecutor(Executor):
    """Worker processes on this machine, started ahead of need so a step does not wait for imports.

    Each worker runs one step in its own process group and exits. With ``isolation`` in its
    ``os_accounts`` mode (``UserIsolation``), each worker is started for its step as the run-as
    user's own OS account, in a job folder only that account may enter, with a minimal
    environment; no worker is kept warm then (it would have to be one per account), so every
    notebook step pays Python's and papermill's imports (a second or two). In the
    ``shared_account_unsafe`` mode, ``warm_workers`` idle ones are kept ready and run as the
    control plane's own OS user, without its private environment but with its files.

    Workers die with the control plane (see ``himalia.execution.worker``). Linux sends the
    parent-death signal when the *thread* that started a child ends, so one long-lived thread
    starts them all. ``registry`` is the folder of the process records (default:
    ``run-processes`` beside ``work_root``, in the home); processes a crashed control plane left
    are killed on start.
    """

    warm_workers = Int(
        1,
        min=0,
        config=True,
        help="""Worker processes kept started and idle, so that a notebook step does not wait for
        Python and papermill to import. Only with `UserIsolation.mode = 'shared_account_unsafe'`:
        isolated steps each start a worker as their own OS account.""",
    )
    deadline_grace = Float(
        5.0,
        min=0.0,
        config=True,
        help="""Seconds a worker may run past its step's deadline (it stops the step there itself,
        then saves the executed notebook and its report) before the executor kills it.""",
    )

    def __init__(
        self,
        *,
        work_root: Path,
        isolation: UserIsolation | None = None,
        registry: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(work_root=work_root, **kwargs)
        self.work_root: Path = work_root
        self.isolation: UserIsolation = isolation or UserIsolation(
            mode="shared_account_unsafe", job_root=str(work_root)
        )
        self.isolates_code = self.isolation.isolated
        self.isolation.reap_job_folders()
        self.idle_workers = 0 if self.isolates_code else self.warm_workers
        self.processes = ProcessRegistry(registry or self.work_root.parent / "run-processes")
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
            while not self._closed and len(self._idle) < self.idle_workers:
                self._idle.append(self._start_worker())

    def _take(self) -> subprocess.Popen[str]:
        with self._lock:
            while self._idle:
                worker = self._idle.popleft()
                if worker.poll() is None:
                    return worker
        return self._spawn()

    def start(self, job: StepJob, on_output: Callable[[str], None]) -> StepHandle:
        account = self.isolation.for_login(job.run_as)  # refuses in a sentence when it cannot isolate
        folder = self.isolation.job_folder(account, prefix=f"run-{job.run_id}-")
        try:
            owner = None if account is None else (account.uid, account.gid)
            materialize(job.files, job.folder, folder, self.project_file, owner)
            if account is None:
                worker = self._take()
            else:
                worker = self._spawner.submit(self._start_worker, account, folder).result()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        assert worker.stdin is not None
        worker.stdin.write(f"{folder}\n{job.model_dump_json()}\n")  # see himalia.execution.worker.main
        worker.stdin.close()
        with contextlib.suppress(RuntimeError):  # closing: no more workers
            self._spawner.submit(self._fill)
        return _LocalStep(worker, folder, job, on_output, self, account)

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
