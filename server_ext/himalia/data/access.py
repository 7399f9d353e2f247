"""Where a connection may reach, and how: allow-lists checked at creation, at every test and every read.

Three rules, each by construction rather than by spotting bad inputs:

- **Remote by allow-list.** A ``files`` URL is one protocol, no chain (``a::b``), and its storage
  options never name another filesystem (``target_protocol``, ``fo``, ``fs``, …, at any depth).
  Protocols on the remote allow-list need no more than ``create_connections``; the local ones
  (``file``, ``local``, in-process ``memory``) and embedded databases (SQLite, DuckDB) read this
  machine and need ``write_unsafe_code``. Every other fsspec protocol (caches, archives, ``dir``,
  ``reference``, …) wraps or reaches something Himalia cannot see through, so it is refused.
- **Never the platform's own files.** The real path (symlinks followed) of every local file a
  connection opens lies outside the protected paths: the control plane's home, its store and its
  key files — for administrators too. Local reads hand DuckDB or SQLite the checked real paths,
  never the user's spelling, so what was checked is what is opened.
- **Read-only in the database.** Unless a connection allows writes, its sessions are read-only
  where the data lives (PostgreSQL read-only transactions, SQLite opened ``mode=ro``, DuckDB
  ``read_only``, MySQL read-only sessions); backends where Himalia cannot ask for that need
  ``allow_write``. SQLite is always opened with an authorizer that denies ``ATTACH`` (hence
  ``VACUUM INTO``), ``DETACH`` and every pragma but a few read-only ones, and DuckDB without
  external access, so an embedded database never writes outside its own file. User SQL is
  exactly one statement (parsed by sqlglot), and a query where only a query makes sense.
"""

import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fsspec import get_filesystem_class
from fsspec.core import has_magic, split_protocol
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import URL
from sqlalchemy.engine import make_url

from himalia.core.errors import Forbidden, InvalidInput
from himalia.core.outbound import DestinationPolicy, DestinationUnresolved

DEFAULT_REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "http", "https", "sftp")
LOCAL_FILE_PROTOCOLS = frozenset({"file", "local"})
#: Protocols whose URL names a bucket or container, not a host (their endpoint is an option).
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
IN_PROCESS_PROTOCOLS = frozenset({"memory"})
EMBEDDED_BACKENDS = frozenset({"sqlite", "duckdb"})
#: Backends whose sessions Himalia can make read-only at the server or the driver.
READ_ONLY_BACKENDS = frozenset({"postgresql", "mysql", "mariadb", *EMBEDDED_BACKENDS})

#: Storage-option keys with which an fsspec filesystem opens another one (or a local path).
_WRAPPING_OPTION = re.compile(r"(^|_)protocol$|^(fo|fs|target_options|remote_options|cache_storage)$")
#: Names under which a secret would be stored in clear among a connection's params.
_SECRET_NAME = re.compile(
    r"pass(word|wd)?$|^pwd$|secret|token|^(api_?)?key$|_key$|^sig(nature)?$|^sas|credential|^auth", re.IGNORECASE
)

#: Pragmas that only read the schema of a table (what SQLAlchemy's reflection asks for) ...
_SCHEMA_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
#: ... and settings that may be read, never set (SQLAlchemy reads the isolation level on connect).
_READABLE_PRAGMAS = frozenset(
    {"read_uncommitted", "database_list", "encoding", "user_version", "page_size", "foreign_keys", "collation_list"}
)
_SQLITE_READS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
    }
)
_SQLITE_WRITES = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_ANALYZE,
    }
)
#: Temporary objects live in the connection's own temp schema: allowed even when read-only
#: (Himalia reads a SQLite query's declared column types through a temporary view).
_SQLITE_TEMP_WRITES = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
    }
)
_SQLGLOT_DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "mssql": "tsql",
    "oracle": "oracle",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
}


def sqlite_authorizer(writable: bool) -> Any:
    """An allow-list of what a statement may do on an embedded SQLite database."""
    allowed = _SQLITE_READS | _SQLITE_TEMP_WRITES | (_SQLITE_WRITES if writable else frozenset())

    def authorize(action: int, argument: str | None, value: str | None, database: str | None, _: Any) -> int:
        if action == sqlite3.SQLITE_PRAGMA:
            readable = argument in _SCHEMA_PRAGMAS or (value is None and argument in _READABLE_PRAGMAS)
            return sqlite3.SQLITE_OK if readable else sqlite3.SQLITE_DENY
        if action in allowed or (database == "temp" and action in _SQLITE_WRITES):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def real_path(path: str) -> str:
    """The path as the operating system will open it: absolute, ``~`` expanded, symlinks followed."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


@dataclass(frozen=True)
class DataAccessPolicy:
    """What connections may reach on this control plane; built once by the ``ControlPlane``."""

    remote_protocols: frozenset[str] = frozenset(DEFAULT_REMOTE_PROTOCOLS)
    #: Real paths no connection may open: the home, the store's files, the key files.
    protected: tuple[str, ...] = ()
    #: Which hosts a ``files`` connection may name (its URL's, an ``endpoint_url``'s): public ones by default.
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy, compare=False)

    @classmethod
    def for_control_plane(
        cls,
        home: str,
        store_url: str,
        remote_protocols: list[str],
        allowed_destinations: list[str],
        platform_files: list[str],
    ) -> "DataAccessPolicy":
        """The home (which holds the key files by default), the store's files and ``platform_files``
        (key or audit-head files configured elsewhere) are protected."""
        protected = [real_path(home), *(real_path(path) for path in platform_files if path)]
        url = make_url(store_url)
        if url.get_backend_name() in EMBEDDED_BACKENDS and url.database not in (None, "", ":memory:"):
            store = real_path(url.database)
            protected += [store, *(store + suffix for suffix in ("-wal", "-shm", "-journal", ".wal"))]
        return cls(
            frozenset(remote_protocols), tuple(dict.fromkeys(protected)), DestinationPolicy(allowed_destinations)
        )

    # -- what a connection names -------------------------------------------------------------------

    def check(self, kind: str, params: Mapping[str, Any], *, allow_write: bool, may_read_local: bool) -> None:
        """Refuse a connection that reaches further than its creator may; run at every use."""
        url = params.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidInput("A connection needs a 'url' string.", field="params.url")
        if kind == "sql":
            self._check_sql(url, params, allow_write=allow_write, may_read_local=may_read_local)
        else:
            self._check_files(url, params, may_read_local=may_read_local)

    def _check_files(self, url: str, params: Mapping[str, Any], *, may_read_local: bool) -> None:
        if "::" in url:
            raise Forbidden("Chained fsspec URLs ('::') are not supported: give one protocol.")
        options = params.get("storage_options", {})
        if not isinstance(options, Mapping):
            raise InvalidInput("'storage_options' must be an object.", field="params.storage_options")
        for where, key in _option_keys(options, "params.storage_options"):
            if _WRAPPING_OPTION.search(key):
                raise Forbidden(f"{where}: storage options may not open another filesystem ('{key}').")
            if _SECRET_NAME.search(key):
                raise InvalidInput(f"Put '{key}' in the connection's secrets, not in its params.", field=where)
        _refuse_secrets_in_url(url)
        protocol = split_protocol(url)[0] or "file"
        try:
            get_filesystem_class(protocol)
        except ValueError:
            raise InvalidInput(f"Unknown fsspec protocol '{protocol}'.", field="params.url") from None
        except ImportError:
            pass  # a known protocol whose driver is not installed yet: testing the connection says so
        if protocol in self.remote_protocols:
            self._check_hosts(url, protocol, options)
            return
        if protocol not in LOCAL_FILE_PROTOCOLS | IN_PROCESS_PROTOCOLS:
            allowed = ", ".join(sorted(self.remote_protocols))
            raise Forbidden(
                f"The protocol '{protocol}' is not allowed: use a remote protocol ({allowed}) or a local "
                "folder by path."
            )
        if not may_read_local:
            raise Forbidden("Connections to local files or embedded databases need 'write_unsafe_code'.")
        if protocol in LOCAL_FILE_PROTOCOLS:
            self.ensure_unprotected(local_path(url), field="params.url")

    def _check_hosts(self, url: str, protocol: str, options: Mapping[str, Any]) -> None:
        """Refuse loopback, private, link-local and metadata hosts (after resolution) unless allowed.

        The host is the URL's for protocols that name one (not a bucket's), and every
        ``endpoint_url`` among the options. Their drivers connect themselves, so a name that
        resolves differently later is not pinned here as webhooks are.
        """
        hosts = [] if protocol in _BUCKET_PROTOCOLS else [(url, "params.url")]
        hosts += list(_option_values(options, "params.storage_options", "endpoint_url"))
        for named, where in hosts:
            try:
                parts = urlsplit(named if "://" in named else f"//{named}")
                host, port = (parts.hostname or "").rstrip("."), parts.port or 443
            except ValueError:
                raise InvalidInput("The URL cannot be parsed.", field=where) from None
            if not host:
                continue
            try:
                addresses = self.destinations.addresses(host, port)
            except DestinationUnresolved:
                continue  # nothing to reach now; checked again at every use, and the driver says why it fails
            named_allowed = self.destinations.name_allowed(host)
            for address in addresses:
                kind = self.destinations.refusal(address, named_allowed)
                if kind is not None:
                    raise Forbidden(
                        f"{where}: {host} is {kind} address ({address}); connections reach only public "
                        "hosts unless c.ControlPlane.allowed_data_destinations names it."
                    )

    def _check_sql(self, url: str, params: Mapping[str, Any], *, allow_write: bool, may_read_local: bool) -> None:
        parsed = _sql_url(url)
        if parsed.password:
            raise InvalidInput(
                "Put the password in secrets.password, not in the URL (the URL is not encrypted).",
                field="params.url",
            )
        for key in parsed.query:
            if _SECRET_NAME.search(key):
                raise InvalidInput(f"Put '{key}' in the connection's secrets, not in its URL.", field="params.url")
        connect_args = params.get("connect_args", {})
        if not isinstance(connect_args, Mapping):
            raise InvalidInput("'connect_args' must be an object.", field="params.connect_args")
        for where, key in _option_keys(connect_args, "params.connect_args"):
            if _SECRET_NAME.search(key):
                raise InvalidInput(f"Put '{key}' in the connection's secrets, not in its params.", field=where)
        backend = parsed.get_backend_name()
        if backend not in EMBEDDED_BACKENDS:
            if not allow_write and backend not in READ_ONLY_BACKENDS:
                raise InvalidInput(
                    f"Himalia cannot open read-only sessions on '{backend}': allow writes or use another driver.",
                    field="allow_write",
                )
            return
        if not may_read_local:
            raise Forbidden("Connections to local files or embedded databases need 'write_unsafe_code'.")
        if parsed.query or connect_args:
            raise InvalidInput(
                f"Himalia sets the options of embedded {backend} databases itself: drop them.", field="params.url"
            )
        database = embedded_database(parsed)
        if database is not None:
            self.ensure_unprotected(database, field="params.url")

    # -- what a read opens ---------------------------------------------------------------------------

    def ensure_unprotected(self, path: str, *, field: str) -> str:
        """``path``'s real path, or ``Forbidden`` when it lies inside the control plane's own files."""
        resolved = real_path(path)
        for protected in self.protected:
            if _inside(resolved, protected):
                raise Forbidden(f"{field}: '{path}' lies inside the control plane's own files; it cannot be read.")
        return resolved

    def local_files(self, url: str, *, field: str) -> list[str]:
        """The real paths of the local files ``url`` names (a file, a folder or a glob), each checked."""
        filesystem = LocalFileSystem()
        pattern = local_path(url)
        if has_magic(pattern):
            matches = filesystem.glob(pattern, detail=True)
        elif os.path.isdir(pattern):
            matches = filesystem.find(pattern, detail=True)
        else:
            matches = {pattern: {"type": "file"}} if os.path.lexists(pattern) else {}
        # Links are matches too (fsspec calls them "other"): each is followed and checked, never skipped.
        resolved = {
            self.ensure_unprotected(path, field=field) for path, info in matches.items() if info["type"] != "directory"
        }
        files = sorted(path for path in resolved if os.path.isfile(path))
        if not files:
            raise InvalidInput(f"No file matches '{url}'.", field=field)
        return files


def local_path(url: str) -> str:
    """The path a ``file://``/``local://`` URL or plain path names, spelt as fsspec opens it."""
    return str(LocalFileSystem._strip_protocol(url))


def is_local_files(url: str) -> bool:
    return (split_protocol(url)[0] or "file") in LOCAL_FILE_PROTOCOLS


def embedded_database(url: URL) -> str | None:
    """The file of an embedded database URL; ``None`` for an in-memory one."""
    if url.database in (None, "", ":memory:"):
        return None
    return str(url.database)


def _sql_url(url: str) -> URL:
    try:
        return make_url(url)
    except Exception as error:  # SQLAlchemy raises ArgumentError, and ValueError for bad ports
        raise InvalidInput(f"Not a SQLAlchemy URL: {error}", field="params.url") from None


def _option_keys(options: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """Every key of nested options, with the dotted field that names it."""
    for key, value in options.items():
        yield f"{where}.{key}", str(key)
        if isinstance(value, Mapping):
            yield from _option_keys(value, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from _option_keys(item, f"{where}.{key}[{index}]")


def _option_values(options: Mapping[str, Any], where: str, name: str) -> Iterator[tuple[str, str]]:
    """Every string value of the option ``name`` at any depth, with the dotted field naming it."""
    for key, value in options.items():
        if key == name and isinstance(value, str):
            yield value, f"{where}.{key}"
        elif isinstance(value, Mapping):
            yield from _option_values(value, f"{where}.{key}", name)


def _refuse_secrets_in_url(url: str) -> None:
    """A password or a signature in a URL would be stored in clear: the caller moves it to secrets."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        raise InvalidInput("The URL cannot be parsed.", field="params.url") from None
    if password:
        raise InvalidInput("Put the password in the connection's secrets, not in the URL.", field="params.url")
    for key, _ in parse_qsl(parts.query):
        if _SECRET_NAME.search(key):
            raise InvalidInput(f"Put '{key}' in the connection's secrets, not in the URL.", field="params.url")


def sqlite_uri(path: str, *, writable: bool) -> str:
    """A SQLite URI of an already checked real path; read-only unless ``writable``."""
    return f"file:{quote(path)}?mode={'rwc' if writable else 'ro'}"


# -- user SQL --------------------------------------------------------------------------------------


def one_statement(sql: str, backend: str, *, field: str, query: bool) -> str:
    """``sql`` if it is exactly one statement (and a query when ``query``); else a 400 naming ``field``.

    Splitting by sqlglot's tokenizer follows the dialect's strings, quoted names and comments,
    so a ``;`` inside them is no boundary and one outside always is.
    """
    import sqlglot  # with the first user SQL: its 14 MiB of dialects are not every control plane's
    from sqlglot import exp

    body = sql.strip()
    try:
        statements = [s for s in sqlglot.parse(body, read=_SQLGLOT_DIALECTS.get(backend)) if s is not None]
    except sqlglot.errors.SqlglotError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidInput(f"{field}: cannot parse the SQL ({first[:200]}).", field=field) from None
    if len(statements) != 1:
        raise InvalidInput(f"{field}: give exactly one SQL statement (found {len(statements)}).", field=field)
    if query and not isinstance(statements[0], exp.Query):
        raise InvalidInput(f"{field}: give a query (SELECT, WITH … SELECT, VALUES).", field=field)
    return body.rstrip(";").strip()
