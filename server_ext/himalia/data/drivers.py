"""Drivers: how a connection's data is reached, by the control plane and by the kernel client alike.

Pure functions of a connection as one caller may use it (``UsableConnection``: its URL, its
parameters, that caller's secrets and what the data-access policy allows): SQLAlchemy engines,
read-only in the database unless writes are allowed; fsspec options and URLs below a files
connection's root; DuckDB over files where they lie; the typed columns of a table or a query; a
driver's error scrubbed of every secret. Nothing here reads the store, so a kernel, which reaches
the data itself as its user, imports this module without the control plane's services. DuckDB is
imported where files are read, not with the module.
"""

import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import FromClause
from sqlalchemy.types import NullType, TypeEngine

from himalia.core.errors import Forbidden, InvalidInput
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
        database = embedded_database(url)
        path = None if database is None else usable.policy.ensure_unprotected(database, field="params.url")
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

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


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
    engine: Engine, *, table: str | None = None, db_schema: str | None = None, query: str | None = None
) -> FromClause:
    """A typed ``FromClause`` for ``compute_sql``: a reflected table, or a SELECT as a subquery.

    The column types come from the database: reflection for a table, the driver's description
    of the result for a query (PostgreSQL, DuckDB) or a temporary view's declared types
    (SQLite). A query column whose type cannot be told (a computed column on SQLite) is of
    unknown type, which ``avg``/``sum``/``stddev`` refuse; declare it instead by passing
    ``sqlalchemy.text(query).columns(name=sqlalchemy.Double).subquery()`` to ``compute_sql``.
    """
    if (table is None) == (query is None):
        raise InvalidInput("give either a table or a query", field="table" if table is None else "query")
    with engine.connect() as connection:
        if table is not None:
            return sa.table(table, *table_columns(connection, table, db_schema), schema=db_schema)
        assert query is not None
        if not query.strip():
            raise InvalidInput("the query is empty", field="query")
        body = one_statement(query, connection.dialect.name, field="query", query=True)
        columns = _query_columns(connection, body)
    escaped = body.replace(":", "\\:")  # no bind parameters in the query: its colons are literal
    return sa.text(escaped).columns(*columns).subquery("src")


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
