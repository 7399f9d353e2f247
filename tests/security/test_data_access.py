"""Data access, as an attacker with an account would try it (classes 1 to 4 of the trust review).

1. Local disk through another name: every installed fsspec protocol, chained URLs, storage options
   that open another filesystem at any depth.
2. The control plane's own files (home, store, keys) under every spelling, at creation and at read.
3. Files written through SQL on embedded databases (ATTACH, VACUUM INTO, COPY, pragmas).
4. Writes through a connection that does not allow them: metrics, dataset queries and SQL steps,
   on SQLite, DuckDB and PostgreSQL, with the data checked afterwards.
"""

import itertools
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fsspec.registry import known_implementations
from sqlalchemy import create_engine, text

from himalia.controlplane import ControlPlane
from himalia.core.errors import HimaliaError
from himalia.data.access import DEFAULT_REMOTE_PROTOCOLS, DataAccessPolicy, one_statement
from himalia.data.drivers import UsableConnection, sql_engine
from himalia.identity.caller import Caller
from himalia.wire.data import CreateConnection, CreateDataset, CustomMetric, UpdateDataset
from himalia.wire.identity import CreateToken

from ..conftest import SHARED_SECRET
from .conftest import Ledger, empty_postgres_database

LOCAL = ("file", "local", "memory")


def refused(action: Callable[[], Any]) -> bool:
    """Whether the platform refused ``action`` with an error meant for a person (never a crash)."""
    try:
        action()
    except HimaliaError:
        return True
    return False


def create(plane: ControlPlane, caller: Caller, kind: str, params: dict[str, Any], **extra: Any) -> Any:
    name = f"c{uuid.uuid4().hex[:10]}"
    return plane.connections.create_connection(caller, CreateConnection(name=name, type=kind, params=params, **extra))  # type: ignore[arg-type]


# -- 1. protocols ---------------------------------------------------------------------------------


def test_only_allow_listed_protocols_without_write_unsafe_code(plane: ControlPlane, ledger: Ledger) -> None:
    creator = plane.users.caller_for("projadmin")  # create_connections, not write_unsafe_code
    admin = plane.users.caller_for("admin")
    for protocol in sorted(known_implementations):
        url = f"{protocol}://bucket/data"
        outcome = refused(lambda u=url: create(plane, creator, "files", {"url": u}))
        if protocol in DEFAULT_REMOTE_PROTOCOLS:
            assert not outcome, url  # what the allow-list names works with create_connections alone
        else:
            assert ledger.tried("1 protocol allow-list", url, outcome), url
        if protocol not in (*DEFAULT_REMOTE_PROTOCOLS, *LOCAL):
            # Wrappers and other reaches are refused for administrators too: nobody can tell what they open.
            assert ledger.tried(
                "1 protocol allow-list",
                f"admin {url}",
                refused(lambda u=url: create(plane, admin, "files", {"url": u})),
            )
    for inner, outer in itertools.product(("file", "s3", "https", "memory"), ("simplecache", "zip", "dir", "s3")):
        chained = f"{outer}://x::{inner}:///data"
        assert ledger.tried(
            "1 protocol allow-list", chained, refused(lambda u=chained: create(plane, admin, "files", {"url": u}))
        )


def nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    options = leaf
    for level in range(depth):
        options = {f"level{level}": options}
    return options


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_storage_options_never_open_another_filesystem(
    plane: ControlPlane, ledger: Ledger, tmp_path: Path, depth: int
) -> None:
    admin = plane.users.caller_for("admin")
    leaves = [
        {"target_protocol": "file"},
        {"protocol": "file"},
        {"remote_protocol": "file"},
        {"fo": plane.home},
        {"fs": "file"},
        {"target_options": {"auto_mkdir": True}},
        {"remote_options": {}},
        {"cache_storage": str(tmp_path)},
        {"path": plane.home, "target_protocol": "file"},
    ]
    for leaf, url in itertools.product(
        leaves, ("s3://bucket", "https://example.invalid/x", "dir://x", "simplecache://x")
    ):
        params = {"url": url, "storage_options": nested(depth, leaf)}
        assert ledger.tried("1 protocol allow-list", params, refused(lambda p=params: create(plane, admin, "files", p)))


def test_the_reported_dir_payload_reads_nothing(plane: ControlPlane, ledger: Ledger) -> None:
    creator = plane.users.caller_for("projadmin")
    admin = plane.users.caller_for("admin")
    payload = {"url": "dir://secrets", "storage_options": {"path": plane.home, "target_protocol": "file"}}
    for who in (creator, admin):
        assert ledger.tried(
            "1 protocol allow-list", "dir payload", refused(lambda c=who: create(plane, c, "files", payload))
        )


# -- 2. the control plane's own files -------------------------------------------------------------


def spellings(target: Path, scratch: Path) -> Iterator[str]:
    """Ways to name ``target``: absolute, relative, ``..``, symlinks (to it and to its folder), URLs."""
    yield str(target)
    yield os.path.relpath(target)
    yield f"{target.parent}/../{target.parent.name}/{target.name}"
    yield f"{target.parent}/./{target.name}"
    yield f"{target.parent}//{target.name}"
    link = scratch / f"link-{uuid.uuid4().hex[:6]}"
    link.symlink_to(target)
    yield str(link)
    folder_link = scratch / f"folder-{uuid.uuid4().hex[:6]}"
    folder_link.symlink_to(target.parent, target_is_directory=True)
    yield str(folder_link / target.name)
    yield f"file://{target}"
    yield f"local://{target}"


def protected_files(plane: ControlPlane) -> list[Path]:
    """The home with stand-in key files (the fixture passes its keys directly), and the SQLite store."""
    home = Path(plane.home)
    for name in ("secret.key", "audit.key"):
        (home / name).touch()
    files = [home / "secret.key", home / "audit.key", home]
    if plane.db_url.startswith("sqlite"):
        files.append(Path(plane.db_url.removeprefix("sqlite:///")))
    return [path for path in files if path.exists()]


def test_no_connection_opens_the_home_the_store_or_the_keys(
    plane: ControlPlane, ledger: Ledger, tmp_path: Path
) -> None:
    admin = plane.users.caller_for("admin")  # write_unsafe_code: local data is allowed, these files never
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for target in protected_files(plane):
        for spelling in spellings(target, scratch):
            for kind, params in (
                ("files", {"url": spelling}),
                ("sql", {"url": f"sqlite:///{spelling.removeprefix('file://').removeprefix('local://')}"}),
                ("sql", {"url": f"duckdb:///{spelling.removeprefix('file://').removeprefix('local://')}"}),
            ):
                outcome = refused(lambda k=kind, p=params: create(plane, admin, k, p))
                assert ledger.tried("2 protected paths", params, outcome), params


def test_reads_are_checked_again_symlinks_and_globs_included(
    plane: ControlPlane, ledger: Ledger, tmp_path: Path
) -> None:
    """A legitimate folder later gains links into the home: every read refuses them, whatever the glob."""
    admin = plane.users.caller_for("admin")
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.csv").write_text("a,b\n1,2\n")
    connection = create(plane, admin, "files", {"url": str(data)})
    globs = ("*.csv", "**/*.csv", "*")
    for index, path in enumerate(globs):  # defined while the folder is clean
        dataset = CreateDataset(name=f"d{index}", connection=connection.name, path=path, format="csv")
        plane.datasets.create_dataset(admin, "ALPHA", dataset)
    secret = Path(plane.home) / "audit-copy.csv"
    secret.write_text("secret,value\nhunter2,1\n")
    (data / "evil.csv").symlink_to(secret)
    (data / "sub").symlink_to(Path(plane.home), target_is_directory=True)
    for index, path in enumerate(globs):
        name = f"d{index}"
        for read in (
            lambda n=name: plane.metrics.compute(admin, "ALPHA", n, ["record_count"]),
            lambda n=name: plane.datasets.read_csv(admin, "ALPHA", n, 100_000),
            lambda n=name: plane.datasets.refresh_schema(admin, "ALPHA", n),
            lambda n=name: plane.datasets.fingerprint(admin, "ALPHA", n, None, None),
        ):
            assert ledger.tried("2 protected paths", f"read {path}", refused(read)), path
    for path in ("evil.csv", "sub/audit-copy.csv", "sub/*.csv", "s*/a*", "sub"):
        dataset = CreateDataset(name=f"n{uuid.uuid4().hex[:6]}", connection=connection.name, path=path, format="csv")
        outcome = refused(lambda d=dataset: plane.datasets.create_dataset(admin, "ALPHA", d))
        assert ledger.tried("2 protected paths", f"define {path}", outcome), path
    # The home's file was never opened as data: its content appears in no metric and no schema.
    assert all("hunter2" not in str(v.value) for v in plane.metrics.history(admin, "ALPHA", limit=1000))
    assert all("hunter2" not in str(plane.datasets.get_dataset(admin, "ALPHA", f"d{i}").columns) for i in range(3))


def test_the_store_stays_intact_after_the_attempts(plane: ControlPlane, ledger: Ledger, tmp_path: Path) -> None:
    test_no_connection_opens_the_home_the_store_or_the_keys(plane, ledger, tmp_path)
    assert plane.audit.verify(Caller.operator()).ok


# -- 3 and 4. SQL that writes ------------------------------------------------------------------------


def sqlite_warehouse(folder: Path) -> Path:
    path = folder / f"w-{uuid.uuid4().hex[:6]}.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    return path


def duckdb_warehouse(folder: Path) -> Path:
    path = folder / f"w-{uuid.uuid4().hex[:6]}.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE t AS SELECT * FROM range(1, 4) AS r(x)")
    return path


def escapes(outside: Path) -> list[str]:
    """Statements that write a file other than the database's own, or reach outside it."""
    return [
        f"VACUUM INTO '{outside}/vacuum.db'",
        f"ATTACH '{outside}/attached.db' AS other",
        f"ATTACH DATABASE 'file:{outside}/uri.db?mode=rwc' AS other",
        "PRAGMA journal_mode = WAL",
        "PRAGMA writable_schema = ON",
        "PRAGMA query_only = OFF",
        f"COPY (SELECT 1) TO '{outside}/copy.csv'",
        f"EXPORT DATABASE '{outside}/export'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_csv('{outside}/../*.csv')",
    ]


WRITES = [
    "INSERT INTO t VALUES (99)",
    "DELETE FROM t",
    "UPDATE t SET x = 0",
    "DROP TABLE t",
    "CREATE TABLE u (y INTEGER)",
    "ALTER TABLE t ADD COLUMN z INTEGER",
    "INSERT INTO t VALUES (99); COMMIT",
    "COMMIT; INSERT INTO t VALUES (99)",
    "SELECT 1; INSERT INTO t VALUES (99)",
    "SELECT 1) AS x; INSERT INTO t VALUES (99); COMMIT; SELECT (1",
    "WITH d AS (DELETE FROM t RETURNING x) SELECT * FROM d",
]


def usable(url: str, *, allow_write: bool, policy: DataAccessPolicy) -> UsableConnection:
    return UsableConnection(
        name="target", type="sql", params={"url": url}, secrets={}, allow_write=allow_write, policy=policy
    )


def attempt(connection: UsableConnection, statement: str, *, query: bool) -> bool:
    """Run ``statement`` as Himalia would (one statement, its engine); True if refused or failed."""
    backend = connection.params["url"].split(":")[0].split("+")[0]
    try:
        body = one_statement(statement, backend, field="statement", query=query)
        engine = sql_engine(connection, writable=True)
        try:
            with engine.connect() as sql, sql.begin():
                sql.execute(text(body.replace(":", "\\:")))
        finally:
            engine.dispose()
    except HimaliaError:
        return True
    except Exception:  # the database refused it
        return True
    return False


def rows(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as sql:
            return [tuple(r) for r in sql.execute(text("SELECT * FROM t ORDER BY 1"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine_name", ["sqlite", "duckdb"])
def test_embedded_databases_never_write_outside_their_file(engine_name: str, ledger: Ledger, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = sqlite_warehouse(tmp_path) if engine_name == "sqlite" else duckdb_warehouse(tmp_path)
    url = f"{engine_name}:///{path}"
    for allow_write, statement in itertools.product((False, True), escapes(outside)):
        connection = usable(url, allow_write=allow_write, policy=DataAccessPolicy())
        outcome = attempt(connection, statement, query=False)
        assert ledger.tried("3 files written through SQL", (engine_name, allow_write, statement), outcome), statement
    assert list(outside.iterdir()) == [], "a statement wrote outside the database's own file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [path.name], "only the database itself"
    assert rows(url) == [(1,), (2,), (3,)]


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with ``t`` = 1, 2, 3 on each driver, as its URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{sqlite_warehouse(tmp_path)}"
        return
    if request.param == "duckdb":
        yield f"duckdb:///{duckdb_warehouse(tmp_path)}"
        return
    with empty_postgres_database(request, "w") as url:
        engine = create_engine(url)
        with engine.begin() as sql:
            sql.execute(text("CREATE TABLE t (x INTEGER)"))
            sql.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
        engine.dispose()
        yield url


def test_read_only_connections_are_read_only_in_the_database(warehouse: str, ledger: Ledger) -> None:
    connection = usable(warehouse, allow_write=False, policy=DataAccessPolicy())
    for statement in WRITES:
        for query in (False, True):  # as a SQL step (any statement), as a metric or dataset query
            outcome = attempt(connection, statement, query=query)
            assert ledger.tried("4 writes through read-only connections", (warehouse.split(":")[0], statement), outcome)
    assert rows(warehouse) == [(1,), (2,), (3,)]
    # The database, not a rollback, refused: a single plain write fails on its own.
    engine = sql_engine(connection, writable=True)
    with pytest.raises(Exception, match=r"(?i)read.?only|not authorized|readonly"), engine.connect() as sql:
        sql.execute(text("INSERT INTO t VALUES (42)"))
        sql.commit()
    engine.dispose()
    assert rows(warehouse) == [(1,), (2,), (3,)]


def test_writable_connections_still_write_within_their_own_database(warehouse: str) -> None:
    connection = usable(warehouse, allow_write=True, policy=DataAccessPolicy())
    assert not attempt(connection, "INSERT INTO t VALUES (4)", query=False)
    assert rows(warehouse) == [(1,), (2,), (3,), (4,)]


def test_metrics_and_dataset_queries_through_the_services(plane: ControlPlane, ledger: Ledger, tmp_path: Path) -> None:
    admin = plane.users.caller_for("admin")
    path = sqlite_warehouse(tmp_path)
    connection = create(plane, admin, "sql", {"url": f"sqlite:///{path}"})
    plane.datasets.create_dataset(admin, "ALPHA", CreateDataset(name="t", connection=connection.name, table="t"))
    for statement in WRITES + escapes(tmp_path / "nowhere"):
        metric = CustomMetric(name="sneaky", sql=statement)
        update = UpdateDataset(custom_metrics=[metric])
        outcome = refused(
            lambda u=update: (
                plane.datasets.update_dataset(admin, "ALPHA", "t", u),
                plane.metrics.compute(admin, "ALPHA", "t", ["sneaky"]),
            )
        )
        assert ledger.tried("4 writes through read-only connections", ("metric", statement), outcome), statement
        query = CreateDataset(name=f"q{uuid.uuid4().hex[:6]}", connection=connection.name, query=statement)
        outcome = refused(lambda q=query: plane.datasets.create_dataset(admin, "ALPHA", q))
        assert ledger.tried("4 writes through read-only connections", ("dataset query", statement), outcome), statement
    assert rows(f"sqlite:///{path}") == [(1,), (2,), (3,)]
    assert not (tmp_path / "nowhere").exists(), "a statement wrote outside the database's own file"


def test_one_statement_follows_strings_comments_and_quoted_names(ledger: Ledger) -> None:
    for backend in ("postgresql", "sqlite", "duckdb", "mysql"):
        for single in ("SELECT ';'", 'SELECT 1 AS ";"', "SELECT 1 -- ; DROP TABLE t", "SELECT 1 /* ; */", "SELECT 1;"):
            assert one_statement(single, backend, field="q", query=True)
        for double in ("SELECT 1; SELECT 2", "SELECT ';'; DELETE FROM t", "SELECT 1;;DELETE FROM t"):
            outcome = refused(lambda d=double, b=backend: one_statement(d, b, field="q", query=False))
            assert ledger.tried("4 writes through read-only connections", (backend, double), outcome)


# -- 10. credentials through project-scoped tokens -------------------------------------------------


def test_project_scoped_tokens_read_only_the_connections_of_their_project(api: Any, ledger: Ledger) -> None:
    """A run's token (scoped to ALPHA) reads ``wh``, which ALPHA's dataset uses, and nothing else its user may use."""
    plane = api.plane
    operator = Caller.operator("test")
    scoped = plane.tokens.create_token(operator, CreateToken(user="admin", project="ALPHA")).token
    unscoped = plane.tokens.create_token(operator, CreateToken(user="admin")).token
    headers = {"Authorization": f"token {scoped}"}
    assert api.http.get(f"{api.base}/connections/wh/credentials", headers=headers, timeout=30).status_code == 200
    for name in ("shared_db", "personal_db"):
        response = api.http.get(f"{api.base}/connections/{name}/credentials", headers=headers, timeout=30)
        assert ledger.tried("10 scoped token credentials", name, response.status_code in (403, 404)), response.text
        assert SHARED_SECRET not in response.text
    # The same user, unscoped, still reads what the user may use.
    whole = api.http.get(
        f"{api.base}/connections/shared_db/credentials", headers={"Authorization": f"token {unscoped}"}, timeout=30
    )
    assert whole.status_code == 200


# -- 10. files connections into the operator's network (SSRF) --------------------------------------

INSIDE_HOSTS = (
    "127.0.0.1",
    "localhost",
    "169.254.169.254",
    "10.0.0.1",
    "192.168.1.10",
    "[::1]",
    "0x7f.1",
    "2130706433",
)


def test_files_connections_refuse_inside_hosts(plane: ControlPlane, ledger: Ledger) -> None:
    """No packet is sent: creating a connection only resolves its host."""
    creator = plane.users.caller_for("projadmin")
    for host in INSIDE_HOSTS:
        for params in (
            {"url": f"https://{host}/latest/meta-data/"},
            {"url": f"http://{host}:8080/data"},
            {"url": f"sftp://{host}/srv"},
            {"url": "s3://bucket", "storage_options": {"endpoint_url": f"http://{host}:9000"}},
            {"url": "s3://bucket", "storage_options": {"client_kwargs": {"endpoint_url": f"http://{host}"}}},
        ):
            outcome = refused(lambda p=params: create(plane, creator, "files", p))
            assert ledger.tried("10 SSRF through files connections", params, outcome), params


def test_allowed_data_destinations_open_a_named_internal_store(db_url: str, tmp_path: Path) -> None:
    from ..conftest import AUDIT_KEY, SECRET_KEY

    plane = ControlPlane(
        home=str(tmp_path / "home"),
        db_url=db_url,
        secret_keys=[SECRET_KEY],
        audit_key=AUDIT_KEY,
        allowed_data_destinations=["127.0.0.1"],
    )
    plane.start()
    try:
        creator = plane.users.caller_for("projadmin")
        assert create(
            plane, creator, "files", {"url": "s3://b", "storage_options": {"endpoint_url": "http://127.0.0.1:9000"}}
        )
        assert refused(lambda: create(plane, creator, "files", {"url": "https://169.254.169.254/"}))
    finally:
        plane.stop()


def test_an_audit_head_kept_outside_the_home_is_protected_too(db_url: str, tmp_path: Path, ledger: Ledger) -> None:
    from ..conftest import AUDIT_KEY, SECRET_KEY

    head = tmp_path / "elsewhere" / "audit.head"
    plane = ControlPlane(
        home=str(tmp_path / "home"),
        db_url=db_url,
        secret_keys=[SECRET_KEY],
        audit_key=AUDIT_KEY,
        audit_head_file=str(head),
    )
    plane.start()
    try:
        admin = plane.users.caller_for("admin")
        head.parent.mkdir(exist_ok=True)
        head.touch()
        for url in (str(head), f"file://{head}", f"{head.parent}/../elsewhere/audit.head"):
            assert ledger.tried(
                "2 protected paths", url, refused(lambda u=url: create(plane, admin, "files", {"url": u}))
            )
    finally:
        plane.stop()
