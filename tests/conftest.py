"""Fixtures: the store on SQLite and on a real PostgreSQL, a seeded world, a live API server.

``backend``      "sqlite" or "postgresql"; tests that use ``db_url`` run once for each.
``db_url``       a fresh database copied from a migrated, seeded template of that backend.
``plane``        a started ``ControlPlane`` on ``db_url`` (fixed test keys).
``world``        the seeded people, projects and connections, and one API token per role.
``api``          a live ``himalia serve`` application on a loopback port, with a client.
``count_statements``  counts the SQL statements the store executes inside a ``with`` block.
"""

import asyncio
import atexit
import os
import shutil
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, event, text
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission as G
from himalia.demo.seed import build_warehouse
from himalia.hosts.operator_socket import OperatorSocket
from himalia.hosts.server import make_application
from himalia.identity.caller import Caller
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection, CreateDataset
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateGroup, CreateProject, CreateToken, CreateUser, SetGrant
from himalia.wire.scenarios import RunRequest, SaveScenario

from .postgres import TemporaryPostgres, find_bindir

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SECRET_KEY = Fernet.generate_key().decode()
AUDIT_KEY = "test-audit-key"
SHARED_SECRET = "hunter2-shared-Q7xZ"
ROLES = ("anonymous", "nogrant", "reader", "contributor", "projadmin", "admin")
#: Strings only people allowed to see ALPHA, its connection details or the target user may read.
PROJECT_NAME = "Alpha confidential"
PROJECT_DESCRIPTION = "alpha-description-marker"
TARGET_EMAIL = "target@private.example"
CONNECTION_URL = "s3://alpha-warehouse-marker"


@dataclass
class World:
    tokens: dict[str, str] = field(default_factory=dict)
    target_token_id: int = 0


def seed_world(plane: ControlPlane) -> World:
    op = Caller.operator("test-setup", client_address="test")
    users = plane.users
    for name, permissions in [
        ("administrators", [G.ADMIN]),
        ("readers", []),
        ("contributors", []),
        ("creators", [G.CREATE_PROJECTS, G.CREATE_CONNECTIONS]),
    ]:
        users.create_group(op, CreateGroup(name=name, permissions=permissions))
    for login, groups in [
        ("nogrant", []),
        ("reader", ["readers"]),
        ("contributor", ["contributors"]),
        ("projadmin", ["creators"]),
        ("admin", ["administrators"]),
        ("target", []),
    ]:
        email = TARGET_EMAIL if login == "target" else f"{login}@example.org"
        users.create_user(op, CreateUser(login=login, email=email, groups=groups))
    owner = users.caller_for("projadmin")
    plane.projects.create_project(owner, CreateProject(key="ALPHA", name=PROJECT_NAME, description=PROJECT_DESCRIPTION))
    plane.projects.set_grant(owner, "ALPHA", SetGrant(group="readers", preset="reader"))
    plane.projects.set_grant(owner, "ALPHA", SetGrant(group="contributors", preset="contributor"))
    both = AccessSpec(mode="groups", groups=["readers", "contributors"])
    plane.connections.create_connection(
        owner,
        CreateConnection(
            name="shared_db",
            type="files",
            params={"url": CONNECTION_URL},
            secrets={"token": SHARED_SECRET},
            usable_by=both,
            details_readable_by=AccessSpec(mode="groups", groups=["contributors"]),
        ),
    )
    plane.connections.create_connection(
        owner,
        CreateConnection(
            name="personal_db",
            type="files",
            params={"url": "s3://personal"},
            credentials_mode="per_user",
            usable_by=both,
        ),
    )
    admin = users.caller_for("admin")
    warehouse = Path(plane.home).with_name(f"{Path(plane.home).name}-warehouse.sqlite")  # never inside the home
    build_warehouse(warehouse, transactions=300, merchants=40)
    plane.connections.create_connection(
        admin,
        CreateConnection(name="wh", type="sql", params={"url": f"sqlite:///{warehouse}"}, usable_by=both),
    )
    plane.datasets.create_dataset(
        admin, "ALPHA", CreateDataset(name="transactions", connection="wh", table="transactions_2018")
    )
    plane.checks.save_check(
        admin, "ALPHA", "transactions", CheckSpec(name="Columns 13", type="in_set", metric="column_count", values=[13])
    )
    nightly = ScenarioDefinition.model_validate(
        {
            "id": "nightly",
            "name": "Nightly checks",
            "steps": [{"name": "Check", "type": "run_checks", "dataset": "transactions"}],
            "triggers": [{"type": "time", "schedule": "daily at 02:00"}],
        }
    )
    plane.scenarios.save_scenario(owner, "ALPHA", SaveScenario(definition=nightly))
    first = plane.runs.request_run(owner, "ALPHA", "nightly", RunRequest())
    plane.runs.abort(owner, "ALPHA", "nightly", first.id)  # a finished run, without an engine
    world = World()
    for role in ROLES[1:]:
        world.tokens[role] = plane.tokens.create_token(op, CreateToken(user=role, name="test")).token
    world.target_token_id = plane.tokens.create_token(op, CreateToken(user="target")).id
    return world


def make_plane(home: Path, db_url: str) -> ControlPlane:
    """As root, notebook steps run as their users' own OS accounts; a test session that cannot
    switch accounts says explicitly that it shares its own (the unsafe development setting)."""
    plane = ControlPlane(home=str(home), db_url=db_url, secret_keys=[SECRET_KEY], audit_key=AUDIT_KEY)
    if os.geteuid() != 0:
        plane.config.UserIsolation.mode = "shared_account_unsafe"
    plane.start()
    return plane


# -- backends -------------------------------------------------------------------------------------


UI_TESTS = Path(__file__).parent / "ui"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps its event loop as the main thread's
    current loop until the session ends, and jupyter's loop fixtures in any later test would find
    it running (``tests/wire`` sorts after ``tests/ui``)."""
    items.sort(key=lambda item: item.path.is_relative_to(UI_TESTS))


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs it.")
        pytest.skip("PostgreSQL is not installed (run `make test`)")
    server = TemporaryPostgres(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_admin(postgres: TemporaryPostgres) -> Iterator[Any]:
    engine = create_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, World]]:
    """Migrated and seeded template databases, built on first use, per backend."""
    return {}


def _template(
    backend: str, request: pytest.FixtureRequest, templates: dict[str, tuple[str, World]]
) -> tuple[str, World]:
    if backend not in templates:
        home = request.getfixturevalue("tmp_path_factory").mktemp(f"template-{backend}")
        if backend == "sqlite":
            location = str(home / "template.sqlite")
            url = f"sqlite:///{location}"
        else:
            admin = request.getfixturevalue("postgres_admin")
            pg: TemporaryPostgres = request.getfixturevalue("postgres")
            with admin.connect() as connection:
                connection.execute(text("CREATE DATABASE himalia_template"))
            location = "himalia_template"
            url = pg.url(location)
        plane = make_plane(home, url)
        world = seed_world(plane)
        plane.stop()
        if backend == "sqlite":
            with sqlite3.connect(location) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        templates[backend] = (location, world)
    return templates[backend]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(
    backend: str, request: pytest.FixtureRequest, templates: dict[str, tuple[str, World]], tmp_path: Path
) -> Iterator[str]:
    location, _ = _template(backend, request, templates)
    if backend == "sqlite":
        copy = tmp_path / "himalia.sqlite"
        shutil.copyfile(location, copy)
        yield f"sqlite:///{copy}"
        return
    admin = request.getfixturevalue("postgres_admin")
    pg: TemporaryPostgres = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {location}"))
    yield pg.url(name)
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
def world(backend: str, db_url: str, templates: dict[str, tuple[str, World]]) -> World:
    return templates[backend][1]


@pytest.fixture
def plane(db_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    """Its home is a folder of its own: data files a test puts in ``tmp_path`` lie outside it."""
    control_plane = make_plane(tmp_path / "home", db_url)
    yield control_plane
    control_plane.stop()


@pytest.fixture
def extension_config(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """A Jupyter server configuration enabling Himalia over ``db_url``, its home in ``tmp_path``.

    Each Jupyter-hosted test file's ``jp_server_config`` starts from it and adds its own sections.
    """
    return {
        "ServerApp": {"jpserver_extensions": {"himalia": True}},
        "ControlPlane": {
            "db_url": db_url,
            "home": str(tmp_path / "himalia-home"),
            "secret_keys": [SECRET_KEY],
            "audit_key": AUDIT_KEY,
        },
    }


@pytest.fixture
def started_extension(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Any:
    """The Himalia extension of ``jp_serverapp`` once it started its control plane or gave up.

    It starts after the server answers (``HimaliaExtension._start``); requests wait for it, a test
    reading its settings directly waits here.
    """
    (extension,) = jp_serverapp.extension_manager.extension_apps["himalia"]
    jp_asyncio_loop.run_until_complete(extension.started())
    return extension


@pytest.fixture
def count_statements(plane: ControlPlane) -> Any:
    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
                statements.append(statement)

        event.listen(plane.db.engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(plane.db.engine, "before_cursor_execute", record)

    return counting


# -- live API -------------------------------------------------------------------------------------


class LiveAPI:
    """``himalia serve``'s application on a loopback port, in a thread of its own."""

    def __init__(self, plane: ControlPlane, world: World) -> None:
        self.plane, self.world = plane, world
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.http = requests.Session()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(make_application(self.plane))
        server.add_sockets(sockets)
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()

    def start(self) -> "LiveAPI":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.http.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/himalia/api/v1"

    def request(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if role != "anonymous":
            headers["Authorization"] = f"token {self.world.tokens[role]}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


class Serving:
    """``OperatorSocket.open`` on an event loop of its own thread, as a host opens it on its loop."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.socket = OperatorSocket.open(self.plane)
        self._ready.set()
        await self._stop.wait()
        if self.socket is not None:
            self.socket.close()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def api(plane: ControlPlane, world: World) -> Iterator[LiveAPI]:
    live = LiveAPI(plane, world).start()
    yield live
    live.stop()


def _silence_stderr() -> None:
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Silence stderr at exit, once pytest has printed everything: DuckDB 2.0's nanobind bindings
    report their module-level objects as "leaked" while the interpreter shuts down
    (duckdb/duckdb-python#601), which would bury the summary under a hundred lines.
    The exit status is untouched."""
    atexit.register(_silence_stderr)
