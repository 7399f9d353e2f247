"""Nothing acknowledged is lost: ``kill -9`` of ``himalia serve`` while CLI commands run beside it.

The review lost every write since a checkpoint after pointing a connection at the store's own
SQLite file (its close released the POSIX locks, a CLI command deleted the WAL). That door is
shut by the data-access policy; this test proves the property itself on both stores: every
write the API acknowledged is there after the crash, and ``audit verify`` agrees with it.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ..conftest import AUDIT_KEY, SECRET_KEY
from .conftest import Ledger, empty_postgres_database

WRITES = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "himalia", *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def serve(environment: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "himalia", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/himalia/api/v1/me", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("himalia serve did not start")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'himalia.sqlite'}"
        return
    with empty_postgres_database(request, "crash") as url:
        yield url


def test_acknowledged_writes_survive_kill_9(store: str, tmp_path: Path, ledger: Ledger) -> None:
    home = tmp_path / "home"
    environment = {
        **os.environ,
        "HIMALIA_HOME": str(home),
        "HIMALIA_DB_URL": store,
        "HIMALIA_SECRET_KEYS": SECRET_KEY,
        "HIMALIA_AUDIT_KEY": AUDIT_KEY,
    }
    assert cli(environment, "db", "upgrade").returncode == 0
    assert cli(environment, "group", "add", "admins", "--permission", "admin").returncode == 0
    assert cli(environment, "user", "add", "root-admin", "--group", "admins").returncode == 0
    token = cli(environment, "token", "create", "--user", "root-admin").stdout.strip()
    port = free_port()
    server = serve(environment, port)
    api = f"http://127.0.0.1:{port}/himalia/api/v1"
    headers = {"Authorization": f"token {token}"}

    # The original trigger: a connection on the store's own file is refused, so it is never opened.
    if store.startswith("sqlite"):
        attempt = requests.post(
            f"{api}/connections",
            headers=headers,
            json={"name": "store", "type": "sql", "params": {"url": store}},
            timeout=30,
        )
        assert ledger.tried("2 store opened as data", store, attempt.status_code == 403), attempt.text

    stop = threading.Event()
    cli_results: list[int] = []

    def cli_beside_the_server() -> None:  # readers and writers in other processes, as an operator's cron would
        index = 0
        while not stop.is_set():
            index += 1
            cli_results.append(cli(environment, "project", "list").returncode)
            cli_results.append(cli(environment, "user", "add", f"cli-{index}").returncode)

    beside = threading.Thread(target=cli_beside_the_server, daemon=True)
    beside.start()
    acknowledged: list[str] = []
    try:
        for index in range(WRITES):
            key = f"P{index:03d}"
            response = requests.post(f"{api}/projects", headers=headers, json={"key": key, "name": key}, timeout=60)
            if response.status_code == 201:
                acknowledged.append(key)
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown, no checkpoint
        server.wait(30)
        stop.set()
        beside.join(180)
    assert len(acknowledged) == WRITES
    assert cli_results and all(code == 0 for code in cli_results), cli_results

    restarted = serve(environment, port)
    try:
        found = requests.get(f"{api}/projects?limit=500", headers=headers, timeout=60).json()["items"]
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(30)
    keys = {project["key"] for project in found}
    for key in acknowledged:
        assert ledger.tried("11 crash: acknowledged write lost", key, key in keys), key
    verified = cli(environment, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
