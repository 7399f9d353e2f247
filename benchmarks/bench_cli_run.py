"""``himalia scenario run --wait`` against the ``papermill`` command: one short notebook, whole process.

One run:

1. creates a Himalia home (a SQLite store, its key files) where a user ``bench`` (administrator)
   owns a project ``BENCH`` and a scenario ``short`` of ONE notebook step, saved through
   ``ScenarioService`` as ``bench_scenarios.py`` saves it: its short notebook (a parameters cell
   and two trivial cells, kernel ``python3``); copies the home (``home-alone``), which no control
   plane serves, and writes the same notebook to ``in.ipynb``;
2. starts ``himalia serve`` once on the home (its operator socket answering, then idle);
3. times, in ``--rounds`` rounds whose order rotates (after one untimed warm-up round), each
   command as a whole process, once no process below this benchmark uses CPU (the serving engine's
   refill after a run is done) and ``himalia serve``'s own process under 5% of a core (idle after a
   run it keeps scanning its workers, about 2.5%):

   * ``himalia (serving)``  ``himalia --home H --as bench scenario run BENCH short -p x=1 --wait``:
     the command hands the run to ``himalia serve`` through the home's operator socket and follows
     it by long-polled GETs;
   * ``himalia (lean)``     the same command in ``home-alone``: it opens the store and carries the run
     out itself (its own engine, one warm worker, the API served from a thread);
   * ``papermill CLI``      ``papermill in.ipynb out.ipynb -p x 1`` (the same notebook and kernel).

It prints median, min and max, the ratios to ``papermill CLI`` (target, issue 17: ``himalia
(serving)`` <= 1.2x), and where each himalia command's time goes, from its run's timestamps in the
store against the process's start and exit. Every himalia command must exit 0 (the run succeeded),
and the serving control plane must have been handed every served run. It never asserts timings.

    .venv/bin/python benchmarks/bench_cli_run.py               # about 3 minutes idle, 5.5 at a load average of 6
    .venv/bin/python benchmarks/bench_cli_run.py --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import psutil

from himalia.wire import API_PREFIX

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scenarios import PROJECT, USER, Platform, make_notebook, papermill_command

ROOT = Path(__file__).resolve().parent.parent
HIMALIA = str(ROOT / ".venv" / "bin" / "himalia")
SCENARIO = "short"
TARGET = 1.2
SERVING, LEAN, PAPERMILL = "himalia (serving)", "himalia (lean)", "papermill CLI"


@dataclass
class Case:
    name: str
    command: list[str]
    home: Path | None = None  # the home whose store holds the runs of a himalia command
    times: list[float] = field(default_factory=list)
    #: Per timed run: the process's start and exit (wall clock), to place the run's timestamps.
    spans: list[tuple[datetime, datetime]] = field(default_factory=list)


def make_home(home: Path) -> None:
    """The user, the project and the scenario (``bench_scenarios``'s platform), and the key files the
    platform was given written into the home, so that any command on the home opens it as its own."""
    home.mkdir()
    platform = Platform(home, "bench")
    try:
        platform.save(SCENARIO, make_notebook())
        keys = {"secret.key": "\n".join(platform.plane.secret_keys), "audit.key": platform.plane.audit_key}
    finally:
        platform.stop()
    for name, text in keys.items():
        descriptor = os.open(home / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(text + "\n")


def serve(home: Path, environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``himalia serve`` on the home (a free port), once its operator socket answers and its start's work is done."""
    from himalia.core.operator_socket import socket_path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [HIMALIA, "--home", str(home), "serve", "--port", str(port)], env=environment, stdout=sink, stderr=sink
        )
    path = socket_path(str(home))
    if path is None:
        process.terminate()
        raise RuntimeError(f"{home}: too long a path for the operator socket")
    deadline = time.monotonic() + 120
    while not path.is_socket():
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"himalia serve did not open its operator socket ({process.returncode}); see {log}")
        time.sleep(0.1)
    settle(process.pid, timeout=60)
    return process


def settle(serving: int, timeout: float = 20.0) -> None:
    """Until, for a second, the processes below ours (``himalia serve``'s workers and kernels, a
    command's leftovers) use no CPU and ``himalia serve``'s own process (pid ``serving``) under 5% of
    a core: idle after a run, it keeps scanning its workers' processes, about 2.5% of a core, which
    ``bench_scenarios.settle`` (no CPU below it at all) would wait out to its timeout every time."""
    me = psutil.Process()

    def used() -> tuple[float, float]:
        own = below = 0.0
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                if child.pid == serving:
                    own += times.user + times.system
                else:
                    below += times.user + times.system
        return own, below

    deadline, quiet, previous = time.monotonic() + timeout, 0, used()
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(0.5)
        current = used()
        calm = current[0] - previous[0] < 0.025 and current[1] - previous[1] < 0.01
        quiet, previous = quiet + 1 if calm else 0, current


def stop_serving(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then its workers and kernels that outlive it (by their pids) are killed and reported."""
    with contextlib.suppress(psutil.NoSuchProcess):
        tree = psutil.Process(process.pid).children(recursive=True)
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print("himalia serve did not stop within 30 s of SIGTERM: killed")
    _, alive = psutil.wait_procs(tree, timeout=10)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            print(f"  still running after himalia serve stopped: pid {leftover.pid} {leftover.cmdline()[:3]}: killed")
            leftover.kill()


def run_case(case: Case, environment: dict[str, str], serving: int) -> None:
    settle(serving)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    done = subprocess.run(case.command, env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    ended_at = datetime.now(UTC)
    if done.returncode != 0:
        raise RuntimeError(f"{case.name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    case.times.append(elapsed)
    case.spans.append((started_at, ended_at))


def phases(case: Case) -> dict[str, list[float]]:
    """Seconds between consecutive moments of each timed run of a himalia command: its process's start,
    the run's creation, its claim, its step's start and end, its end, the process's exit."""
    import sqlalchemy as sa

    assert case.home is not None
    engine = sa.create_engine(f"sqlite:///{case.home / 'himalia.sqlite'}")
    with engine.connect() as sql:
        rows = sql.execute(
            sa.text(
                "SELECT r.created_at, r.started_at, s.started_at, s.ended_at, r.ended_at FROM scenario_runs r "
                "JOIN run_steps s ON s.run_id = r.id ORDER BY r.id"
            )
        ).all()
    engine.dispose()
    labels = (
        "process start -> run created (imports, store, request)",
        "run created -> claimed by the engine",
        "claimed -> step started",
        "step started -> step ended (worker, kernel, cells, report)",
        "step ended -> run ended",
        "run ended -> process exit (follow, print, exit)",
    )
    found: dict[str, list[float]] = {label: [] for label in labels}
    runs = rows[-len(case.spans) :]
    for (began, ended), row in zip(case.spans, runs, strict=True):
        moments = [began, *(parse(value) for value in row), ended]
        for label, (before, after) in zip(labels, itertools.pairwise(moments), strict=True):
            found[label].append((after - before).total_seconds())
    return found


def parse(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def report(cases: list[Case]) -> None:
    baseline = statistics.median(next(c for c in cases if c.name == PAPERMILL).times)
    print(f"\n  {'command':<20}{'median':>9}{'min':>8}{'max':>8}{'/ papermill CLI':>17}")
    for case in cases:
        median = statistics.median(case.times)
        ratio = f"{median / baseline:15.2f}x"
        if case.name == SERVING:
            ratio += f"  (target <= {TARGET:.1f}x: {'met' if median / baseline <= TARGET else 'NOT met'})"
        print(f"  {case.name:<20}{median:8.2f}s{min(case.times):7.2f}s{max(case.times):7.2f}s{ratio}")
    himalia = [c for c in cases if c.home is not None]
    split = {c.name: phases(c) for c in himalia}
    print("\n  where a himalia command's time goes (medians, s; run timestamps from the store):")
    print(f"  {'':<60}" + "".join(f"{c.name:>20}" for c in himalia))
    for label in next(iter(split.values())):
        print(f"  {label:<60}" + "".join(f"{statistics.median(split[c.name][label]):20.3f}" for c in himalia))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (after one untimed warm-up; default 10)")
    args = parser.parse_args()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="himalia-bench-cli-"))
    serving: subprocess.Popen[bytes] | None = None
    try:
        home, alone = folder / "home", folder / "home-alone"
        make_home(home)
        shutil.copytree(home, alone)  # the same store and keys, in a home no control plane serves
        source = folder / "in.ipynb"
        nbformat.write(nbformat.from_dict(make_notebook()), source)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HIMALIA_")}
        serve_log = folder / "serve.log"
        serving = serve(home, environment, serve_log)
        print(f"home made and himalia serve idle in {time.perf_counter() - started:.1f} s", flush=True)

        def scenario_run(where: Path) -> list[str]:
            return [HIMALIA, "--home", str(where), "--as", USER, "scenario", "run", PROJECT, SCENARIO, "-p", "x=1"]

        cases = [
            Case(SERVING, [*scenario_run(home), "--wait"], home),
            Case(LEAN, [*scenario_run(alone), "--wait"], alone),
            Case(PAPERMILL, [*papermill_command(), str(source), str(folder / "out.ipynb"), "-p", "x", "1"]),
        ]
        for round_number in range(args.rounds + 1):
            shift = round_number % len(cases)
            for case in cases[shift:] + cases[:shift]:
                run_case(case, environment, serving.pid)
            if round_number == 0:  # the warm-up: files into the OS cache, bytecode written, the pools started
                for case in cases:
                    case.times.clear()
                    case.spans.clear()
            print(f"round {round_number}{' (warm-up)' if round_number == 0 else ''} done", flush=True)
        handed = serve_log.read_text(errors="replace").count(
            f"POST {API_PREFIX}/projects/{PROJECT}/scenarios/{SCENARIO}/run "
        )
        if handed != args.rounds + 1:
            raise RuntimeError(f"himalia serve logged {handed} run requests, not {args.rounds + 1}; see {serve_log}")
        print(
            f"\nOne notebook step (3 cells, kernel python3, x=1), SQLite store, {os.cpu_count()} CPUs, "
            f"{args.rounds} rounds (order rotating), whole processes, each started once our processes are quiet:"
        )
        report(cases)
    finally:
        if serving is not None:
            stop_serving(serving)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
