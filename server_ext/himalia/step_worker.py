"""A worker process of the local executor: runs one notebook step with papermill, then exits.

The executor starts workers ahead of need, so the imports below are paid before a step is
handed over: the worker blocks on one JSON job line on stdin, executes it, converts the executed
notebook to HTML and writes ``result.json`` in the job's folder. Everything the notebook prints,
and papermill's own progress lines, go to stdout, which the executor streams into the run log.
Each worker is the leader of its own process group; the executor kills the whole tree, kernel
included, on abort or timeout.
"""

import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError


def _describe_cell_error(error: PapermillExecutionError) -> str:
    count = f" (In [{error.exec_count}])" if error.exec_count else ""
    return f"cell {error.cell_index}{count}: {error.ename}: {error.evalue}"


def execute(job: dict[str, Any]) -> dict[str, Any]:
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="[papermill] %(message)s")
    line = sys.stdin.readline()
    if not line.strip():
        return  # the executor closed the pool before handing over a job
    job = json.loads(line)
    outcome = execute(job)
    sys.stdout.flush()
    (Path(job["folder"]) / "result.json").write_text(json.dumps(outcome), encoding="utf-8")


if __name__ == "__main__":
    main()
