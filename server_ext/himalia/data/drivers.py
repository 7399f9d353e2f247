"""Drivers: how a connection's data is reached, by the control plane and by the kernel client alike.

Pure functions of a connection as one caller may use it (``UsableConnection``: its URL, its
parameters, that caller's secrets and what the data-access policy allows): SQLAlchemy engines,
read-only in the database unless writes are allowed; fsspec options and URLs below a files
connection's root; DuckDB over files where they lie; the typed columns of a table or a query; a
driver's error scrubbed of every secret; and ``SqlSources``, the engines and typed columns the
control plane keeps between computations. Nothing here reads the store, so a kernel, which reaches
the data itself as its user, imports this module without the control plane's services. DuckDB is
imported where files are read, not with the module.
"""

import hashlib
import json
import re
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import fsspec
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import FromClause
from sqlalchemy.types import NullType, TypeEngine

from himalia.core.errors import Forbidden, InvalidInput
from himalia.core.patterns import search
from himalia.data.access import (
    EMBEDDED_BACKENDS,
    READ_ONLY_BACKENDS,
    DataAccessPolicy,
    embedded_database,
    is_local_files,
    one_statement,
    sqlite_authorizer,
    sqlite_uri,
)

if TYPE_CHECKING:
    import duckdb

CONNECT_TIMEOUT_SECONDS = 10
#: How many engines ``SqlSources`` keeps; the least recently used one goes first.
KEPT_ENGINES = 32
#: How many typed sources (dataset locations) it keeps per engine.
KEPT_SOURCES = 256

T = TypeVar("T")


@dataclass(frozen=True)
class UsableConnection:
    """What it takes to reach a connection's data as one caller; secrets included, so never log it."""

    name: str
    type: str
    params: dict[str, Any]
    secrets: dict[str, str] = field(repr=False)
    allow_write: bool
    #: What this connection may reach; the kernel client, which runs as its user, checks nothing.
    policy: DataAccessPolicy = field(default_factory=DataAccessPolicy, repr=False)


# -- errors ---------------------------------------------------------------------------------------


def scrub(message: str, secrets: dict[str, str]) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        if value:
            message = message.replace(value, "***")
    return message[:2000]


def driver_message(error: BaseException, secrets: dict[str, str]) -> str:
    """The first line of what a driver said (SQLAlchemy's wrapped error unwrapped), secrets scrubbed."""
    return scrub(str(getattr(error, "orig", None) or error).splitlines()[0], secrets)


# -- SQL ------------------------------------------------------------------------------------------


def sql_engine(usable: UsableConnection, *, writable: bool = False) -> Engine:
    """An engine for a ``sql`` connection, read-only in the database unless ``writable`` and allowed.

    The password goes into the URL, other secrets to the driver. Embedded databases are opened
    at the real path that was checked, SQLite under an authorizer, DuckDB without external access.
    """
    return _engine(usable, writable, _checked_database(usable))


def _checked_database(usable: UsableConnection) -> str | None:
    """The real path of an embedded database's file, checked against the policy (None for a server
    database or an in-memory one): checked at every use, as the file behind a path may change."""
    url = make_url(usable.params["url"])
    if url.get_backend_name() not in EMBEDDED_BACKENDS:
        return None
    database = embedded_database(url)
    return None if database is None else usable.policy.ensure_unprotected(database, field="params.url")


def _engine(usable: UsableConnection, writable: bool, path: str | None) -> Engine:
    url = make_url(usable.params["url"])
    if "password" in usable.secrets:
        url = url.set(password=usable.secrets["password"])
    backend = url.get_backend_name()
    read_only = not (writable and usable.allow_write)
    connect_args = {
        **usable.params.get("connect_args", {}),
        **{k: v for k, v in usable.secrets.items() if k != "password"},
    }
    if backend in EMBEDDED_BACKENDS:
        if backend == "sqlite":
            return _sqlite_engine(path, writable=not read_only)
        # Its own database file only: no read_text('/any/file'), no ATTACH elsewhere, no SET to undo it.
        config = {"enable_external_access": False, "lock_configuration": True}
        read_only_file = read_only and path is not None
        return create_engine(
            url.set(database=path or ":memory:"),
            poolclass=NullPool,
            connect_args={"read_only": read_only_file, "config": config},
        )
    if backend in {"postgresql", "mysql", "mariadb"}:
        connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    if read_only and backend == "postgresql":
        # Every transaction of the session starts read-only; the server refuses writes, not a rollback.
        connect_args["options"] = f"{connect_args.get('options', '')} -c default_transaction_read_only=on".strip()
    elif read_only and backend not in READ_ONLY_BACKENDS:
        raise Forbidden(
            f"'{usable.name}' cannot be opened read-only ('{backend}'); only connections that allow writes."
        )
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    if read_only and backend in {"mysql", "mariadb"}:
        event.listen(engine, "connect", _mysql_read_only)
    return engine


def _mysql_read_only(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")


def _sqlite_engine(path: str | None, *, writable: bool) -> Engine:
    """SQLite at a checked real path (or in memory), read-only unless ``writable``, under an authorizer."""

    def connect() -> sqlite3.Connection:
        if path is None:
            connection = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            connection = sqlite3.connect(sqlite_uri(path, writable=writable), uri=True, check_same_thread=False)
        connection.set_authorizer(sqlite_authorizer(writable))
        return connection

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
    event.listen(engine, "connect", _linear_regexp)  # after SQLAlchemy's own, which backtracks (Python's re)
    return engine


def _linear_regexp(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    """``REGEXP`` on SQLite matches with RE2: linear in the text whatever the pattern."""
    dbapi_connection.create_function("regexp", 2, search, deterministic=True)


# -- files ----------------------------------------------------------------------------------------


def storage_options(params: Mapping[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """fsspec options of a ``files`` connection: its params' options and its secrets."""
    return {**params.get("storage_options", {}), **secrets}


def files_url(params: Mapping[str, Any], path: str = "") -> str:
    """``path`` below the connection's root URL (``path`` may be a glob, never climb out of it)."""
    if ".." in path.replace("\\", "/").split("/"):
        raise InvalidInput("A path stays below its connection's root: no '..'.", field="path")
    root = params["url"].rstrip("/")
    return f"{root}/{path.lstrip('/')}" if path else root


def files_location(usable: UsableConnection, path: str = "", *, field: str = "path") -> str | list[str]:
    """What a reader opens for ``path`` below a files connection: its URL, or for local files the
    checked real paths of every file it matches (so nothing but what was checked is opened)."""
    url = files_url(usable.params, path)
    return usable.policy.local_files(url, field=field) if is_local_files(url) else url


@contextmanager
def duckdb_for(usable: UsableConnection) -> Iterator["duckdb.DuckDBPyConnection"]:
    """An in-memory DuckDB that reads the connection's files where they are (fsspec for remote ones)."""
    import duckdb

    connection = duckdb.connect()
    try:
        protocol = fsspec.core.split_protocol(usable.params["url"])[0]
        if protocol not in {None, "file", "local"}:
            connection.register_filesystem(
                fsspec.filesystem(protocol, **storage_options(usable.params, usable.secrets))
            )
        yield connection
    finally:
        connection.close()


def files_relation_sql(fmt: str) -> str:
    return "read_parquet(?)" if fmt == "parquet" else "read_csv_auto(?)"


# -- what a source holds --------------------------------------------------------------------------

_DUCKDB_TYPES: list[tuple[re.Pattern[str], Callable[[], TypeEngine[Any]]]] = [
    (re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)\b"), sa.BigInteger),
    (re.compile(r"(FLOAT|DOUBLE|REAL)\b"), sa.Double),
    (re.compile(r"(DECIMAL|NUMERIC)\b"), sa.Numeric),
    (re.compile(r"BOOLEAN\b"), sa.Boolean),
    (re.compile(r"VARCHAR\b(?!\[)"), sa.Text),
    (re.compile(r"DATE\b(?!\[)"), sa.Date),
    (re.compile(r"TIMESTAMP[\w ]*$"), sa.DateTime),
    (re.compile(r"TIME( WITH TIME ZONE)?$"), sa.Time),
    (re.compile(r"INTERVAL$"), sa.Interval),
]


def _duckdb_type(name: str) -> TypeEngine[Any]:
    name = name.upper()
    for pattern, make in _DUCKDB_TYPES:
        if pattern.match(name) and not name.endswith("]") and not name.startswith(("STRUCT", "MAP", "UNION")):
            return make()
    return NullType()


#: PostgreSQL type OIDs, for the columns of a query (``cursor.description``).
_POSTGRES_OIDS: dict[int, Callable[[], TypeEngine[Any]]] = {
    16: sa.Boolean,
    20: sa.BigInteger,
    21: sa.BigInteger,
    23: sa.BigInteger,
    700: sa.Double,
    701: sa.Double,
    1700: sa.Numeric,
    18: sa.Text,
    19: sa.Text,
    25: sa.Text,
    1042: sa.Text,
    1043: sa.Text,
    1082: sa.Date,
    1083: sa.Time,
    1266: sa.Time,
    1114: sa.DateTime,
    1184: sa.DateTime,
    1186: sa.Interval,
}


def sql_source(
    bind: Engine | Connection, *, table: str | None = None, db_schema: str | None = None, query: str | None = None
) -> FromClause:
    """A typed ``FromClause`` for ``compute_sql``: a reflected table, or a SELECT as a subquery.

    The column types come from the database: reflection for a table, the driver's description
    of the result for a query (PostgreSQL, DuckDB) or a temporary view's declared types
    (SQLite). A query column whose type cannot be told (a computed column on SQLite) is of
    unknown type, which ``avg``/``sum``/``stddev`` refuse; declare it instead by passing
    ``sqlalchemy.text(query).columns(name=sqlalchemy.Double).subquery()`` to ``compute_sql``.
    Given a connection, it reads them on that connection (no second one is opened).
    """
    if (table is None) == (query is None):
        raise InvalidInput("give either a table or a query", field="table" if table is None else "query")
    with connected(bind) as connection:
        if table is not None:
            return sa.table(table, *table_columns(connection, table, db_schema), schema=db_schema)
        assert query is not None
        if not query.strip():
            raise InvalidInput("the query is empty", field="query")
        body = one_statement(query, connection.dialect.name, field="query", query=True)
        columns = _query_columns(connection, body)
    escaped = body.replace(":", "\\:")  # no bind parameters in the query: its colons are literal
    return sa.text(escaped).columns(*columns).subquery("src")


@contextmanager
def connected(bind: Engine | Connection) -> Iterator[Connection]:
    """The connection given, or a new one of the engine given (closed afterwards)."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as connection:
        yield connection


def table_columns(connection: Connection, table: str, db_schema: str | None) -> list[sa.ColumnClause[Any]]:
    if connection.dialect.name == "duckdb":  # duckdb-engine's reflection lags DuckDB's catalog
        scan = sa.select(sa.text("*")).select_from(sa.table(table, schema=db_schema))
        return result_columns(connection, scan, field="table", what=f"cannot read table {table!r}")
    try:
        reflected = sa.inspect(connection).get_columns(table, schema=db_schema)
    except NoSuchTableError as error:
        raise InvalidInput(f"no table {table!r}", field="table") from error
    return [sa.column(column["name"], column["type"]) for column in reflected]


def _query_columns(connection: Connection, query: str) -> list[sa.ColumnClause[Any]]:
    escaped = query.replace(":", "\\:")
    if connection.dialect.name == "sqlite":
        # SQLite reports no types for a result; a temporary view exposes the declared ones.
        name = f"himalia_probe_{uuid.uuid4().hex}"
        view = connection.dialect.identifier_preparer.quote(name)
        try:
            connection.execute(sa.text(f"CREATE TEMP VIEW {view} AS {escaped}"))
            reflected = sa.inspect(connection).get_columns(name, schema="temp")
        except DBAPIError as error:
            raise InvalidInput(f"the query fails: {error.orig}", field="query") from error
        finally:
            connection.rollback()
            connection.execute(sa.text(f"DROP VIEW IF EXISTS temp.{view}"))
            connection.commit()
        columns = [sa.column(column["name"], column["type"]) for column in reflected]
    else:
        columns = result_columns(connection, sa.text(escaped), field="query", what="the query fails")
    names = [column.name for column in columns]
    if len(set(names)) != len(names):
        raise InvalidInput("the query returns two columns of the same name", field="query")
    return columns


def result_columns(
    connection: Connection,
    select: sa.Select[Any] | sa.TextClause,
    *,
    field: str,
    what: str,
) -> list[sa.ColumnClause[Any]]:
    """Names and types of a SELECT's columns, from the driver's description of an empty result."""
    inner = select.subquery("q") if isinstance(select, sa.Select) else select.columns().subquery("q")
    statement = sa.select(sa.text("*")).select_from(inner).limit(0)
    try:
        result = connection.execute(statement)
    except DBAPIError as error:
        connection.rollback()
        raise InvalidInput(f"{what}: {str(error.orig).strip()}", field=field) from error
    description = result.cursor.description if result.cursor is not None else None
    result.close()
    dialect = connection.dialect.name
    columns = []
    for entry in description or ():
        name, type_code = str(entry[0]), entry[1]
        type_: TypeEngine[Any]
        if dialect == "duckdb":
            type_ = _duckdb_type(str(type_code))
        elif dialect == "postgresql" and isinstance(type_code, int):
            type_ = _POSTGRES_OIDS.get(type_code, NullType)()
        else:
            type_ = NullType()
        columns.append(sa.column(name, type_))
    return columns


# -- kept between uses ----------------------------------------------------------------------------


@dataclass
class _Kept:
    engine: Engine
    #: Typed sources by location (as JSON): the schema version each was read for, and the source.
    sources: dict[str, tuple[str, FromClause]] = field(default_factory=dict)


class SqlSources:
    """Read-only engines of ``sql`` connections and the typed columns of their datasets, kept
    between uses: computing a dataset's metrics again issues its aggregate statement alone, with
    neither a new engine's first-connect queries nor a reflection of the table.

    An engine is kept under a digest of everything it is made of: the connection's type and
    parameters, the caller's secrets and, for an embedded database, the real path checked at this
    use. An edited connection, a changed secret or another person's own credentials (``per_user``)
    make another key, so nobody is handed an engine built with credentials they did not present;
    the engine no longer asked for ages out. The engines pool no connection (every use connects
    anew, as its caller), so a kept engine holds no session open. Columns are kept with their
    engine, by location and by the dataset's schema version (a schema refresh reads them again),
    and read again when a statement on them fails (a column dropped or changed since), unless it
    failed for a reason columns cannot explain: a lost connection, a cancelled or timed-out statement.
    """

    def __init__(self, max_engines: int = KEPT_ENGINES) -> None:
        self.max_engines = max_engines
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def engine(self, usable: UsableConnection) -> Engine:
        """The kept read-only engine of ``usable`` (made the first time)."""
        return self._keep(usable).engine

    def compute(
        self,
        usable: UsableConnection,
        location: Mapping[str, Any],
        version: str,
        compute: Callable[[Connection, FromClause], T],
    ) -> T:
        """``compute(connection, source)`` on one connection, with the typed source of ``location``
        kept for ``version`` or else read on that connection. When it fails on a kept source, the
        source is read again and ``compute`` tried once more on it."""
        kept = self._keep(usable)
        key = json.dumps(location, sort_keys=True)
        with kept.engine.connect() as connection:
            with self._lock:
                known = kept.sources.get(key)
            if known is not None and known[0] == version:
                try:
                    return compute(connection, known[1])
                except (DBAPIError, InvalidInput) as error:
                    if not _columns_may_explain(error):
                        raise
                    connection.rollback()
            source = sql_source(
                connection,
                table=location.get("table"),
                db_schema=location.get("db_schema"),
                query=location.get("query"),
            )
            with self._lock:
                kept.sources.pop(key, None)
                kept.sources[key] = (version, source)
                while len(kept.sources) > KEPT_SOURCES:
                    del kept.sources[next(iter(kept.sources))]
            return compute(connection, source)

    def _keep(self, usable: UsableConnection) -> _Kept:
        path = _checked_database(usable)
        material = json.dumps([usable.type, usable.params, usable.secrets, path], sort_keys=True, default=str)
        key = hashlib.sha256(material.encode()).hexdigest()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        made = _Kept(_engine(usable, False, path))  # outside the lock: it imports and builds a dialect
        with self._lock:
            kept = self._kept.setdefault(key, made)
            self._kept.move_to_end(key)
            dropped = [self._kept.popitem(last=False)[1] for _ in range(len(self._kept) - self.max_engines)]
        for old in [*dropped, *([made] if kept is not made else [])]:
            old.engine.dispose()
        return kept


def _columns_may_explain(error: DBAPIError | InvalidInput) -> bool:
    """Whether stale columns may be why a computation failed: not when the connection was lost
    or the statement cancelled (SQLSTATE class 57: a timeout, an administrator), where trying
    again would only scan the data once more."""
    if isinstance(error, InvalidInput):
        return True
    state = getattr(error.orig, "sqlstate", None) or ""
    return not (error.connection_invalidated or state.startswith("57"))
