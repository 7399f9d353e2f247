"""Backups of the store: a consistent copy while the platform runs, and a restore that cannot clobber it.

SQLite's online backup API copies a live database page by page, consistent as of the copy's end,
while writers go on. PostgreSQL has its own tools (``pg_dump``): this module says how to use them
and checks the revision. Keys never go into a backup: whoever holds one backup and the keys could
read every connection secret, so they are kept (and backed up) apart.
"""

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from himalia.core.errors import Conflict, InvalidInput
from himalia.scenarios.uptime import BEAT_INTERVAL
from himalia.store.db import Database
from himalia.store.orm import SchedulerUptime

#: Pages copied per step of the online backup: small steps let writers in between.
PAGES_PER_STEP = 256


def sqlite_file(db_url: str) -> Path | None:
    """The database file of a SQLite URL, ``None`` for another database."""
    url = make_url(db_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:":
        raise InvalidInput("The store is an in-memory SQLite database: there is nothing to back up.")
    return Path(url.database)


def pg_dump_advice(db_url: str, output: str) -> str:
    """How to back up (and restore) a PostgreSQL store, naming its server but never its password."""
    url = make_url(db_url)
    target = f"--host {url.host or 'localhost'} --port {url.port or 5432} --username {url.username or 'postgres'}"
    return (
        f"The store is PostgreSQL: back it up with its own tools, e.g.\n"
        f"  pg_dump {target} --format custom --file {output} {url.database}\n"
        f"and restore with pg_restore {target} --clean --dbname {url.database} {output} (the password from "
        "PGPASSWORD or ~/.pgpass)."
    )


def file_revision(path: Path) -> str | None:
    """The Alembic revision recorded in a SQLite file, ``None`` if it has none."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


def copy_sqlite(source: Path, target: Path, progress: Callable[[int, int], None]) -> None:
    """Copy ``source`` into ``target`` with the online backup API (``progress(done, total)`` pages)."""
    reading = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writing = sqlite3.connect(target)
    try:
        reading.backup(
            writing, pages=PAGES_PER_STEP, progress=lambda _status, left, total: progress(total - left, total)
        )
    finally:
        writing.close()
        reading.close()


@dataclass(frozen=True)
class BackupResult:
    path: Path
    revision: str | None
    size: int


def back_up(db: Database, source: Path, target: Path, progress: Callable[[int, int], None]) -> BackupResult:
    """A consistent copy of the live store ``source`` at ``target`` (written beside it, then renamed)."""
    if target.exists():
        raise Conflict(f"{target} exists: name another file with -o.")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    copy_sqlite(source, partial, progress)
    os.chmod(partial, 0o600)  # the store holds encrypted secrets and the audit trail: its owner's only
    revision = file_revision(partial)
    if revision != db.head_revision():
        partial.unlink()
        raise Conflict(f"The store is at revision {revision or 'none'}, not {db.head_revision()}: upgrade it first.")
    os.replace(partial, target)
    return BackupResult(target, revision, target.stat().st_size)


def running_platform(db: Database, now: datetime) -> str | None:
    """The process whose scheduler beat on this store lately, if one did: a platform that is running."""
    if db.is_empty():
        return None
    with db.read() as session:
        row = session.execute(
            select(SchedulerUptime.process, func.max(SchedulerUptime.beat_at))
            .group_by(SchedulerUptime.process)
            .order_by(func.max(SchedulerUptime.beat_at).desc())
            .limit(1)
        ).first()
    if row is None or row[1] is None:
        return None
    process, beat_at = row
    beat_at = beat_at if beat_at.tzinfo else beat_at.replace(tzinfo=now.tzinfo)
    return str(process) if now - beat_at < 2 * BEAT_INTERVAL else None


def restore(db: Database, backup: Path, target: Path, now: datetime, progress: Callable[[int, int], None]) -> str:
    """Put ``backup`` in place of the store at ``target``; its revision. Refuses a running platform and
    a backup this Himalia cannot read (a newer revision, or not a store at all)."""
    revision = file_revision(backup)
    if revision is None:
        raise InvalidInput(f"{backup} is not a Himalia store backup (it records no schema revision).")
    known = {script.revision for script in ScriptDirectory.from_config(db.alembic_config()).walk_revisions()}
    if revision not in known:
        raise Conflict(f"{backup} is at revision {revision}, newer than this Himalia's {db.head_revision()}.")
    running = running_platform(db, now)
    if running is not None:
        raise Conflict(f"A control plane is running on this store ({running}): stop it before restoring.")
    db.dispose()
    partial = target.with_name(f".{target.name}.restoring")
    partial.unlink(missing_ok=True)
    copy_sqlite(backup, partial, progress)
    os.chmod(partial, 0o600)
    for leftover in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)  # the old store's log, which would replay onto the restored one
    os.replace(partial, target)
    return revision
