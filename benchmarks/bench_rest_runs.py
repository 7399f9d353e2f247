"""A one-notebook run requested and followed over REST: Himalia against jupyter-scheduler 2.12.

One run:

1. installs jupyter-scheduler 2.12 with JupyterLab and ipykernel in a virtual environment of its
   own (``~/.cache/himalia-bench/jupyter-scheduler``, created once; never into ``.venv``) and
   starts ``jupyter server`` from it on a free port, with a token, a temporary root folder holding
   the notebook, and its job database and staging area in that folder;
2. seeds a temporary Himalia home (SQLite store, key files) with a user ``bench`` (administrator),
   an API token, a project ``BENCH`` and a scenario of ONE notebook step, through the services,
   and starts ``himalia serve`` on it (its defaults: a kernel pool of one, one warm worker); unless
   ``--no-extension``, also ``jupyter server`` from ``.venv`` on a copy of that home, whose
   Himalia extension serves the same API in-process;
3. times, in ``--rounds`` rounds whose order rotates (after one untimed warm-up each), the same
   notebook (a parameters cell and two trivial cells, kernel ``python3``) with the same
   parameter ``x=5``, each from its request to the client seeing it finished:

   * ``jupyter-scheduler``  ``POST /scheduler/jobs`` (output format ``ipynb``), then
     ``GET /scheduler/jobs/<id>`` every 0.1 s until its status is ``COMPLETED`` (its API has no
     way to wait for a change; 0.1 s is a tight poll, about 50 ms of the time on average);
   * ``himalia serve`` (and ``himalia in jupyter server``)
     ``POST /himalia/api/v1/projects/BENCH/scenarios/short/run``, then ``GET .../runs/<id>``
     and long-polled ``GET .../runs/<id>?wait=30`` with ``If-None-Match`` until the run's state
     is finished (what ``himalia scenario run --wait`` sends).

   Each measurement starts once no process below a server uses CPU and each server's own
   process at most the few percent it uses idle (``settle`` of ``bench_scenarios``, adapted to
   servers in processes of their own): the refill one run starts lands neither on the next run
   nor on the other tool's.

It prints median, min and max, the ratio to jupyter-scheduler (target: Himalia <= 0.5x), and
where the time goes by each tool's own time stamps; it checks that each tool's last output
notebook printed ``y is 10``. It never asserts timings. About 4 minutes with the defaults (plus
the install, once, about a minute).

    .venv/bin/python benchmarks/bench_rest_runs.py
    .venv/bin/python benchmarks/bench_rest_runs.py --rounds 3 --no-extension
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
import requests

from bench_scenarios import PARAMETERS, PROJECT, USER, Approach, make_notebook
from bench_startup import free_port, stop, wait_until_idle

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SCHEDULER_HOME = Path.home() / ".cache" / "himalia-bench" / "jupyter-scheduler"
SCHEDULER_PACKAGES = ("jupyter_scheduler==2.12.*", "jupyterlab", "ipykernel")
SCENARIO, NOTEBOOK = "short", "bench.ipynb"
API = "/himalia/api/v1"
#: jupyter-scheduler's API has no long poll: the client asks this often.
POLL_SECONDS = 0.1
#: How long a Himalia GET waits on the server for the run to change.
WAIT_SECONDS = 30
TARGET = 0.5
BASELINE = "jupyter-scheduler"
ACTIVE = {"queued", "running"}


def scheduler_bin() -> Path:
    """The virtual environment's bin folder, created and installed the first time."""
    marker = SCHEDULER_HOME / ".installed"
    if not marker.exists():
        print(f"installing jupyter-scheduler 2.12 into {SCHEDULER_HOME} (once)...", flush=True)
        shutil.rmtree(SCHEDULER_HOME, ignore_errors=True)
        SCHEDULER_HOME.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(SCHEDULER_HOME)], check=True)
        pip = [str(SCHEDULER_HOME / "bin" / "python"), "-m", "pip", "install", "--quiet", *SCHEDULER_PACKAGES]
        subprocess.run(pip, check=True)
        marker.write_text(" ".join(SCHEDULER_PACKAGES) + "\n")
    return SCHEDULER_HOME / "bin"


def version_in(python: Path, distribution: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


# -- the servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    process: subprocess.Popen[bytes]
    base: str
    headers: dict[str, str]
    log: Path

    def wait_until(self, path: str, timeout: float = 120) -> None:
        """Until ``GET path`` answers 200, then until the server's process tree is idle; stopped if not."""
        try:
            self._wait_until(path, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({self.process.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: {path} did not answer 200 within {timeout:.0f} s\n{self.log_tail()}")
            try:
                if requests.get(self.base + path, headers=self.headers, timeout=30).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet; held until served
                pass
            time.sleep(0.1)
        wait_until_idle(psutil.Process(self.process.pid))

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        stop(self.process)


def start(label: str, command: list[str], environment: dict[str, str], folder: Path, **base: Any) -> Server:
    log = folder / f"{label.replace(' ', '-')}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=environment, cwd=folder, start_new_session=True
        )
    return Server(label, process, log=log, **base)


def plain_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTER"))}


def jupyter_arguments(port: int, token: str, root: Path) -> list[str]:
    arguments = [
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    return [*arguments, "--allow-root"] if os.geteuid() == 0 else arguments


def jupyter_environment(folder: Path) -> dict[str, str]:
    """Jupyter's own folders in ``folder``: no user configuration, runtime files or data of this account."""
    environment = plain_environment()
    for name in ("CONFIG", "DATA", "RUNTIME"):
        path = folder / f"jupyter-{name.lower()}"
        path.mkdir(parents=True, exist_ok=True)
        environment[f"JUPYTER_{name}_DIR"] = str(path)
    return environment


def start_scheduler(bin_folder: Path, folder: Path) -> Server:
    """``jupyter server`` from jupyter-scheduler's environment, its job database and staging area in ``folder``."""
    port, token = free_port(), secrets.token_hex(24)
    command = [
        str(bin_folder / "jupyter"),
        "server",
        *jupyter_arguments(port, token, folder / "scheduler-root"),
        f"--SchedulerApp.db_url=sqlite:///{folder / 'scheduler.sqlite'}",
        f"--Scheduler.staging_path={folder / 'scheduler-staging'}",
    ]
    server = start(
        BASELINE,
        command,
        jupyter_environment(folder / "scheduler-env"),
        folder,
        base=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"token {token}"},
    )
    server.wait_until("/scheduler/config")
    return server


def make_home(home: Path) -> str:
    """The user, its token, the project and the one-notebook scenario, through the services; the token."""
    from himalia.controlplane import ControlPlane
    from himalia.core.permissions import GlobalPermission
    from himalia.identity.caller import Caller
    from himalia.wire.identity import CreateGroup, CreateProject, CreateToken, CreateUser
    from himalia.wire.scenarios import SaveScenario

    plane = ControlPlane(home=str(home))
    plane.start()
    try:
        operator = Caller.operator(client_address="bench")
        plane.users.create_group(operator, CreateGroup(name="bench-admins", permissions=[GlobalPermission.ADMIN]))
        plane.users.create_user(operator, CreateUser(login=USER, groups=["bench-admins"]))
        token = plane.tokens.create_token(operator, CreateToken(user=USER, name="benchmark")).token
        caller = plane.users.caller_for(USER)
        plane.projects.create_project(caller, CreateProject(key=PROJECT, name="Benchmark"))
        definition = {
            "id": SCENARIO,
            "name": SCENARIO,
            "concurrency": "queue",
            "steps": [{"name": "nb", "type": "notebook", "notebook": NOTEBOOK, "parameters": {"x": 1}}],
        }
        spec = SaveScenario.model_validate({"definition": definition, "notebooks": {NOTEBOOK: make_notebook()}})
        plane.scenarios.save_scenario(caller, PROJECT, spec)
    finally:
        plane.stop()
    return token


def start_himalia_serve(home: Path, token: str, folder: Path) -> Server:
    port = free_port()
    command = [str(VENV_BIN / "himalia"), "--home", str(home), "serve", "--port", str(port)]
    server = start(
        "himalia serve",
        command,
        plain_environment(),
        folder,
        base=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"token {token}"},
    )
    server.wait_until(f"{API}/me")
    return server


def start_himalia_extension(home: Path, token: str, folder: Path) -> Server:
    """``jupyter server`` from ``.venv``: the Himalia extension serves the API in-process on ``home``."""
    port = free_port()
    root = folder / "extension-root"
    root.mkdir()
    environment = {**jupyter_environment(folder / "extension-env"), "HIMALIA_HOME": str(home)}
    command = [str(VENV_BIN / "jupyter"), "server", *jupyter_arguments(port, secrets.token_hex(24), root)]
    server = start(
        "himalia in jupyter server",
        command,
        environment,
        folder,
        base=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"token {token}"},
    )
    server.wait_until(f"{API}/me")
    return server


# -- the clients ----------------------------------------------------------------------------------


def stamp(value: str | None) -> float:
    """Seconds since the epoch of Himalia's ISO time stamp."""
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Client:
    server: Server
    http: requests.Session = field(default_factory=requests.Session)
    #: Per run: seconds between the moments each tool records (its own time stamps).
    phases: list[dict[str, float]] = field(default_factory=list)
    requests_sent: list[int] = field(default_factory=list)
    last: str = ""

    def __post_init__(self) -> None:
        self.http.headers.update(self.server.headers)

    def once(self) -> float:
        raise NotImplementedError


class SchedulerClient(Client):
    def once(self) -> float:
        base = self.server.base
        payload: dict[str, Any] = {
            "name": "bench",
            "input_uri": NOTEBOOK,
            "runtime_environment_name": "python3",
            "output_formats": ["ipynb"],
            "parameters": {name: str(value) for name, value in PARAMETERS.items()},
        }
        posted = time.time()
        started = time.perf_counter()
        answer = self.http.post(f"{base}/scheduler/jobs", json=payload, timeout=60)
        answer.raise_for_status()
        job_id = answer.json()["job_id"]
        sent = 1
        while True:
            answer = self.http.get(f"{base}/scheduler/jobs/{job_id}", timeout=60)
            answer.raise_for_status()
            job, sent = answer.json(), sent + 1
            if job["status"] == "COMPLETED":
                break
            # A job is STOPPED from its creation until its process marks it IN_PROGRESS (the
            # column's default in jupyter_scheduler.orm): STOPPED ends it only once it started.
            if job["status"] == "FAILED" or (job["status"] == "STOPPED" and job["start_time"] is not None):
                message = f"job {job_id} ended {job['status']}: {job.get('status_message')}"
                raise RuntimeError(f"{message}\n{self.server.log_tail()}")
            time.sleep(POLL_SECONDS)
        elapsed, seen = time.perf_counter() - started, time.time()
        created, begun, ended = (job[name] / 1000 for name in ("create_time", "start_time", "end_time"))
        self.phases.append(
            {
                "request to job recorded": created - posted,
                "recorded to started (process spawned, imports)": begun - created,
                "started to ended (kernel, cells, output)": ended - begun,
                "ended to seen by the client": seen - ended,
            }
        )
        self.requests_sent.append(sent)
        self.last = job_id
        return elapsed

    def output_printed(self, staging: Path) -> bool:
        outputs = [p for p in (staging / self.last).rglob("*.ipynb") if p.name != NOTEBOOK]
        return any("y is 10" in p.read_text() for p in outputs)


class HimaliaClient(Client):
    def once(self) -> float:
        scenario = f"{self.server.base}{API}/projects/{PROJECT}/scenarios/{SCENARIO}"
        posted = time.time()
        started = time.perf_counter()
        answer = self.http.post(f"{scenario}/run", json={"parameters": PARAMETERS}, timeout=60)
        answer.raise_for_status()
        path = f"{scenario}/runs/{answer.json()['id']}"
        answer = self.http.get(path, timeout=60)
        answer.raise_for_status()
        run, etag, sent = answer.json(), answer.headers["Etag"], 2
        while run["state"] in ACTIVE:
            answer = self.http.get(
                path, params={"wait": WAIT_SECONDS}, headers={"If-None-Match": etag}, timeout=WAIT_SECONDS + 30
            )
            sent += 1
            if answer.status_code == 304:
                continue
            answer.raise_for_status()
            run, etag = answer.json(), answer.headers["Etag"]
        elapsed, seen = time.perf_counter() - started, time.time()
        if run["state"] != "succeeded":
            raise RuntimeError(f"run #{run['id']} ended {run['state']}: {run['message']}")
        step = run["steps"][0]
        self.phases.append(
            {
                "request to run recorded": stamp(run["created_at"]) - posted,
                "recorded to claimed by the engine": stamp(run["started_at"]) - stamp(run["created_at"]),
                "claimed to step ended (kernel, cells, HTML)": stamp(step["ended_at"]) - stamp(run["started_at"]),
                "step ended to run finished": stamp(run["ended_at"]) - stamp(step["ended_at"]),
                "finished to seen by the client": seen - stamp(run["ended_at"]),
            }
        )
        self.requests_sent.append(sent)
        self.last = path
        return elapsed

    def output_printed(self) -> bool:
        answer = self.http.get(f"{self.last}/notebook", timeout=60)
        answer.raise_for_status()
        return "y is 10" in answer.text


# -- measuring ------------------------------------------------------------------------------------

#: What a server's own process may use of a core and still count as idle: a Himalia host that ran
#: a step keeps scanning its warm worker's processes (``ProcessRegistry._watch``), about 3%.
SERVER_IDLE_SHARE = 0.05


def settle(servers: list[Server], timeout: float = 20.0) -> bool:
    """``bench_scenarios.settle`` for servers in processes of their own: until no process below a
    server (a worker refilling, a kernel starting or shutting down, a job's process) has used CPU
    for 0.6 s, and no server's own process more than ``SERVER_IDLE_SHARE`` of a core; False if
    ``timeout`` came first."""
    roots = [psutil.Process(server.process.pid) for server in servers]
    deadline = time.monotonic() + timeout

    def busy() -> tuple[list[float], float]:
        own, below = [], 0.0
        for root in roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = root.cpu_times()
                own.append(times.user + times.system)
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = child.cpu_times()
                        below += times.user + times.system
        return own, below

    (previous_own, previous_below), quiet = busy(), 0
    while time.monotonic() < deadline and quiet < 3:
        time.sleep(0.2)
        own, below = busy()
        calm = below - previous_below < 0.005 and all(
            now - before < SERVER_IDLE_SHARE * 0.2 for now, before in zip(own, previous_own, strict=False)
        )
        quiet = quiet + 1 if calm else 0
        previous_own, previous_below = own, below
    return quiet >= 3


def interleaved(approaches: list[Approach], rounds: int, servers: list[Server]) -> dict[str, list[float]]:
    """``bench_scenarios.interleaved`` with this settle: one warm-up each (printed), then
    ``rounds`` rounds whose order rotates, each measurement once the servers are idle."""
    warm_up, unsettled = [], 0
    for approach in approaches:
        unsettled += not settle(servers)
        warm_up.append(f"{approach.label} {approach.once():.2f} s")
    print(f"\nwarm-up (each server's first run): {', '.join(warm_up)}", flush=True)
    samples: dict[str, list[float]] = {a.label: [] for a in approaches}
    for round_ in range(rounds):
        shift = round_ % len(approaches)
        for approach in approaches[shift:] + approaches[:shift]:
            unsettled += not settle(servers)
            samples[approach.label].append(approach.once())
    if unsettled:
        print(f"  ({unsettled} measurements started before the servers were idle: 20 s passed first)")
    return samples


# -- the report -----------------------------------------------------------------------------------


def report(samples: dict[str, list[float]], clients: dict[str, Client]) -> None:
    baseline = statistics.median(samples[BASELINE])
    width = max(len(label) for label in samples)
    print(f"\n  {'':{width}}  {'median':>7}  {'min':>6}  {'max':>6}  {'/ ' + BASELINE:>20}  requests per run")
    for label, times in samples.items():
        ratio = statistics.median(times) / baseline
        verdict = "" if label == BASELINE else f" (target <= {TARGET:.1f}x: {'met' if ratio <= TARGET else 'NOT met'})"
        sent = clients[label].requests_sent[1:]  # the warm-up apart
        print(
            f"  {label:{width}}  {statistics.median(times):6.2f}s  {min(times):5.2f}s  {max(times):5.2f}s"
            f"  {ratio:19.2f}x  {statistics.median(sent):g}{verdict}"
        )
    print("\nWhere the time goes, by each tool's own time stamps (median ms; the warm-up apart):")
    for label, client in clients.items():
        runs = client.phases[1:]
        print(f"  {label}:")
        for phase in runs[0]:
            print(f"    {phase:50} {statistics.median(run[phase] for run in runs) * 1000:7.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds after one warm-up each (default 6)")
    parser.add_argument(
        "--no-extension", action="store_true", help="skip Himalia served by its extension in jupyter server"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    bin_folder = scheduler_bin()
    folder = Path(tempfile.mkdtemp(prefix="himalia-bench-rest-"))
    servers: list[Server] = []
    checks: dict[str, bool] = {}
    try:
        (folder / "scheduler-root").mkdir()
        nbformat.write(nbformat.from_dict(make_notebook()), folder / "scheduler-root" / NOTEBOOK)
        home = folder / "home"
        home.mkdir()
        token = make_home(home)
        if not args.no_extension:
            shutil.copytree(home, folder / "home-extension")  # the same store and keys, served by another host
        servers.append(start_scheduler(bin_folder, folder))
        servers.append(start_himalia_serve(home, token, folder))
        if not args.no_extension:
            servers.append(start_himalia_extension(folder / "home-extension", token, folder))
        clients: dict[str, Client] = {BASELINE: SchedulerClient(servers[0])}
        for server in servers[1:]:
            clients[server.label] = HimaliaClient(server)
        print(
            f"One notebook (3 cells, kernel python3, x={PARAMETERS['x']}) requested and followed over REST; "
            f"jupyter-scheduler {version_in(bin_folder / 'python', 'jupyter_scheduler')} "
            f"(jupyter_server {version_in(bin_folder / 'python', 'jupyter_server')}, polled every {POLL_SECONDS:g} s), "
            f"Himalia {version_in(VENV_BIN / 'python', 'himalia')} (long poll, wait={WAIT_SECONDS}); "
            f"{os.cpu_count()} CPUs. Order rotates every round; each measurement starts once the servers are idle.",
            flush=True,
        )
        approaches = [Approach(label, client.once) for label, client in clients.items()]
        samples = interleaved(approaches, args.rounds, servers)
        print(f"\n{args.rounds} rounds after one warm-up each, request to finished as the client sees it:")
        report(samples, clients)
        settle(servers)
        scheduler = clients[BASELINE]
        assert isinstance(scheduler, SchedulerClient)
        checks[BASELINE] = scheduler.output_printed(folder / "scheduler-staging")
        for label, client in clients.items():
            if isinstance(client, HimaliaClient):
                checks[label] = client.output_printed()
        print("\nThe last output notebook printed 'y is 10': " + json.dumps(checks))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
