"""A worker process of the local executor: runs one notebook step with papermill, then exits.

The executor starts workers ahead of need, so papermill's imports are paid before a step is
handed over: the worker blocks on one JSON job line on stdin, executes it, converts the executed
notebook to HTML and writes ``result.json`` in the job's folder. Everything the notebook prints,
and papermill's own progress lines, go to stdout, which the executor streams into the run log.
Each worker is the leader of its own process group; the executor kills the whole tree, kernel
included, on abort or timeout.

A worker dies with the control plane that started it (``die_with_parent``): Linux signals it
when its parent goes (``PR_SET_PDEATHSIG``) and a watchdog thread notices a new parent anyway.
The kernel runs in a session of its own, which no signal to this group reaches, so the worker
first kills every process it started, kernel and the kernel's children included, then exits.
This is set up before papermill is imported (seconds on a busy machine), so that a worker
whose control plane dies during its imports does not live on either.
"""

import contextlib
import ctypes
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import psutil

from himalia.execution.base import PARENT_VARIABLE

if TYPE_CHECKING:
    from papermill.exceptions import PapermillExecutionError

#: What a step needs, imported by ``main`` ahead of the job (``execute`` imports them for itself).
STEP_MODULES = ("nbformat", "papermill", "papermill.exceptions", "nbclient.exceptions", "nbconvert")


def _describe_cell_error(error: "PapermillExecutionError") -> str:
    count = f" (In [{error.exec_count}])" if error.exec_count else ""
    return f"cell {error.cell_index}{count}: {error.ename}: {error.evalue}"


def execute(job: dict[str, Any]) -> dict[str, Any]:
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbconvert import HTMLExporter
    from papermill.exceptions import PapermillExecutionError

    folder = Path(job["folder"])
    source, executed = folder / "input.ipynb", folder / "executed.ipynb"
    source.write_text(job["content"], encoding="utf-8")
    os.environ.update(job["env"])
    outcome: dict[str, Any] = {"reason": "ok", "error": None}
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=job["parameters"],
            kernel_name=job.get("kernel"),
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stdout,
            execution_timeout=math.ceil(job["cell_timeout"]) if job.get("cell_timeout") else None,
            cwd=str(folder),
        )
    except PapermillExecutionError as error:
        outcome = {"reason": "cell_error", "error": _describe_cell_error(error)}
    except DeadKernelError:
        outcome = {"reason": "kernel_died", "error": "the kernel died (it exited or was killed while running a cell)"}
    except CellTimeoutError as error:
        outcome = {"reason": "timeout", "error": f"a cell ran too long: {str(error).splitlines()[0]}"}
    except Exception as error:  # papermill's own failures: bad kernel name, unreadable notebook
        outcome = {"reason": "failed", "error": f"{type(error).__name__}: {error}"}
        traceback.print_exc(file=sys.stdout)
    if executed.exists():
        exporter = HTMLExporter(
            exclude_input=bool(job.get("hide_code")), exclude_input_prompt=bool(job.get("hide_code"))
        )
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        (folder / "report.html").write_text(body, encoding="utf-8")
    return outcome


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
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="[papermill] %(message)s")
    die_with_parent(int(os.environ.get(PARENT_VARIABLE) or os.getppid()))
    for module in STEP_MODULES:
        importlib.import_module(module)
    line = sys.stdin.readline()
    if not line.strip():
        return  # the executor closed the pool before handing over a job
    job = json.loads(line)
    outcome = execute(job)
    sys.stdout.flush()
    (Path(job["folder"]) / "result.json").write_text(json.dumps(outcome), encoding="utf-8")


if __name__ == "__main__":
    main()
