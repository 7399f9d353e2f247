"""Per-run overhead of a one-notebook scenario, against plain papermill in-process and its CLI.

One run, on a fresh temporary data folder (SQLite):

1. creates a user ``bench`` (administrator), a project ``BENCH`` and two scenarios of ONE
   notebook step each, saved through ``ScenarioService``: a short notebook (a parameters cell and
   two trivial cells, kernel ``python3``) and a long one (the same plus a cell sleeping 2 s);
2. starts the run engine with the local executor (``LocalExecutor.warm_workers``, default 1) and
   times, round by round, the three ways of running the same notebook with the same parameter:

   * ``platform``        ``RunService.request_run`` until the run is finished (the ``RunFinished``
     event, published once the run's finished state is committed);
   * ``papermill``       ``papermill.execute_notebook`` in this process;
   * ``papermill CLI``   the ``papermill`` command in a subprocess (what a cron user runs).

   The order of the three rotates every round, and before each measurement the process tree is
   left to settle (no child process using CPU: the executor refills its warm worker in the
   background after each run), so that no approach pays for another's leftovers;
3. times short-notebook platform runs back to back (no pause, so the warm worker refill is on the
   critical path) with ``warm_workers`` = 1 and 2;
4. splits the platform's time into phases (store timestamps, and a wrapper around the executor
   noting when the step is handed over, when papermill and the kernel start from the worker's
   output, and when the worker has exited), and reproduces a worker's share outside the platform:
   papermill, the HTML report and the exit of a fresh interpreter whose imports are done, alone
   and while another interpreter imports the same modules (the executor refills its warm pool
   as soon as a step starts).

It prints medians, p90s and ratios (target: platform / papermill median <= 1.10) and never
asserts timings.

    .venv/bin/python benchmarks/bench_scenarios.py               # about 5 minutes
    .venv/bin/python benchmarks/bench_scenarios.py --runs 5 --long-runs 2 --burst-runs 3 --fresh-repeats 1
"""

import argparse
import contextlib
import itertools
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill
import psutil
from cryptography.fernet import Fernet
from nbformat.v4 import new_code_cell, new_notebook
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission
from himalia.execution.base import Executor, StepHandle
from himalia.identity.caller import Caller
from himalia.store.events import RunFinished
from himalia.store.orm import ScenarioRun, utcnow
from himalia.wire.identity import CreateGroup, CreateProject, CreateUser
from himalia.wire.scenarios import RunRequest, SaveScenario
from himalia.wire.steps import StepJob, StepResult

PROJECT = "BENCH"
USER = "bench"
PARAMETERS = {"x": 5}
TARGET = 1.10
#: The phases spent in the worker process (the rest is the control plane's bookkeeping).
WORKER_PHASES = (
    "papermill started (worker's first line)",
    "kernel started",
    "last output line",
    "worker exited (HTML, exit)",
)


def make_notebook(sleep: float = 0.0) -> dict[str, Any]:
    cells = [
        new_code_cell("x: int = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("y = x * 2"),
        new_code_cell("print('y is', y)"),
    ]
    if sleep:
        cells.append(new_code_cell(f"import time\ntime.sleep({sleep})"))
    node = new_notebook(cells=cells)
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return dict(nbformat.from_dict(node))


# -- the platform ---------------------------------------------------------------------------------


class TimedHandle(StepHandle):
    def __init__(self, inner: StepHandle, record: dict[str, datetime]) -> None:
        self.inner, self.record = inner, record

    def wait(self) -> StepResult:
        try:
            return self.inner.wait()
        finally:
            self.record["executor_done"] = utcnow()

    def abort(self) -> None:
        self.inner.abort()


class TimedExecutor(Executor):
    """Delegates to the engine's own executor, noting when a step is handed over and when it ends."""

    def __init__(self, inner: Executor, records: dict[int, dict[str, datetime]]) -> None:
        super().__init__()
        self.inner, self.records = inner, records
        self.isolates_code, self.isolation = inner.isolates_code, inner.isolation

    def start(self, job: StepJob, on_output: Callable[[str], None]) -> StepHandle:
        record = self.records.setdefault(job.run_id, {})
        record["executor_start"] = utcnow()

        def output(line: str) -> None:
            now = utcnow()
            record.setdefault("papermill_started", now)  # its first line (the log keeps no file lines)
            if "Executing notebook with kernel" in line:
                record["kernel_ready"] = now
            record["last_output"] = now
            on_output(line)

        return TimedHandle(self.inner.start(job, output), record)

    def close(self) -> None:
        self.inner.close()


class Platform:
    def __init__(self, home: Path, label: str) -> None:
        self.label = label
        self.plane = ControlPlane(
            home=str(home),
            db_url=f"sqlite:///{home / 'himalia.sqlite'}",
            secret_keys=[Fernet.generate_key().decode()],
            audit_key=secrets.token_hex(32),
        )
        self.plane.start()
        operator = Caller.operator("bench", client_address="bench")
        self.plane.users.create_group(operator, CreateGroup(name="bench-admins", permissions=[GlobalPermission.ADMIN]))
        self.plane.users.create_user(operator, CreateUser(login=USER, groups=["bench-admins"]))
        self.caller = self.plane.users.caller_for(USER)
        self.plane.projects.create_project(self.caller, CreateProject(key=PROJECT, name="Benchmark"))
        self._finished: dict[int, datetime] = {}
        self._done = threading.Condition()
        self.executor_times: dict[int, dict[str, datetime]] = {}
        self.request_times: dict[int, dict[str, datetime]] = {}
        self.plane.events.subscribe(RunFinished, self._on_finished)

    def save(self, slug: str, notebook: dict[str, Any]) -> None:
        definition = {
            "id": slug,
            "name": slug,
            "concurrency": "queue",
            "steps": [{"name": "nb", "type": "notebook", "notebook": f"{slug}.ipynb", "parameters": {"x": 1}}],
        }
        spec = SaveScenario.model_validate({"definition": definition, "notebooks": {f"{slug}.ipynb": notebook}})
        self.plane.scenarios.save_scenario(self.caller, PROJECT, spec)

    def start_engine(self, warm_workers: int = 1, kernel_pool: int = 1, refill_niceness: int = 10) -> None:
        if self.plane.engine is not None:
            self.plane.engine.stop()
        self.plane.config.LocalExecutor.update(
            warm_workers=warm_workers, kernel_pool=kernel_pool, refill_niceness=refill_niceness
        )
        engine = self.plane.start_engine(schedule=False)
        engine.executor = TimedExecutor(engine.executor, self.executor_times)

    def _on_finished(self, event: RunFinished) -> None:
        with self._done:
            self._finished[event.run_id] = utcnow()
            self._done.notify_all()

    def run(self, slug: str) -> float:
        """Request a run and wait until it is finished; wall seconds, request to finished."""
        requested = utcnow()
        started = time.perf_counter()
        run = self.plane.runs.request_run(self.caller, PROJECT, slug, RunRequest(parameters=PARAMETERS))
        returned = utcnow()
        with self._done:
            if not self._done.wait_for(lambda: run.id in self._finished, timeout=600):
                raise RuntimeError(f"run #{run.id} of {slug} did not finish within 10 minutes")
        elapsed = time.perf_counter() - started
        self.request_times[run.id] = {"requested": requested, "request_returned": returned}
        state = self.plane.runs.get_run(self.caller, PROJECT, slug, run.id).state
        if state != "succeeded":
            raise RuntimeError(f"run #{run.id} of {slug} ended {state}")
        return elapsed

    def phases(self, run_ids: list[int]) -> dict[str, list[float]]:
        """Milliseconds spent between consecutive moments of each run."""
        phases: dict[str, list[float]] = {}
        with self.plane.db.read() as session:
            runs = session.scalars(
                select(ScenarioRun).options(selectinload(ScenarioRun.steps)).where(ScenarioRun.id.in_(run_ids))
            ).all()
            for run in runs:
                step = run.steps[0]
                moments = [
                    ("requested", self.request_times[run.id]["requested"]),
                    ("request_run returned", self.request_times[run.id]["request_returned"]),
                    ("claimed by the engine", run.started_at),
                    ("step started", step.started_at),
                    ("handed to a worker", self.executor_times[run.id]["executor_start"]),
                    ("papermill started (worker's first line)", self.executor_times[run.id]["papermill_started"]),
                    ("kernel started", self.executor_times[run.id]["kernel_ready"]),
                    ("last output line", self.executor_times[run.id]["last_output"]),
                    ("worker exited (HTML, exit)", self.executor_times[run.id]["executor_done"]),
                    ("step stored (artifacts)", step.ended_at),
                    ("run stored finished", run.ended_at),
                    ("RunFinished published", self._finished[run.id]),
                ]
                for (_, before), (label, after) in itertools.pairwise(moments):
                    assert before is not None and after is not None
                    phases.setdefault(label, []).append((after - before).total_seconds() * 1000)
        return phases

    def stop(self) -> None:
        self.plane.stop()


# -- plain papermill ------------------------------------------------------------------------------


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send fd 2 (and so the kernel's own stderr: its TCP warning) to a file during the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def papermill_in_process(source: Path, folder: Path, log: Path) -> float:
    started = time.perf_counter()
    with stderr_to(log):
        papermill.execute_notebook(
            str(source), str(folder / "out-inprocess.ipynb"), parameters=PARAMETERS, progress_bar=False
        )
    return time.perf_counter() - started


def papermill_command() -> list[str]:
    script = Path(sys.executable).parent / "papermill"
    return [str(script)] if script.exists() else [sys.executable, "-m", "papermill"]


def papermill_cli(source: Path, folder: Path, log: Path) -> float:
    command = [*papermill_command(), str(source), str(folder / "out-cli.ipynb"), "--no-progress-bar"]
    for name, value in PARAMETERS.items():
        command += ["-p", name, str(value)]
    started = time.perf_counter()
    with log.open("ab") as sink:
        subprocess.run(command, check=True, stdout=sink, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------------------


def settle(timeout: float = 10.0) -> None:
    """Wait until no child process of ours has used CPU for 0.6 s (a worker refilling, a kernel
    shutting down)."""
    me = psutil.Process()
    deadline = time.monotonic() + timeout

    def busy() -> float:
        total = 0.0
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                total += times.user + times.system
        return total

    previous, quiet = busy(), 0
    while time.monotonic() < deadline and quiet < 3:
        time.sleep(0.2)
        current = busy()
        quiet = quiet + 1 if current - previous < 0.005 else 0
        previous = current


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Approach:
    label: str
    once: Callable[[], float]


def interleaved(approaches: list[Approach], rounds: int) -> dict[str, list[float]]:
    """One untimed warm-up each, then ``rounds`` rounds; the order rotates every round."""
    for approach in approaches:
        settle()
        approach.once()
    samples: dict[str, list[float]] = {a.label: [] for a in approaches}
    for round_ in range(rounds):
        shift = round_ % len(approaches)
        for approach in approaches[shift:] + approaches[:shift]:
            settle()
            samples[approach.label].append(approach.once())
    return samples


#: Each platform's target against papermill in-process (its median over papermill's).
TARGETS = {"platform, kernel pool": (1.0, "<"), "platform, warm worker": (TARGET, "<=")}


def report(title: str, samples: dict[str, list[float]], baseline: str, cli: str) -> None:
    print(f"\n{title}")
    width = max(len(label) for label in samples)
    print(f"  {'':{width}}  {'median s':>8}  {'p90 s':>6}  {'runs':>4}")
    for label, times in samples.items():
        print(f"  {label:{width}}  {statistics.median(times):8.3f}  {percentile(times, 0.9):6.3f}  {len(times):>4}")
    in_process, command = statistics.median(samples[baseline]), statistics.median(samples[cli])
    for label, times in samples.items():
        if not label.startswith("platform"):
            continue
        platform = statistics.median(times)
        ratio = platform / in_process
        line = f"  {label + ' / papermill in-process:':{width + 26}} {ratio:5.2f}x"
        if label in TARGETS:
            target, sense = TARGETS[label]
            met = ratio < target if sense == "<" else ratio <= target
            line += f"  (target {sense} {target:.2f}x: {'met' if met else 'NOT met'})"
        print(line)
        print(
            f"  {label + ' / papermill CLI:':{width + 26}} {platform / command:5.2f}x"
            f"  ({(platform - in_process) * 1000:+.0f} ms per run against papermill in-process)"
        )


#: A stand-in for a warm worker: the same imports, then one job when told, then a second one.
FRESH_WORKER = """
import json, sys, time
import himalia.execution.worker
import nbformat, papermill
from nbconvert import HTMLExporter
print("ready", flush=True)
source, output = sys.stdin.readline().split()
times = {}
for attempt in ("first", "second"):
    started = time.perf_counter()
    papermill.execute_notebook(source, output, parameters={"x": 5}, progress_bar=False)
    middle = time.perf_counter()
    HTMLExporter().from_notebook_node(nbformat.read(output, as_version=4))
    times[f"{attempt} papermill"] = middle - started
    times[f"{attempt} HTML export"] = time.perf_counter() - middle
times["exit from"] = time.time()
print(json.dumps(times), flush=True)
"""


def fresh_process(source: Path, folder: Path, concurrent_import: bool) -> dict[str, float]:
    """What a warm worker pays, outside the platform: a fresh interpreter that has already imported
    what ``himalia.execution.worker`` imports runs papermill then the HTML export, twice (the first pair is
    what each worker, one step per process, pays; the second what a reused process would pay), then
    exits, which the executor waits for. With ``concurrent_import``, another interpreter imports
    the worker's modules meanwhile, as the executor's refill of its warm pool does."""
    settle()
    child = subprocess.Popen(
        [sys.executable, "-c", FRESH_WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdout.readline()
    settle()
    refill = subprocess.Popen([sys.executable, "-c", "import himalia.execution.worker"]) if concurrent_import else None
    child.stdin.write(f"{source} {folder / 'out-fresh.ipynb'}\n")
    child.stdin.close()
    output = child.stdout.read()
    child.wait()
    exited = time.time()
    if refill is not None:
        refill.wait()
    if child.returncode != 0:
        raise RuntimeError(f"the stand-in worker failed ({child.returncode})")
    times: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    times["interpreter exit"] = exited - times.pop("exit from")
    return times


def report_fresh(source: Path, folder: Path, repeats: int, in_process: float) -> None:
    samples: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    for _ in range(repeats):
        for concurrent in (False, True):
            for label, seconds in fresh_process(source, folder, concurrent).items():
                samples[concurrent].setdefault(label, []).append(seconds)
    alone = {label: statistics.median(times) for label, times in samples[False].items()}
    busy = {label: statistics.median(times) for label, times in samples[True].items()}
    print(
        f"\nA worker's share, reproduced outside the platform (a fresh interpreter with the worker's imports "
        f"done; median of {repeats}):"
    )
    print(f"  {'':20}  {'alone':>7}  {'while another interpreter imports them (the refill)':>52}")
    parts = ("first papermill", "first HTML export", "interpreter exit")
    for label in parts:
        print(f"  {label:20}  {alone[label] * 1000:4.0f} ms  {busy[label] * 1000:49.0f} ms")
    total_alone, total_busy = sum(alone[p] for p in parts), sum(busy[p] for p in parts)
    print(f"  {'total':20}  {total_alone * 1000:4.0f} ms  {total_busy * 1000:49.0f} ms")
    print(
        f"  (papermill in this warm process: {in_process * 1000:.0f} ms, no HTML, no exit; a second job in the "
        f"same interpreter: papermill {alone['second papermill'] * 1000:.0f} ms, "
        f"HTML export {alone['second HTML export'] * 1000:.0f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds of the short notebook (default 15)")
    parser.add_argument("--long-runs", type=int, default=5, help="timed rounds of the 2-second notebook (default 5)")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds the long notebook sleeps (default 2)")
    parser.add_argument(
        "--burst-runs", type=int, default=8, help="back-to-back platform runs per warm_workers value (default 8)"
    )
    parser.add_argument(
        "--fresh-repeats", type=int, default=3, help="fresh interpreters timing a worker's share (default 3)"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="himalia-bench-scenarios-") as name:
        folder = Path(name)
        log = folder / "papermill.log"
        short, long = make_notebook(), make_notebook(args.sleep)
        sources = {"short": folder / "short.ipynb", "long": folder / "long.ipynb"}
        for slug, node in (("short", short), ("long", long)):
            nbformat.write(nbformat.from_dict(node), sources[slug])
        # One control plane per executor configuration, each with its own home and store.
        settings = {
            "platform, kernel pool": {"kernel_pool": 1},
            "platform, kernel pool, refill at normal priority": {"kernel_pool": 1, "refill_niceness": 0},
            "platform, warm worker": {"kernel_pool": 0},
        }
        platforms: list[Platform] = []
        try:
            for index, (label, options) in enumerate(settings.items()):
                home = folder / f"home-{index}"
                home.mkdir()
                platform = Platform(home, label)
                platforms.append(platform)
                platform.save("short", short)
                platform.save("long", long)
                platform.start_engine(**options)
            pooled, _, warm = platforms
            isolation = pooled.plane.engine.executor.isolation  # type: ignore[union-attr]
            assert isolation is not None
            print(
                f"Scenario run overhead: one notebook step, kernel python3, parameter x={PARAMETERS['x']}; "
                f"SQLite store, local executor (UserIsolation.mode={isolation.mode}), {os.cpu_count()} CPUs.\n"
                "Order rotates every round; each measurement starts once no child process uses CPU (a run's "
                "refill then overlaps the run itself)."
            )

            def approaches(slug: str, chosen: list[Platform]) -> list[Approach]:
                return [
                    *(Approach(p.label, lambda p=p: p.run(slug)) for p in chosen),  # type: ignore[misc]
                    Approach("papermill in-process", lambda: papermill_in_process(sources[slug], folder, log)),
                    Approach("papermill CLI", lambda: papermill_cli(sources[slug], folder, log)),
                ]

            first = {p.label: max(p.request_times, default=0) + 1 for p in platforms}
            samples = interleaved(approaches("short", platforms), args.runs)
            report(
                f"Short notebook (3 cells), warm_workers=1, {args.runs} rounds after one warm-up each:",
                samples,
                "papermill in-process",
                "papermill CLI",
            )
            in_process_median = statistics.median(samples["papermill in-process"])
            overheads = {p.label: statistics.median(samples[p.label]) - in_process_median for p in (pooled, warm)}
            phases = {
                p.label: p.phases(sorted(i for i in p.request_times if i > first[p.label])) for p in (pooled, warm)
            }
            print(f"\nWhere the platform's time goes (short notebook, median of {args.runs} interleaved runs, ms):")
            labels = list(phases[pooled.label])
            width = max(len(label) for label in labels)
            print(f"  {'':{width + 3}}  {'kernel pool':>11}  {'warm worker':>11}")
            for label in labels:
                row = "  ".join(f"{statistics.median(phases[p.label][label]):11.1f}" for p in (pooled, warm))
                print(f"  -> {label:{width}}  {row}")
            for p in (pooled, warm):
                inside = sum(statistics.median(phases[p.label][label]) for label in WORKER_PHASES)
                outside = sum(
                    statistics.median(t) for label, t in phases[p.label].items() if label not in WORKER_PHASES
                )
                print(
                    f"  {p.label}: in the worker process {inside:.0f} ms, the control plane around it {outside:.0f} ms"
                )

            if args.long_runs:
                samples = interleaved(approaches("long", [pooled, warm]), args.long_runs)
                report(
                    f"Long notebook (+ a cell sleeping {args.sleep:g} s), {args.long_runs} rounds:",
                    samples,
                    "papermill in-process",
                    "papermill CLI",
                )
                in_process_long = statistics.median(samples["papermill in-process"])
                for p in (pooled, warm):
                    print(
                        f"  {p.label}: {overheads[p.label] * 1000:+.0f} ms on the short notebook, "
                        f"{(statistics.median(samples[p.label]) - in_process_long) * 1000:+.0f} ms on the long one "
                        "(fixed, not proportional, if these are close)"
                    )

            if args.burst_runs:
                print(f"\nBack to back: {args.burst_runs} platform runs of the short notebook, no pause in between")
                for options in ({"kernel_pool": 0}, {"kernel_pool": 1}, {"kernel_pool": 2}):
                    pooled.start_engine(**options)
                    pooled.run("short")  # warm-up: the executor learns the (account, kernel) pair
                    settle()
                    times = [pooled.run("short") for _ in range(args.burst_runs)]
                    print(
                        f"  warm_workers=1, kernel_pool={options['kernel_pool']}:  "
                        f"median {statistics.median(times):.3f} s  p90 {percentile(times, 0.9):.3f} s  "
                        f"({' '.join(f'{t:.2f}' for t in times)})"
                    )

        finally:
            for platform in platforms:
                platform.stop()

        if args.fresh_repeats:
            report_fresh(sources["short"], folder, args.fresh_repeats, in_process_median)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
