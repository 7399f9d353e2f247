"""The local executor's kernel pool: kernels started ahead per (OS account, kernel name), handed the
job's environment, working folder and import path, never reused, never another account's, and
stopped with the executor; the workers started ahead run at a lower priority until hand-over."""

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from himalia.execution.accounts import UserIsolation, account_name, find_account
from himalia.execution.local import LocalExecutor, may_restore_priority
from himalia.wire.steps import StepJob

#: Prints what the kernel was given and when it started; ``tree_module`` comes from the project tree.
PROBE = """
import json, os, sys, psutil, tree_module
me = psutil.Process()
print("PROBE " + json.dumps({
    "cwd": os.getcwd(),
    "first on the path": sys.path[0],
    "env": {name: os.environ.get(name) for name in ("HIMALIA_MARK", "PYTHONPATH")},
    "directory history": [str(folder) for folder in _dh],
    "hand-over names": sorted(set(globals()) & {"ENVIRONMENT", "WORKDIR", "TREE", "pathlib"}),
    "tree module": tree_module.VALUE,
    "uid": os.getuid(),
    "started": me.create_time(),
    "pid": os.getpid(),
    "nice": sorted({os.getpriority(os.PRIO_PROCESS, thread.id) for thread in me.threads()}),
}))
"""


#: The project file the probe imports.
TREE_FILE = b"VALUE = 'from the tree'\n"


def tree_file(_digest: str) -> bytes:
    return TREE_FILE


def probe_job(run_id: int, run_as: str | None = None) -> StepJob:
    node = new_notebook(cells=[new_code_cell(PROBE)])
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    files = [{"path": "tree_module.py", "digest": hashlib.sha256(TREE_FILE).hexdigest(), "size": len(TREE_FILE)}]
    return StepJob.model_validate(
        {
            "run_id": run_id,
            "step": "Probe",
            "notebook": "sub/probe.ipynb",
            "content": nbformat.writes(node),
            "parameters": {},
            "env": {"HIMALIA_MARK": f"run {run_id}"},
            "files": files,
            "folder": "sub",
            "run_as": run_as,
        }
    )


def run(executor: LocalExecutor, job: StepJob) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """The probe's report, when the step was handed over, and the executed notebook."""
    lines: list[str] = []
    handed = time.time()
    result = executor.start(job, lines.append).wait()
    assert result.ok, (result, "".join(lines))
    report = next(line for line in lines if line.startswith("PROBE "))
    assert result.executed is not None
    return json.loads(report[len("PROBE ") :]), handed, json.loads(result.executed)


def primed(executor: LocalExecutor, timeout: float = 90) -> psutil.Process:
    """The kernel of the executor's idle worker that started one, once it idles (started and answering)."""
    deadline = time.monotonic() + timeout
    quiet, previous = 0, -1.0
    while time.monotonic() < deadline:
        workers = [worker for worker in executor._idle if worker.kernel]
        kernels = [child for worker in workers for child in psutil.Process(worker.pid).children()]
        if kernels:
            family = [psutil.Process(workers[0].pid), *kernels]
            used = sum(sum(process.cpu_times()[:2]) for process in family)
            quiet = quiet + 1 if used - previous < 0.01 else 0
            previous = used
            if quiet >= 3:
                return kernels[0]
        time.sleep(0.3)
    raise AssertionError("no kernel was started ahead")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(
        work_root=tmp_path / "home" / "work", warm_workers=0, kernel_pool=1, project_file=tree_file
    )
    yield executor
    executor.close()


def test_a_kernel_started_ahead_gets_what_a_kernel_started_for_the_job_gets(pool: LocalExecutor) -> None:
    cold, cold_handed, _ = run(pool, probe_job(1))  # no pair run yet: the worker starts the kernel
    assert cold["started"] > cold_handed, "the first step of a pair has no kernel started ahead"
    kernel = primed(pool)
    warm, warm_handed, executed = run(pool, probe_job(2))
    assert warm["pid"] == kernel.pid and warm["started"] < warm_handed, "the step did not get the kernel started ahead"
    same = ["cwd", "first on the path", "directory history", "tree module", "uid", "hand-over names"]
    assert {name: warm[name] for name in same} == {name: cold[name] for name in same}
    assert (warm["cwd"], warm["first on the path"]) == ("./project/sub", "./project")
    assert warm["hand-over names"] == [] and warm["directory history"] == ["./project/sub"]
    assert warm["env"] == {"HIMALIA_MARK": "run 2", "PYTHONPATH": cold["env"]["PYTHONPATH"]}
    assert executed["cells"][0]["execution_count"] == 1, "the hand-over took an execution count"
    assert gone(kernel.pid), "a kernel that ran a step is never used again"


def test_every_step_gets_a_kernel_of_its_own_and_the_pool_stops_with_the_executor(tmp_path: Path) -> None:
    executor = LocalExecutor(work_root=tmp_path / "work", warm_workers=1, kernel_pool=1, project_file=tree_file)
    try:
        run(executor, probe_job(1))
        first = primed(executor)
        report, _, _ = run(executor, probe_job(2))
        second = primed(executor)
        assert report["pid"] == first.pid != second.pid
        idle = [worker.pid for worker in executor._idle]
        assert len(idle) == 2, "one warm worker and one with its kernel"
    finally:
        executor.close()
    for pid in [*idle, second.pid]:
        assert gone(pid), f"{pid} outlived the executor"
    assert not list((tmp_path / "work").glob("worker-*")) and not list((tmp_path / "work").glob("run-*"))


@pytest.mark.skipif(not may_restore_priority(), reason="this process may not give a lowered priority back")
def test_workers_started_ahead_run_niced_until_they_are_handed_a_step(pool: LocalExecutor) -> None:
    run(pool, probe_job(1))
    kernel = primed(pool)
    normal = os.getpriority(os.PRIO_PROCESS, 0)
    (worker,) = pool._idle
    for process in (psutil.Process(worker.pid), kernel):
        assert {os.getpriority(os.PRIO_PROCESS, thread.id) for thread in process.threads()} == {normal + 10}
    report, _, _ = run(pool, probe_job(2))
    assert report["nice"] == [normal], "the step ran at the refill's lowered priority"


@pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as other OS accounts needs root")
def test_a_kernel_started_ahead_is_never_handed_to_another_account(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="himalia-pool-", dir="/var/tmp"))  # pytest's folders are root's alone
    os.chmod(base, 0o755)
    isolation = UserIsolation(mode="os_accounts", job_root=str(base / "jobs"))
    executor = LocalExecutor(
        work_root=tmp_path / "work", isolation=isolation, warm_workers=0, kernel_pool=1, project_file=tree_file
    )
    try:
        run(executor, probe_job(1, run_as="pool-ana"))
        ana_kernel = primed(executor)
        report, handed, _ = run(executor, probe_job(2, run_as="pool-ben"))
        ben = find_account(account_name(isolation.account_template, "pool-ben"))
        assert ben is not None and report["uid"] == ben.uid
        assert report["pid"] != ana_kernel.pid and report["started"] > handed, "ben was handed ana's kernel"
        assert not gone(ana_kernel.pid), "ana's kernel stays hers, for her next step"
        assert ana_kernel.uids().real != ben.uid
    finally:
        executor.close()
        shutil.rmtree(base, ignore_errors=True)
