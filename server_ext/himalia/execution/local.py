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
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from traitlets import Bool, Float, Int

from himalia.execution.accounts import OsAccount, UserIsolation, read_produced
from himalia.execution.base import Executor, StepHandle, inherited_environment
from himalia.execution.files import materialize
from himalia.execution.worker import KERNEL_VARIABLE, NICE_VARIABLE, PARENT_VARIABLE, notebook_kernel
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
    ``interval`` seconds while the steps run and for ``idle_interval`` seconds after a worker
    starts (it starts its kernel ahead), then every ``idle_interval`` seconds while it waits for
    a step (it starts nothing; listing a process tree reads all of ``/proc``). A step's processes
    are killed when it ends, and its marks dropped. ``reap`` (at start) kills the processes listed
    by control planes that no longer run, and removes their files; those of control planes still
    running are left alone.
    """

    def __init__(self, folder: Path, interval: float = 0.25, idle_interval: float = 10.0) -> None:
        self.folder, self.interval, self.idle_interval = folder, interval, idle_interval
        self._idle_rounds = max(1, round(idle_interval / interval))
        self.owner = ProcessMark.of(psutil.Process())
        # One file per registry (two executors of one process must not overwrite each other's).
        self.path = folder / f"{self.owner.pid}-{int(self.owner.started * 1000)}-{os.urandom(3).hex()}.json"
        self._families: dict[int, dict[int, ProcessMark]] = {}  # worker pid -> every process seen
        self._watched_until: dict[int, float] = {}  # worker pid -> until when it is watched closely
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
                self._watched_until[worker.pid] = time.monotonic() + self.idle_interval
                self._write()

    def handed(self, worker_pid: int) -> None:
        """A worker was handed a step: its descendants are collected every ``interval`` from now on."""
        with self._lock:
            self._watched_until[worker_pid] = math.inf

    def release(self, worker_pid: int) -> list[int]:
        """A worker's step ended: kill whatever of it still runs (a child the kernel left behind)."""
        self._collect(worker_pid)
        with self._lock:
            self._watched_until.pop(worker_pid, None)
            family = self._families.pop(worker_pid, {})
            self._write()
        return kill_marked(list(family.values()))

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._families.clear()
            self._watched_until.clear()
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
        unwritten, rounds = False, 0
        while not self._stopping.wait(self.interval):
            rounds += 1
            try:
                with self._lock:
                    every, now = rounds % self._idle_rounds == 0, time.monotonic()
                    workers = [pid for pid in self._families if every or self._watched_until.get(pid, 0) > now]
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


@dataclass(frozen=True)
class _Worker:
    """A worker process, for one OS account (``None``: the control plane's), with the kernel it
    started ahead (``None``: it starts the job's after hand-over) and its own folder where it has one."""

    process: subprocess.Popen[str]
    account: OsAccount | None
    kernel: str | None
    folder: Path | None
    niced: bool

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def kind(self) -> tuple[OsAccount | None, str | None]:
        return self.account, self.kernel


class _LocalStep(StepHandle):
    def __init__(
        self,
        worker: _Worker,
        folder: Path,
        job: StepJob,
        on_output: Callable[[str], None],
        executor: "LocalExecutor",
    ):
        self.process, self.folder, self.job, self.processes = worker.process, folder, job, executor.processes
        self.worker_folder = worker.folder
        self.grace = executor.deadline_grace
        self.account = worker.account  # whose files the results must be (None: the control plane's own)
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
            if self.worker_folder is not None:
                shutil.rmtree(self.worker_folder, ignore_errors=True)

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


def may_restore_priority() -> bool:
    """Whether this process may give a process it lowered its normal priority back (root with
    CAP_SYS_NICE, or an RLIMIT_NICE allowing it): tried on a thread of its own, which then ends."""
    allowed: list[bool] = []

    def attempt() -> None:
        thread = threading.get_native_id()  # Linux: a nice value is a thread's
        normal = os.getpriority(os.PRIO_PROCESS, thread)
        try:
            os.setpriority(os.PRIO_PROCESS, thread, min(normal + 1, 19))
            os.setpriority(os.PRIO_PROCESS, thread, normal)
            allowed.append(True)
        except PermissionError:
            allowed.append(False)

    probe = threading.Thread(target=attempt, name="himalia-priority-probe")
    probe.start()
    probe.join()
    return allowed == [True]


def set_priority(pid: int, niceness: int) -> None:
    """Give every thread of a process and of its descendants the nice value ``niceness``."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        with contextlib.suppress(psutil.Error):
            for thread in process.threads():
                with contextlib.suppress(ProcessLookupError):
                    os.setpriority(os.PRIO_PROCESS, thread.id, niceness)


class LocalExecutor(Executor):
    """Worker processes on this machine, started ahead of need so a step waits neither for imports
    nor, with the kernel pool, for its kernel.

    Each worker runs one step in its own process group and exits; a kernel that ran a step is
    never used again. With ``isolation`` in its ``os_accounts`` mode (``UserIsolation``), each
    worker runs as the run-as user's own OS account, in a folder of its own only that account may
    enter, with a minimal environment, and each step in a job folder of that account; in the
    ``shared_account_unsafe`` mode, workers run as the control plane's own OS user, without its
    private environment but with its files.

    Workers are kept ready per OS account and kernel name: ``warm_workers`` with their imports
    done for each account in use (the control plane's own from the start when sharing it), and
    ``kernel_pool`` with the kernel started too for each (account, kernel name) pair in use; "in
    use" means among the ``warm_pairs`` pairs most recently run. A worker is handed only a step of
    its own account, so a kernel started ahead runs only that account's code. The workers started
    ahead of need run at a lower priority (``refill_niceness``) until they are handed a step,
    where this process may give the priority back.

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
        help="""Worker processes kept started and idle for each OS account in use (the `warm_pairs`
        most recently run; the control plane's own from the start with
        `UserIsolation.mode = 'shared_account_unsafe'`), so that a notebook step does not wait for
        Python and papermill to import. About 170 MiB each.""",
    )
    kernel_pool = Int(
        1,
        min=0,
        config=True,
        help="""Kernels started ahead for each (OS account, kernel name) pair in use (the
        `warm_pairs` most recently run), each in an idle worker of its own, as kernel gateways
        pre-spawn kernels: a step of that pair then starts at once, its environment and working
        folder given to the kernel at hand-over. IPython kernels only; a kernel runs one step and
        is never reused. 0 disables the pool (workers start the step's kernel after hand-over).
        About 230 MiB each, worker included.""",
    )
    warm_pairs = Int(
        2,
        min=0,
        config=True,
        help="""How many (OS account, kernel name) pairs, the most recently run first, get warm
        workers and pre-started kernels; the idle workers of a pair that drops out are stopped.""",
    )
    refill_niceness = Int(
        10,
        min=0,
        max=19,
        config=True,
        help="""Nice value added to the workers (and their kernels) started ahead of need, until
        they are handed a step, so that starting them does not slow the steps running; applied
        only where the control plane may give the priority back at hand-over (root with
        CAP_SYS_NICE, or an RLIMIT_NICE that allows it), else they start at normal priority.""",
    )
    refill = Bool(
        True,
        config=True,
        help="""Start the idle workers (and kernels) wanted again after each hand-over. Off for a
        one-off run (`himalia scenario run --wait` with no control plane serving the home): a
        refill would only compete with the step for the cores, and be stopped unused at exit.""",
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
        self.processes = ProcessRegistry(registry or self.work_root.parent / "run-processes")
        #: Pids of the processes a stopped control plane had left running, killed at start.
        self.reaped = self.processes.start()
        self._normal_priority = os.getpriority(os.PRIO_PROCESS, 0)
        self._refill_niceness = self.refill_niceness if self.refill_niceness and may_restore_priority() else 0
        self._idle: list[_Worker] = []
        #: The (account, kernel name) pairs most recently run, the latest last.
        self._recent: OrderedDict[tuple[OsAccount | None, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="himalia-spawner")
        self._spawner.submit(self._fill).result()

    @property
    def idle_workers(self) -> int:
        """Workers started and waiting for a step."""
        with self._lock:
            return len(self._idle)

    def _wanted(self) -> list[tuple[OsAccount | None, str | None]]:
        """The idle workers to keep, by (account, kernel started ahead)."""
        accounts: list[OsAccount | None] = [] if self.isolates_code else [None]
        accounts += [account for account, _ in reversed(self._recent) if account not in accounts]
        wanted = [(account, None) for account in accounts for _ in range(self.warm_workers)]
        return wanted + [pair for pair in reversed(self._recent) for _ in range(self.kernel_pool)]

    def _start_worker(self, account: OsAccount | None, kernel: str | None, niceness: int) -> _Worker:
        """A worker, from the spawner thread (see the class docstring): as the control plane's
        user, or as ``account`` in a folder of its own: that uid and gid, no supplementary group,
        files private to it (umask 077)."""
        folder = None if account is None else self.isolation.job_folder(account, prefix="worker-")
        env = self.isolation.environment(account, inherited_environment(), folder or self.work_root)
        env.update({"PYTHONUNBUFFERED": "1", PARENT_VARIABLE: str(os.getpid())})
        if kernel:
            env[KERNEL_VARIABLE] = kernel
        if niceness:
            env[NICE_VARIABLE] = str(self._normal_priority + niceness)
        identity: dict[str, Any] = {}
        if account is not None:
            identity = {"user": account.uid, "group": account.gid, "extra_groups": [], "umask": 0o077}
        try:
            process = subprocess.Popen(
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
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        self.processes.add(process)
        return _Worker(process, account, kernel, folder, niced=bool(niceness))

    def _fill(self) -> None:
        """Start the idle workers missing, stop those no longer wanted; runs on the spawner thread."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._idle = [worker for worker in self._idle if worker.process.poll() is None]
            missing = self._wanted()
            kept = []
            for worker in self._idle:
                if worker.kind in missing:
                    missing.remove(worker.kind)
                    kept.append(worker)
            stopped = [worker for worker in self._idle if all(worker is not other for other in kept)]
            self._idle = kept
        for worker in stopped:
            self._stop_idle(worker)
        for account, kernel in missing:
            worker = self._start_worker(account, kernel, self._refill_niceness)
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(worker)
            if closed:  # close() has already stopped the others
                self._stop_idle(worker)
                return

    def _stop_idle(self, worker: _Worker) -> None:
        if worker.process.stdin:
            worker.process.stdin.close()
        kill_tree(worker.pid)
        worker.process.wait()
        self.processes.release(worker.pid)
        if worker.folder is not None:
            shutil.rmtree(worker.folder, ignore_errors=True)

    def _take(self, account: OsAccount | None, kernel: str | None) -> _Worker:
        """An idle worker of ``account``: one that started ``kernel`` first, else one without a
        kernel, else one that started another (it will stop it); else a new one."""
        with self._lock:
            mine = [worker for worker in self._idle if worker.account == account and worker.process.poll() is None]
            ranked = sorted(mine, key=lambda worker: (worker.kernel != kernel, worker.kernel is not None))
            if ranked:
                self._idle.remove(ranked[0])
                return ranked[0]
        return self._spawner.submit(self._start_worker, account, None, 0).result()

    def start(self, job: StepJob, on_output: Callable[[str], None]) -> StepHandle:
        account = self.isolation.for_login(job.run_as)  # refuses in a sentence when it cannot isolate
        kernel = notebook_kernel(job)
        folder = self.isolation.job_folder(account, prefix=f"run-{job.run_id}-")
        try:
            owner = None if account is None else (account.uid, account.gid)
            materialize(job.files, job.folder, folder, self.project_file, owner)
            worker = self._take(account, kernel)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if worker.niced:
            set_priority(worker.pid, self._normal_priority)
        self.processes.handed(worker.pid)
        assert worker.process.stdin is not None
        worker.process.stdin.write(f"{folder}\n{job.model_dump_json()}\n")  # see himalia.execution.worker.main
        worker.process.stdin.close()
        with self._lock:
            if kernel is not None and self.warm_pairs:
                self._recent[account, kernel] = None
                self._recent.move_to_end((account, kernel))
                while len(self._recent) > self.warm_pairs:
                    self._recent.popitem(last=False)
        if self.refill:
            with contextlib.suppress(RuntimeError):  # closing: no more workers
                self._spawner.submit(self._fill)
        return _LocalStep(worker, folder, job, on_output, self)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            self._stop_idle(worker)
        self._spawner.shutdown(wait=True)
        self.processes.close()
