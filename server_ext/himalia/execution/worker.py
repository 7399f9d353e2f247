"""A worker process of the local executor: runs one notebook step with papermill, then exits.

The executor starts workers ahead of need, so papermill's imports are paid before a step is
handed over: the worker blocks on its job on stdin (the job folder's path, then the
:class:`~himalia.wire.steps.StepJob`), executes it until it ends or reaches its deadline, converts
the executed notebook to HTML and writes the :class:`~himalia.wire.steps.StepResult` as
``result.json`` in the job's folder. Everything the notebook prints,
and papermill's own progress lines, go to stdout, which the executor streams into the run log.
Each worker is the leader of its own process group; the executor kills the whole tree, kernel
included, on abort or when it outlives its deadline.

A worker dies with the control plane that started it (``die_with_parent``): Linux signals it
when its parent goes (``PR_SET_PDEATHSIG``) and a watchdog thread notices a new parent anyway.
The kernel runs in a session of its own, which no signal to this group reaches, so the worker
first kills every process it started, kernel and the kernel's children included, then exits.
This is set up before papermill is imported (seconds on a busy machine), so that a worker
whose control plane dies during its imports does not live on either.

A worker may also start its step's kernel ahead (``LocalExecutor.kernel_pool``): told the kernel
name, it starts that kernel before reading its job, and at hand-over gives it the job's
environment, working folder and import path (:class:`PrestartedKernel`), which a kernel started
for the job would have got at its start. Only IPython kernels are started ahead (the hand-over is
Python code); the kernel is killed, without waiting for it, once the notebook is executed. A
worker started ahead of need also lowers its own priority first (``NICE_VARIABLE``), so that its
imports and its kernel's start yield the processor to the running steps; the executor gives it
(and its kernel) the normal priority back when it hands it a step.
"""

import contextlib
import ctypes
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import psutil

from himalia.execution.environment import EnvironmentProbe
from himalia.execution.files import PROJECT_FOLDER
from himalia.execution.report import load_report_templates, render_report
from himalia.execution.worker_output import quiet_libraries, route_stderr, scrub_output
from himalia.wire.steps import ERROR_LIMIT, Reason, StepJob, StepResult

if TYPE_CHECKING:
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from papermill.exceptions import PapermillExecutionError

#: Tells a worker which process it must die with (``die_with_parent``).
PARENT_VARIABLE = "HIMALIA_WORKER_PARENT"
#: Tells a worker the kernel to start before its job comes (none: it starts the job's after).
KERNEL_VARIABLE = "HIMALIA_WORKER_KERNEL"
#: Tells a worker started ahead of need the nice value to run at until its step is handed over.
NICE_VARIABLE = "HIMALIA_WORKER_NICE"
#: Seconds a kernel may take to answer once started, as papermill's own ``start_timeout``.
KERNEL_START_TIMEOUT = 60.0
#: Seconds the hand-over code may take in the kernel.
HAND_OVER_TIMEOUT = 30.0
#: What a kernel started for the job runs with, as nbclient starts IPython kernels (no history file).
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
#: Run in a kernel started ahead, in a namespace of its own: the job's environment, working folder
#: and import path, as a kernel started for the job gets them (the project tree first on
#: ``sys.path``, from ``PYTHONPATH``); nothing is left in the notebook's namespace.
HAND_OVER = """
import os, pathlib, sys
os.environ.update(ENVIRONMENT)
os.chdir(WORKDIR)
sys.path.insert(0, TREE)
get_ipython().user_ns["_dh"][:] = [pathlib.Path(WORKDIR)]
"""
#: What a step needs, imported by ``main`` ahead of the job (``execute`` imports them for itself).
STEP_MODULES = ("nbformat", "papermill", "papermill.exceptions", "nbclient.exceptions", "nbconvert")
#: The limit of a cell started at or after the deadline (nbclient reads 0 as "no limit").
PAST_DEADLINE = 0.001


def _describe_cell_error(error: "PapermillExecutionError") -> str:
    count = f" (In [{error.exec_count}])" if error.exec_count else ""
    return f"cell {error.cell_index}{count}: {error.ename}: {error.evalue}"


class StepClock:
    """The step's deadline as nbclient can apply it: its limits are per cell, so each cell gets
    the time left until the deadline (``timeout_func``), and the step ends there whatever the
    number of cells. Kernel start-up counts as well: a late first cell gets what is left."""

    def __init__(self, seconds: float | None) -> None:
        self.ends = None if seconds is None else time.monotonic() + seconds

    def cell_limit(self, _cell: Any) -> float | None:
        return None if self.ends is None else max(self.ends - time.monotonic(), PAST_DEADLINE)


class PrestartedKernel:
    """An IPython kernel started before its job is known, with a client connected to it."""

    def __init__(self, manager: "AsyncKernelManager", client: "BlockingKernelClient") -> None:
        self.manager, self.client = manager, client

    @classmethod
    def start(cls, name: str) -> "PrestartedKernel | None":
        """Start kernel ``name`` and wait until it answers; ``None`` for a kernel that is not
        IPython's, or one that does not start (the job then starts its own, and says why)."""
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        manager = AsyncKernelManager(kernel_name=name)  # papermill's (nbclient's) own class
        try:
            if not manager.ipykernel:
                return None
            run_sync(manager.start_kernel)(extra_arguments=KERNEL_ARGUMENTS)
            client = BlockingKernelClient()
            client.load_connection_info(manager.get_connection_info())
            client.start_channels()
            client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
        except Exception:  # a kernel started for the job reports the failure
            kill_kernel(manager)
            return None
        return cls(manager, client)

    @property
    def name(self) -> str:
        return self.manager.kernel_name

    def hand_over(self, environment: dict[str, str], workdir: Path, tree: Path) -> bool:
        """Give the kernel the job's environment, working folder and import path; whether it took them."""
        values = {"ENVIRONMENT": environment, "WORKDIR": str(workdir), "TREE": str(tree)}
        try:
            reply = self.client.execute_interactive(
                f"exec({HAND_OVER!r}, {values!r})",
                silent=True,  # no execution count, no input broadcast, nothing in the history
                store_history=False,
                timeout=HAND_OVER_TIMEOUT,
                output_hook=lambda _message: None,
            )
        except Exception:  # a timeout, a dead kernel: the job starts its own
            return False
        finally:
            self.client.stop_channels()
        return bool(reply["content"]["status"] == "ok")


def kill_kernel(manager: "AsyncKernelManager") -> None:
    """Kill a kernel this worker started, and its process group, without waiting for it: nothing
    of it is needed any more, and the executor kills whatever of the step is left when it ends."""
    process = getattr(manager.provisioner, "process", None)
    if process is not None and process.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # jupyter_client starts kernels in a session of their own


def notebook_kernel(job: StepJob) -> str | None:
    """The kernel papermill starts for ``job``: its own, else its notebook's (``None``: papermill refuses it)."""
    if job.kernel:
        return job.kernel
    with contextlib.suppress(ValueError, LookupError, TypeError):
        name = json.loads(job.content)["metadata"]["kernelspec"]["name"]
        return name if isinstance(name, str) else None
    return None


def execute(job: StepJob, folder: Path, kernel: PrestartedKernel | None = None) -> StepResult:
    """Run ``job`` with papermill, until it ends or its deadline; write the executed notebook and
    its HTML report in ``folder``. The result carries no files: they stay in ``folder``.

    The executor has written the job's project files in ``folder/project``
    (:func:`~himalia.execution.files.materialize`): the notebook runs in its own folder there, and
    the tree's root is on the kernel's ``sys.path`` (``PYTHONPATH``), as it was interactively.
    ``kernel``, started ahead, runs the notebook if it is the job's and takes the hand-over;
    otherwise papermill starts the job's kernel (and shuts it down at the end)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, executed = folder / "input.ipynb", folder / "executed.ipynb"
    source.write_text(job.content, encoding="utf-8")
    tree = folder / PROJECT_FOLDER
    workdir = tree / job.folder if job.folder else tree
    workdir.mkdir(parents=True, exist_ok=True)  # a job without files: nobody wrote the tree
    os.environ.update(job.env)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    clock = StepClock(job.seconds_left())
    probe = EnvironmentProbe.start(notebook_kernel(job))  # beside the kernel, in the step's environment
    if kernel is not None:
        environment = {name: os.environ[name] for name in [*job.env, "PYTHONPATH"]}
        if kernel.name != notebook_kernel(job) or not kernel.hand_over(environment, workdir, tree):
            kill_kernel(kernel.manager)
            kernel = None
    reuse = {} if kernel is None else {"km": kernel.manager}
    outcome = StepResult(reason=Reason.OK)
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=job.parameters,
            kernel_name=job.kernel,
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stdout,
            timeout_func=clock.cell_limit,
            shutdown_kernel="immediate",  # a graceful one waits seconds for a kernel still busy at the deadline
            cwd=str(workdir),
            **reuse,
        )
    except PapermillExecutionError as error:
        outcome = StepResult(reason=Reason.CELL_ERROR, error=_describe_cell_error(error)[:ERROR_LIMIT])
    except DeadKernelError:
        died = "the kernel died (it exited or was killed while running a cell)"
        outcome = StepResult(reason=Reason.KERNEL_DIED, error=died)
    except CellTimeoutError:
        outcome = StepResult(reason=Reason.TIMEOUT, error="the step reached its deadline while a cell was running")
    except Exception as error:  # papermill's own failures: bad kernel name, unreadable notebook
        outcome = StepResult(reason=Reason.FAILED, error=f"{type(error).__name__}: {error}"[:ERROR_LIMIT])
        traceback.print_exc(file=sys.stdout)
    if kernel is not None:  # papermill shuts down only the kernels it started
        kill_kernel(kernel.manager)
    if executed.exists():
        (folder / "report.html").write_text(render_report(executed, job.hide_code), encoding="utf-8")
    return outcome.model_copy(update={"environment": probe.result()})


#: ``prctl`` option of the parent-death signal (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: How often the watchdog looks at the parent, in seconds.
PARENT_POLL_SECONDS = 0.2
#: The exit status of a worker whose control plane died.
ORPHANED = 128 + signal.SIGTERM
#: Set by the parent-death signal: wakes the watchdog at once.
_parent_gone = threading.Event()


def end_step() -> NoReturn:
    """Kill every process this worker started (the kernel leads its own session: kill its group
    too), then exit. SIGKILL is final: there is nothing to wait for."""
    try:
        family = psutil.Process().children(recursive=True)
    except psutil.Error:
        family = []
    for process in family:
        with contextlib.suppress(psutil.Error, OSError):
            leads_group = os.getpgid(process.pid) == process.pid
            process.kill()
            if leads_group:
                os.killpg(process.pid, signal.SIGKILL)
    os._exit(ORPHANED)


def _watch_parent(parent: int) -> None:
    """The only caller of ``end_step``: a signal handler must not do the work, since the signal may
    come again while it runs (Linux sends it as each thread of the dying parent exits)."""
    while os.getppid() == parent and not _parent_gone.wait(PARENT_POLL_SECONDS):
        pass
    end_step()


def die_with_parent(parent: int) -> None:
    """End the step when ``parent`` (the control plane) dies, even by ``kill -9``.

    The parent-death signal comes at once and wakes the watchdog thread, which kills the step;
    Python runs the handler only between bytecodes of the main thread, which may be waiting in
    the kernel client's C code, so the watchdog also looks at the parent itself (and covers
    systems other than Linux).
    """
    signal.signal(signal.SIGTERM, lambda _signal, _frame: _parent_gone.set())
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(target=_watch_parent, args=(parent,), name="himalia-parent-watch", daemon=True).start()


def main() -> None:
    """Take one job from stdin: its folder's path on the first line, the ``StepJob`` as JSON on the second."""
    if os.environ.get(NICE_VARIABLE):  # before any thread or child, which inherit it
        os.setpriority(os.PRIO_PROCESS, 0, int(os.environ[NICE_VARIABLE]))
    quiet_libraries()
    die_with_parent(int(os.environ.get(PARENT_VARIABLE) or os.getppid()))
    route_stderr()  # before any kernel starts: kernels inherit standard error
    for module in STEP_MODULES:
        importlib.import_module(module)
    load_report_templates()
    kernel = PrestartedKernel.start(os.environ[KERNEL_VARIABLE]) if os.environ.get(KERNEL_VARIABLE) else None
    folder = sys.stdin.readline().strip()
    if not folder:
        return  # the executor closed the pool before handing over a job
    job = StepJob.model_validate_json(sys.stdin.readline())
    scrub_output(Path(folder), Path.cwd())
    outcome = execute(job, Path(folder), kernel)
    sys.stdout.flush()
    (Path(folder) / "result.json").write_text(outcome.model_dump_json(), encoding="utf-8")
    # Skip the interpreter's teardown (the kernel client's ZeroMQ context and threads): it takes
    # seconds on a busy machine, during which the step would seem to run on.
    os._exit(0)


if __name__ == "__main__":
    main()
