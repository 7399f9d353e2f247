"""Executors: chosen by ``ControlPlane.executor_class``, configured in their own sections, and one
step contract (``wire.steps``) whose deadline holds for the whole step."""

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from pydantic import ValidationError
from traitlets import TraitError
from traitlets.config import Config

from himalia.controlplane import ControlPlane
from himalia.execution.kubernetes.executor import KubernetesExecutor
from himalia.execution.local import LocalExecutor, ProcessRegistry
from himalia.execution.report import load_report_templates
from himalia.execution.worker import PAST_DEADLINE, StepClock, execute
from himalia.wire.steps import Reason, StepJob, StepResult, deadline_after


@pytest.fixture
def backend() -> str:
    return "sqlite"


def short_cells(count: int) -> str:
    """A notebook of ``count`` cells of 0.3 s each."""
    node = new_notebook(cells=[new_code_cell("import time")] + [new_code_cell("time.sleep(0.3)") for _ in range(count)])
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(node)


def job_of(content: str, seconds: float | None) -> StepJob:
    return StepJob(
        run_id=1,
        step="Cells",
        notebook="cells.ipynb",
        content=content,
        parameters={},
        env={},
        deadline=deadline_after(seconds),
    )


def test_the_executor_class_is_a_type_trait(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ControlPlane().executor_class is LocalExecutor
    monkeypatch.setenv("HIMALIA_EXECUTOR_CLASS", "himalia.execution.kubernetes.executor.KubernetesExecutor")
    assert ControlPlane().executor_class is KubernetesExecutor
    from_file = Config({"ControlPlane": {"executor_class": "himalia.execution.local.LocalExecutor"}})
    assert ControlPlane(config=from_file).executor_class is LocalExecutor, "a configuration file wins"
    with pytest.raises(TraitError):
        ControlPlane(executor_class="himalia.controlplane.ControlPlane")


def test_the_local_executor_reads_its_own_section(plane: ControlPlane) -> None:
    plane.config.LocalExecutor.update(warm_workers=0, deadline_grace=2.5)
    executor = plane.start_engine(schedule=False).executor
    assert isinstance(executor, LocalExecutor)
    assert (executor.warm_workers, executor.deadline_grace, executor.idle_workers) == (0, 2.5, 0)
    assert executor.work_root == Path(plane.home) / "work"
    assert executor.isolation.parent is plane, "c.UserIsolation.* applies"


def test_a_result_is_bytes_in_python_and_base64_on_the_wire() -> None:
    result = StepResult(reason=Reason.CELL_ERROR, error="cell 2: ZeroDivisionError", executed=b"{}", html=b"<p>")
    wire = result.model_dump(mode="json")
    assert wire == {
        "reason": "cell_error",
        "error": "cell 2: ZeroDivisionError",
        "executed": "e30=",
        "html": "PHA+",
        "environment": None,
    }
    assert StepResult.model_validate(wire) == StepResult.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError, match="not valid base64"):
        StepResult.model_validate({"reason": "ok", "executed": "not base64!"})
    with pytest.raises(ValidationError):
        StepResult.model_validate({"reason": "great"})
    with pytest.raises(ValidationError):
        StepResult(reason=Reason.FAILED, error="x" * 10_001)


def test_each_cell_gets_what_is_left_of_the_step() -> None:
    assert StepClock(None).cell_limit(None) is None
    clock = StepClock(2.0)
    first = clock.cell_limit(None)
    assert first is not None and 1.9 < first <= 2.0
    time.sleep(0.2)
    later = clock.cell_limit(None)
    assert later is not None and later <= first - 0.2
    assert StepClock(-1.0).cell_limit(None) == PAST_DEADLINE, "zero would mean no limit to nbclient"


def test_the_step_itself_ends_at_its_deadline(tmp_path: Path) -> None:
    """What the worker and the Kubernetes pod run: twenty cells of 0.3 s under a 3 s deadline stop
    at the deadline, with the executed notebook of the cells that ran and its report. The report
    exporter is warmed first, as a worker warms it before it is handed a step."""
    load_report_templates()
    started = time.monotonic()
    result = execute(job_of(short_cells(20), 3.0), tmp_path)
    took = time.monotonic() - started
    assert (result.reason, result.error) == (Reason.TIMEOUT, "the step reached its deadline while a cell was running")
    assert 3 <= took < 5.5, f"a 3 s step ended after {took:.1f} s"
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    ran = [cell for cell in executed.cells if cell.get("execution_count")]
    assert 0 < len(ran) < 12
    assert (tmp_path / "report.html").exists()


def test_a_worker_that_outlives_its_deadline_is_killed(tmp_path: Path) -> None:
    """A worker still importing papermill at the deadline cannot stop its step: its executor kills
    it ``deadline_grace`` after the deadline."""
    executor = LocalExecutor(work_root=tmp_path / "home" / "work", warm_workers=0, deadline_grace=0.5)
    try:
        started = time.monotonic()
        result = executor.start(job_of(short_cells(20), 0.1), lambda line: None).wait()
        took = time.monotonic() - started
    finally:
        executor.close()
    assert (result.reason, result.error) == (
        Reason.TIMEOUT,
        "the step ran past its deadline; its worker was killed 0.5 s later",
    )
    assert 0.5 <= took < 4


def test_the_process_registry_scans_a_waiting_worker_rarely_and_a_busy_one_closely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a process tree reads all of /proc: a warm worker that waits for a step (past the
    window in which it starts its kernel ahead) is looked at every ``idle_interval``, not each round."""
    scanned: list[int] = []
    registry = ProcessRegistry(tmp_path / "processes", interval=0.01, idle_interval=0.2)
    collect = registry._collect
    monkeypatch.setattr(registry, "_collect", lambda pid: scanned.append(pid) or collect(pid))
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        registry.start()
        registry.add(worker)
        time.sleep(0.3)  # the start window (about 20 rounds), then idle
        scanned.clear()
        time.sleep(1.0)  # about 100 rounds, idle
        idle_scans = len(scanned)
        registry.handed(worker.pid)
        scanned.clear()
        time.sleep(1.0)  # about 100 rounds, busy (fewer on a loaded machine: each scan reads /proc)
        busy_scans = len(scanned)
    finally:
        registry.close()
        worker.kill()
        worker.wait()
    assert 1 <= idle_scans <= 7, idle_scans  # 1 s / idle_interval, give or take a round
    assert busy_scans > 3 * idle_scans, (busy_scans, idle_scans)


@pytest.mark.parametrize("refill", [True, False])
def test_an_executor_without_refill_starts_nothing_ahead_after_hand_over(tmp_path: Path, refill: bool) -> None:
    """A one-off run (``scenario run --wait`` with no control plane serving) uses the warm worker
    started with the executor and starts no other: it would only compete with the step for the cores."""
    executor = LocalExecutor(work_root=tmp_path / "home" / "work", warm_workers=1, kernel_pool=1, refill=refill)
    try:
        assert executor.idle_workers == 1
        result = executor.start(job_of(short_cells(1), None), lambda line: None).wait()
        assert result.ok, result
        time.sleep(0.5)  # a refill is submitted at hand-over and has started its workers by now
        started_ahead = executor.idle_workers
    finally:
        executor.close()
    assert started_ahead == (2 if refill else 0)  # a warm worker, and one with the step's kernel
