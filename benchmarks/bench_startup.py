"""How soon Himalia's hosts answer and what they hold idle, beside plain Jupyter in the same run.

Four measures, each process started fresh, in rounds whose order rotates (``--runs`` rounds):

- ``jupyter lab`` until ``GET /api/status`` answers 200, with the Himalia extension and without it
  (``--ServerApp.jpserver_extensions himalia=False``, every other extension as installed); with it,
  also until Himalia's API answers (``GET /himalia/api/v1/me``, 200): the control plane's readiness;
- idle RSS, once the process tree has used no CPU for a second: ``himalia serve`` (its own process,
  then each child, e.g. the run engine's warm worker, separately), ``jupyter lab`` with the
  extension, and plain ``jupyter server`` (no extension at all) as the yardstick;
- ``himalia --help``, the whole process through the console script, beside ``python -c pass``.

Every host runs over a home prepared once (schema created, the local administrator made), so a
round measures a steady start, not the first one. It prints medians, min-max spread and the
differences and ratios the goals name (lab start +<= 0.5 s, idle serve <= 120 MiB, help < 0.3 s);
it never asserts timings. About two minutes with the defaults.

    .venv/bin/python benchmarks/bench_startup.py
    .venv/bin/python benchmarks/bench_startup.py --runs 3
"""

import argparse
import http.client
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager

BIN = Path(sys.executable).parent
MIB = 2**20
#: Seconds without CPU use, over the whole process tree, after which a server counts as idle.
QUIET_SECONDS = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status_of(port: int, path: str, token: str | None) -> int | None:
    """The HTTP status of ``GET path`` (with Jupyter's ``token``, if any), or None while nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_for(process: subprocess.Popen[bytes], port: int, path: str, token: str | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with status {process.returncode}")
        if status_of(port, path, token) == 200:
            return
        time.sleep(0.02)
    raise SystemExit(f"{path} did not answer 200 within {timeout:.0f} s")


def tree_cpu(root: psutil.Process) -> float:
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_until_idle(root: psutil.Process, timeout: float = 90) -> None:
    """Until the process and its children used no CPU for ``QUIET_SECONDS`` (a worker warming up counts)."""
    deadline = time.monotonic() + timeout
    last = tree_cpu(root)
    while time.monotonic() < deadline:
        time.sleep(QUIET_SECONDS)
        now = tree_cpu(root)
        if now - last < 0.02:
            return
        last = now
    raise SystemExit(f"{root.cmdline()[:3]} was still busy after {timeout:.0f} s")


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / MIB


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@dataclass
class Host:
    """A server command, over the prepared home, that answers ``probe`` when it is up."""

    label: str
    command: Callable[[int, str | None], list[str]]
    probe: str = "/api/status"
    #: A second path timed after ``probe`` (the Himalia API's readiness), if any.
    ready: str | None = None
    #: Whether the probes carry the Jupyter server's token (``himalia serve`` has none).
    jupyter_token: bool = True


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = workdir / "himalia-home"
        self.root = workdir / "root"
        self.root.mkdir()
        self.env = {
            **os.environ,
            "HIMALIA_HOME": str(self.home),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "HIMALIA_DB_URL": f"sqlite:///{self.home / 'himalia.sqlite'}",
        }
        self.root_option = os.geteuid() == 0

    def jupyter(self, app: str, *options: str) -> Callable[[int, str | None], list[str]]:
        def command(port: int, token: str | None) -> list[str]:
            line = [str(BIN / "jupyter"), app, "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
            line += ["--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
            line.append(f"--ServerApp.root_dir={self.root}")
            return line + (["--allow-root"] if self.root_option else []) + list(options)

        return command

    def serve(self, port: int, token: str | None) -> list[str]:
        return [str(BIN / "himalia"), "serve", f"--port={port}"]

    def start(self, host: Host) -> tuple[subprocess.Popen[bytes], float, float | None]:
        """Start ``host``; the process, seconds until ``probe`` answered and until ``ready`` did."""
        port = free_port()
        token = secrets.token_hex(16) if host.jupyter_token else None
        log = (self.workdir / f"{host.label.split()[0]}.log").open("ab")
        started = time.perf_counter()
        process = subprocess.Popen(
            host.command(port, token), stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_for(process, port, host.probe, token)
        answered = time.perf_counter() - started
        ready = None
        if host.ready:
            wait_for(process, port, host.ready, token)
            ready = time.perf_counter() - started
        return process, answered, ready


def plain_server_options() -> list[str]:
    """Every installed server extension turned off: Jupyter's own server and nothing else."""
    names = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
    return [option for name in sorted(names) for option in ("--ServerApp.jpserver_extensions", f"{name}=False")]


def median_spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    return f"{statistics.median(values) * scale:7.2f} {unit}  ({min(values) * scale:.2f}-{max(values) * scale:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of every measure (default 5)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="himalia-bench-startup-"))
    try:
        return run(Bench(workdir), args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(bench: Bench, runs: int) -> int:
    lab_with = Host("lab with Himalia", bench.jupyter("lab"), ready="/himalia/api/v1/me")
    lab_without = Host("lab without Himalia", bench.jupyter("lab", "--ServerApp.jpserver_extensions", "himalia=False"))
    plain = Host("plain jupyter server", bench.jupyter("server", *plain_server_options()))
    serve = Host("himalia serve", bench.serve, probe="/himalia/api/v1/health/live", jupyter_token=False)

    # The home prepared once: the schema created, the local administrator made.
    process, _, _ = bench.start(lab_with)
    stop(process)

    starts: dict[str, list[float]] = {lab_with.label: [], lab_without.label: []}
    ready: list[float] = []
    rss: dict[str, list[float]] = {lab_with.label: [], plain.label: [], serve.label: [], "serve's children": []}
    children: list[int] = []
    order = [lab_with, lab_without, plain, serve]
    for round_ in range(runs):
        shift = round_ % len(order)
        for host in order[shift:] + order[:shift]:
            process, answered, ready_after = bench.start(host)
            try:
                if host.label in starts:
                    starts[host.label].append(answered)
                if ready_after is not None:
                    ready.append(ready_after)
                if host.label in rss:
                    root = psutil.Process(process.pid)
                    wait_until_idle(root)
                    rss[host.label].append(rss_mib(root))
                    if host is serve:
                        kids = root.children(recursive=True)
                        children.append(len(kids))
                        rss["serve's children"].append(sum(rss_mib(kid) for kid in kids))
            finally:
                stop(process)

    help_seconds: dict[str, list[float]] = {"himalia --help": [], "python -c pass": []}
    commands = {"himalia --help": [str(BIN / "himalia"), "--help"], "python -c pass": [sys.executable, "-c", "pass"]}
    for round_ in range(max(runs, 5) * 2):
        for label in sorted(commands, reverse=bool(round_ % 2)):
            started = time.perf_counter()
            subprocess.run(commands[label], check=True, stdout=subprocess.DEVNULL, env=bench.env)
            help_seconds[label].append(time.perf_counter() - started)

    print(f"Himalia's hosts starting and idle, {runs} rounds, medians (min-max); {os.cpu_count()} cores,")
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print("until GET /api/status answers")
    for label, values in starts.items():
        print(f"  {label:32} {median_spread(values, 's')}")
    paired = [a - b for a, b in zip(starts[lab_with.label], starts[lab_without.label], strict=True)]
    print(f"  {'with - without (per round)':32} {median_spread(paired, 's')}   goal <= 0.5 s")
    print(f"  {'Himalia API ready (GET /me)':32} {median_spread(ready, 's')}")
    print("\nidle RSS")
    for label, values in rss.items():
        print(f"  {label:32} {median_spread(values, 'MiB')}")
    print(f"  {'':32} serve's children: {statistics.median(children):.0f} (the warm worker is part A1's)")
    serve_rss = statistics.median(rss[serve.label])
    print(f"  himalia serve / plain server: {serve_rss / statistics.median(rss[plain.label]):.2f}x, goal <= 120 MiB")
    print("\nwhole process")
    for label, values in help_seconds.items():
        print(f"  {label:32} {median_spread(values, 's')}")
    print("  goal: himalia --help < 0.3 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
