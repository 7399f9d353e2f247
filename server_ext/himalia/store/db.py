"""Engine, sessions and schema revision of the store.

SQLite is the embedded default: WAL, foreign keys on, and write transactions that start with
``BEGIN IMMEDIATE`` so that two writers never both read the audit chain's head before one of
them appends. PostgreSQL is used through its URL; there the audit appender locks the head row.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import alembic.command
import alembic.config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Select, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from himalia.core.errors import SchemaMismatch
from himalia.core.private_files import PRIVATE_FOLDER_MODE, create_private_file, restrict_to_owner

ALEMBIC_DIR = Path(__file__).parent / "alembic"
#: Files SQLite keeps beside the store: the write-ahead log, its shared-memory index, a rollback journal.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def prepare_sqlite_files(path: Path) -> None:
    """Create the store 0600 before SQLite does, and restrict an existing one and its companions.

    SQLite would create the file 0644 minus the umask, and creates ``-wal`` and ``-shm`` with the
    main file's mode: a private main file makes the whole store private, whatever the umask.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    if not create_private_file(path):
        restrict_to_owner(path)
    for companion in SQLITE_COMPANIONS:
        restrict_to_owner(path.with_name(path.name + companion))


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            prepare_sqlite_files(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """The store: one engine, read sessions and serialized write sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.engine.dialect.name == "sqlite"
            else self.engine
        )
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._commits_lock = threading.Lock()
        #: Write transactions this process committed: what it keeps read from the store (the
        #: callers of recent tokens) is valid while the count it was read at is the current one.
        self.commits = 0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._write_sessions() as session, session.begin():
            yield session
        with self._commits_lock:
            self.commits += 1

    # -- schema ---------------------------------------------------------------------------

    def alembic_config(self) -> alembic.config.Config:
        config = alembic.config.Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["engine"] = self.engine
        return config

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def is_empty(self) -> bool:
        return not inspect(self.engine).get_table_names()

    def upgrade(self, revision: str = "head") -> None:
        alembic.command.upgrade(self.alembic_config(), revision)

    def check_revision(self) -> None:
        """Refuse to run on a schema other than the code's."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise SchemaMismatch(
                f"The database is at revision {current or 'none'} but this Himalia needs {head}: "
                "run `himalia db upgrade` (back it up first)."
            )

    def dispose(self) -> None:
        self.engine.dispose()


def paginate(session: Session, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of ``query`` and the total row count: two statements whatever the size."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.limit(limit).offset(offset)).all()
    return list(rows), total or 0
