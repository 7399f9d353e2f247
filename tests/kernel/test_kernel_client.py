"""The kernel client (``import himalia``) against a live control plane, in-process and in a real kernel."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pyarrow as pa
import pytest
import requests
from nbclient import NotebookClient

import himalia
from himalia.controlplane import ControlPlane
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller
from himalia.kernel import client as kernel_client
from himalia.wire.data import AccessSpec, CreateConnection, CreateDataset

from ..conftest import AUDIT_KEY, SECRET_KEY, SHARED_SECRET, LiveAPI

#: What a kernel never loads: the control plane's store, services and hosts, and what only they need.
CONTROL_PLANE = (
    "himalia.store",
    "himalia.identity",
    "himalia.scenarios",
    "himalia.hosts",
    "himalia.api",
    "alembic",
    "cryptography",
    "sqlalchemy.orm",
)
#: A fresh interpreter's prologue: ``checkpoint(label)`` keeps the names in ``sys.modules`` at that point.
CHECKPOINTS = """
import json, sys
_seen = {}
def checkpoint(label):
    _seen[label] = sorted(sys.modules)
"""


@pytest.fixture
def as_role(api: LiveAPI, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make the client see the platform as a kernel started for ``role`` in ALPHA would."""

    def become(role: str) -> None:
        monkeypatch.setenv("HIMALIA_API_URL", api.base)
        monkeypatch.setenv("HIMALIA_TOKEN", api.world.tokens[role])
        monkeypatch.setenv("HIMALIA_PROJECT", "ALPHA")
        monkeypatch.delenv("HIMALIA_RUN_ID", raising=False)
        kernel_client.client.cache_clear()

    yield become
    kernel_client.client.cache_clear()


def modules_at_checkpoints(program: str, environment: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Run ``program`` in a fresh interpreter; what ``sys.modules`` held at each of its checkpoints."""
    code = f"{CHECKPOINTS}\n{program}\nprint(json.dumps(_seen))"
    command = [sys.executable, "-c", code]
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert finished.returncode == 0, finished.stderr
    seen: dict[str, list[str]] = json.loads(finished.stdout.splitlines()[-1])
    return seen


def control_plane_modules(modules: list[str]) -> list[str]:
    return [name for name in modules if any(name == m or name.startswith(m + ".") for m in CONTROL_PLANE)]


def test_importing_the_client_loads_no_control_plane() -> None:
    seen = modules_at_checkpoints(
        """
import himalia
checkpoint("import himalia")
himalia.connection
checkpoint("himalia.connection")
class Shell:
    def register_magic_function(self, function, magic_kind, magic_name):
        self.magic = (magic_name, magic_kind)
shell = Shell()
himalia.load_ipython_extension(shell)
assert shell.magic == ("sql", "cell")
checkpoint("%load_ext himalia")
"""
    )
    assert [name for name in seen["import himalia"] if name.startswith("himalia")] == ["himalia"]  # no extension
    for label, modules in seen.items():
        assert control_plane_modules(modules) == [], label
        # The drivers come with the first read, not with the names.
        assert not {"pandas", "sqlalchemy", "duckdb", "himalia.data.drivers"} & set(modules), label


def test_the_client_in_use_loads_no_control_plane(api: LiveAPI, plane: ControlPlane, tmp_path: Path) -> None:
    """Reading SQL and files datasets, a query, the ``%%sql`` magic and variables, as a kernel does."""
    admin = plane.users.caller_for("admin")
    (tmp_path / "drop").mkdir()
    pd.DataFrame({"card_id": ["C1"], "score": [610]}).to_csv(tmp_path / "drop" / "scores.csv", index=False)
    contributors = AccessSpec(mode="groups", groups=["contributors"])
    drop = CreateConnection(name="drop", type="files", params={"url": str(tmp_path / "drop")}, usable_by=contributors)
    plane.connections.create_connection(admin, drop)
    plane.datasets.create_dataset(
        admin, "ALPHA", CreateDataset(name="scores", connection="drop", path="scores.csv", format="csv")
    )
    environment = {
        **{name: value for name, value in os.environ.items() if name != "HIMALIA_RUN_ID"},
        "HIMALIA_API_URL": api.base,
        "HIMALIA_TOKEN": api.world.tokens["contributor"],
        "HIMALIA_PROJECT": "ALPHA",
    }
    seen = modules_at_checkpoints(
        """
import himalia
from himalia.kernel.magic import sql
assert len(himalia.dataset("transactions").to_pandas(limit=3)) == 3
assert himalia.dataset("scores").to_pandas()["score"].tolist() == [610]
assert int(sql("wh", "SELECT COUNT(*) AS n FROM merchants")["n"][0]) == 40
himalia.variables()
checkpoint("used")
""",
        environment,
    )
    assert {"pandas", "sqlalchemy", "duckdb"} <= set(seen["used"])  # what was used was loaded...
    assert control_plane_modules(seen["used"]) == []  # ...and nothing of the control plane


def test_outside_any_platform_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HIMALIA_API_URL", "HIMALIA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # no running Jupyter server to find
    kernel_client.client.cache_clear()
    with pytest.raises(himalia.HimaliaClientError) as error:
        himalia.dataset("anything")
    assert str(error.value) == kernel_client.NOT_FOUND
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_reading_through_the_client(as_role, plane: ControlPlane) -> None:  # type: ignore[no-untyped-def]
    as_role("reader")
    transactions = himalia.dataset("transactions")
    frame = transactions.to_pandas(limit=7)
    assert isinstance(frame, pd.DataFrame) and frame.shape == (7, 13)
    assert [c["name"] for c in transactions.schema][:3] == ["transaction_id", "card_id", "merchant_id"]
    counted = himalia.connection("wh").read_sql(
        "SELECT COUNT(*) AS n FROM merchants WHERE state = :state", {"state": "CA"}
    )
    assert counted.columns.tolist() == ["n"]
    reads = plane.audit.list_entries(Caller.operator(), AuditFilter(action="connection.read_credentials"), 10, 0)
    assert {e.actor for e in reads.items} == {"reader"}


def test_secrets_stay_out_of_reprs_and_errors(as_role) -> None:  # type: ignore[no-untyped-def]
    as_role("contributor")
    shared = himalia.connection("shared_db")
    usable = shared._usable()
    assert usable.secrets == {"token": SHARED_SECRET}  # the kernel may use it...
    for shown in (repr(shared), repr(usable), repr(kernel_client.client()), str(kernel_client.client().platform)):
        assert SHARED_SECRET not in shown  # ...but never shows it
        assert "hml_" not in shown
    with pytest.raises(himalia.HimaliaClientError, match="The query on 'wh' failed") as failed:
        himalia.connection("wh").read_sql("SELECT * FROM no_such_table")
    assert failed.value.__cause__ is None


def test_permissions_follow_the_user(as_role, plane: ControlPlane) -> None:  # type: ignore[no-untyped-def]
    as_role("nogrant")
    with pytest.raises(himalia.HimaliaClientError, match="There is no project 'ALPHA'"):
        himalia.dataset("transactions").to_pandas()
    with pytest.raises(himalia.HimaliaClientError, match="There is no connection 'wh'"):
        himalia.connection("wh").read_sql("SELECT 1")
    as_role("projadmin")  # ALPHA's admin, but wh is not usable by any of projadmin's groups...
    assert himalia.dataset("transactions").describe()["can_use_connection"] is False
    with pytest.raises(himalia.HimaliaClientError, match="There is no connection 'wh'"):
        himalia.connection("wh").read_sql("SELECT 1")
    assert len(himalia.dataset("transactions").to_pandas(limit=4)) == 4  # ...so its datasets come through the platform
    as_role("reader")
    with pytest.raises(himalia.HimaliaClientError, match="may not write"):
        himalia.dataset("transactions").write_pandas(pd.DataFrame({"a": [1]}))
    with pytest.raises(himalia.HimaliaClientError, match="403"):
        himalia.record_metric("x", 1)


def test_variables_metrics_and_writes(as_role, plane: ControlPlane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    admin = plane.users.caller_for("admin")
    plane.connections.create_connection(
        admin,
        CreateConnection(
            name="scratch",
            type="sql",
            params={"url": f"sqlite:///{tmp_path / 'scratch.sqlite'}"},
            allow_write=True,
            usable_by=AccessSpec(mode="groups", groups=["contributors"]),
        ),
    )
    as_role("contributor")
    frame = pd.DataFrame({"card_id": ["C1", "C2"], "score": [610, 587]})
    with sqlite3.connect(tmp_path / "scratch.sqlite") as scratch:
        scratch.execute("CREATE TABLE scores (card_id TEXT, score INTEGER)")
    plane.datasets.create_dataset(
        plane.users.caller_for("contributor"),
        "ALPHA",
        CreateDataset(name="scores", connection="scratch", table="scores"),
    )
    scores = himalia.dataset("scores")
    scores.write_pandas(frame)
    scores.write_pandas(frame, mode="append")
    assert scores.to_pandas()["score"].tolist() == [610, 587, 610, 587]
    assert himalia.set_project_variables({"threshold": 0.8}, region="eu") == {"threshold": 0.8, "region": "eu"}
    assert himalia.variables()["region"] == "eu"
    recorded = himalia.record_metric("rows_scored", 4, dataset="scores")
    assert (recorded["metric"], recorded["value"], recorded["actor"]) == ("rows_scored", 4, "contributor")


NOTEBOOK = [
    "import himalia\nframe = himalia.dataset('transactions').to_pandas(limit=25)\nlen(frame)",
    "%load_ext himalia",
    "%%sql wh\nSELECT COUNT(*) AS merchants FROM merchants",
    "merchants = _\nhimalia.record_metric('kernel_rows', int(len(frame)), dataset='transactions')\n"
    "int(merchants['merchants'][0])",
    "himalia.variables()",
]


def test_a_real_kernel_runs_a_notebook_with_the_client(as_role, plane: ControlPlane) -> None:  # type: ignore[no-untyped-def]
    as_role("contributor")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in NOTEBOOK])
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    outputs = [cell.outputs[0]["data"]["text/plain"] if cell.outputs else None for cell in notebook.cells]
    assert outputs[0] == "25"
    assert outputs[3] == "40"  # the warehouse the world seeds has 40 merchants
    series = plane.metrics.history(plane.users.caller_for("admin"), "ALPHA", metric="kernel_rows")
    assert [(v.value, v.dataset, v.actor, v.origin) for v in series] == [
        (25, "transactions", "contributor", "notebook")
    ]


def test_standalone_mode_finds_the_jupyter_server(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a plain ``jupyter server`` with the extension, the client needs no environment at all."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = tmp_path / "runtime"
    environment = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "HIMALIA_HOME": str(tmp_path),
        "HIMALIA_DB_URL": db_url,
        "HIMALIA_SECRET_KEYS": SECRET_KEY,
        "HIMALIA_AUDIT_KEY": AUDIT_KEY,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=standalone-test",
            "--allow-root",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/status", timeout=1).status_code in (200, 403):
                    break
            except requests.RequestException:
                time.sleep(0.3)
        for name in ("HIMALIA_API_URL", "HIMALIA_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        monkeypatch.setenv("HIMALIA_PROJECT", "ALPHA")
        kernel_client.client.cache_clear()
        frame = himalia.dataset("transactions").to_pandas(limit=3)
        assert len(frame) == 3
        assert kernel_client.client().platform.api_url == f"http://127.0.0.1:{port}/himalia/api/v1"
        # The README's example: no HIMALIA_PROJECT in a lab's kernel, ALPHA chosen in the sidebar
        # (the lab tells the server as its user; here with the server's token, as the same user).
        monkeypatch.delenv("HIMALIA_PROJECT")
        kernel_client.client.cache_clear()
        with pytest.raises(himalia.HimaliaClientError, match="No project: choose one in the Himalia sidebar"):
            himalia.dataset("transactions")
        api = f"http://127.0.0.1:{port}/himalia/api/v1"
        server_token = {"Authorization": "token standalone-test"}
        chosen = requests.put(f"{api}/me/project", json={"project": "ALPHA"}, headers=server_token, timeout=10)
        assert chosen.status_code == 200, chosen.text
        assert len(himalia.dataset("transactions").to_pandas(limit=5)) == 5
        # The extension streams the rows as the stand-alone service does.
        rows = requests.get(
            f"{api}/projects/ALPHA/datasets/transactions/data", params={"limit": 4}, headers=server_token, timeout=30
        )
        assert rows.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
        assert pa.ipc.open_stream(rows.content).read_all().num_rows == 4
        csv = requests.get(
            f"{api}/projects/ALPHA/datasets/transactions/data",
            params={"limit": 2, "format": "csv"},
            headers=server_token,
            timeout=30,
        )
        assert csv.headers["X-Himalia-Stopped-By"] == "limit" and len(csv.text.splitlines()) == 3
    finally:
        kernel_client.client.cache_clear()
        server.terminate()
        server.wait(30)


def contributors_only_connection(plane: ControlPlane, tmp_path: Path) -> None:
    """``drop``: files with a secret, usable by the contributors alone; ALPHA's ``scores`` lies on it."""
    admin = plane.users.caller_for("admin")
    (tmp_path / "drop").mkdir()
    pd.DataFrame({"card_id": ["C1", "C2", "C3"], "score": [610, 720, 587]}).to_csv(
        tmp_path / "drop" / "scores.csv", index=False
    )
    contributors = AccessSpec(mode="groups", groups=["contributors"])
    drop = CreateConnection(
        name="drop",
        type="files",
        params={"url": str(tmp_path / "drop")},
        secrets={"token": SHARED_SECRET},
        usable_by=contributors,
    )
    plane.connections.create_connection(admin, drop)
    plane.datasets.create_dataset(
        admin, "ALPHA", CreateDataset(name="scores", connection="drop", path="scores.csv", format="csv")
    )


def test_a_reader_reads_through_the_platform_and_never_receives_credentials(  # type: ignore[no-untyped-def]
    as_role, plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14's carol: read_content on the project, no use of the connection; to_pandas used to say
    "There is no connection" (a 404 on the credentials she may not fetch)."""
    contributors_only_connection(plane, tmp_path)
    as_role("reader")
    http = kernel_client.client()._http
    answers: list[requests.Response] = []
    send = http.request

    def recording(method: str, url: str, **kwargs: object) -> requests.Response:
        answer = send(method, url, **kwargs)  # type: ignore[arg-type]
        answers.append(answer)
        return answer

    monkeypatch.setattr(http, "request", recording)
    scores = himalia.dataset("scores")
    assert scores.to_pandas()["score"].tolist() == [610, 720, 587]
    assert scores.to_pandas(limit=2, columns=["score"]).to_dict("list") == {"score": [610, 720]}
    assert scores.to_arrow(columns=["card_id"]).column("card_id").to_pylist() == ["C1", "C2", "C3"]
    assert not [a for a in answers if "/credentials" in a.url]
    assert all(SHARED_SECRET.encode() not in a.content for a in answers)
    reads = plane.audit.list_entries(Caller.operator(), AuditFilter(action="connection.read_credentials"), 10, 0)
    assert reads.items == []
    with pytest.raises(himalia.HimaliaClientError, match="no column 'nope'") as unknown:
        scores.to_pandas(columns=["nope"])
    assert "columns" in str(unknown.value) or "no column" in str(unknown.value)
    as_role("contributor")  # who may use the connection reads it where it lives, with its credentials
    assert himalia.dataset("scores").to_pandas()["score"].tolist() == [610, 720, 587]
    reads = plane.audit.list_entries(Caller.operator(), AuditFilter(action="connection.read_credentials"), 10, 0)
    assert [e.actor for e in reads.items] == ["contributor"]


def test_the_platform_says_when_it_stopped_early(as_role, plane: ControlPlane) -> None:  # type: ignore[no-untyped-def]
    as_role("projadmin")  # reads wh's transactions through the platform
    plane.reading.bounds.default_rows = 10
    with pytest.warns(UserWarning, match="default of 10 rows and more exist; pass limit="):
        assert len(himalia.dataset("transactions").to_pandas()) == 10
    plane.reading.bounds.max_bytes = 2048
    with pytest.warns(UserWarning, match="at its size limit"):
        assert 0 < len(himalia.dataset("transactions").to_pandas(limit=300)) < 300


def test_a_kernel_knows_the_project_chosen_in_the_sidebar(  # type: ignore[no-untyped-def]
    as_role, api: LiveAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: "No project" in a workspace with FRAUD chosen in the sidebar."""
    as_role("reader")
    monkeypatch.delenv("HIMALIA_PROJECT")
    kernel_client.client.cache_clear()
    with pytest.raises(himalia.HimaliaClientError) as none_chosen:
        himalia.dataset("transactions")
    assert str(none_chosen.value) == kernel_client.NO_PROJECT
    chosen = api.request("PUT", "/me/project", role="reader", json={"project": "ALPHA"})
    assert chosen.status_code == 200 and chosen.json() == {"project": "ALPHA"}
    assert len(himalia.dataset("transactions").to_pandas(limit=2)) == 2
    assert himalia.dataset("transactions", project="ALPHA").project == "ALPHA"  # project= still wins
    monkeypatch.setenv("HIMALIA_PROJECT", "ELSEWHERE")  # and so does the environment, scheduled runs' rule
    kernel_client.client.cache_clear()
    assert himalia.dataset("transactions").project == "ELSEWHERE"
    # Someone else's choice is their own, and a project one cannot see cannot be chosen.
    assert api.request("GET", "/me/project", role="contributor").json() == {"project": None}
    hidden = api.request("PUT", "/me/project", role="nogrant", json={"project": "ALPHA"})
    assert hidden.status_code == 404
    cleared = api.request("PUT", "/me/project", role="reader", json={"project": None})
    assert cleared.json() == {"project": None}


def test_a_read_the_source_breaks_midway_is_an_error_not_a_short_frame(  # type: ignore[no-untyped-def]
    as_role, plane: ControlPlane, tmp_path: Path
) -> None:
    """A value SQLite let into an INTEGER column fails the read after rows were sent: the stream
    ends without its last batch, and the client says the read was cut instead of returning part."""
    database = tmp_path / "broken.sqlite"
    with sqlite3.connect(database) as broken:
        broken.execute("CREATE TABLE readings (n INTEGER)")
        broken.executemany("INSERT INTO readings VALUES (?)", [(i,) for i in range(2500)])
        broken.execute("UPDATE readings SET n = 'not a number' WHERE n = 2400")
    admin = plane.users.caller_for("admin")
    contributors = AccessSpec(mode="groups", groups=["contributors"])
    plane.connections.create_connection(
        admin,
        CreateConnection(name="broken", type="sql", params={"url": f"sqlite:///{database}"}, usable_by=contributors),
    )
    plane.datasets.create_dataset(admin, "ALPHA", CreateDataset(name="readings", connection="broken", table="readings"))
    as_role("reader")
    assert len(himalia.dataset("readings").to_pandas(limit=2000)) == 2000  # the first batch alone is whole
    with pytest.raises(himalia.HimaliaClientError, match="through the platform was cut short"):
        himalia.dataset("readings").to_pandas(limit=2500)
