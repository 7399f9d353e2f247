"""The control plane's home: private to its OS account, writable, and refused in one sentence otherwise.

Every host (``himalia serve``, each CLI command, the Jupyter extension) opens the home first.
A home it cannot write used to surface as the error of whichever file was touched first (SQLite's
"unable to open database file" at the bottom of a long traceback); here it becomes one
``HomeUnusable`` naming the folder, the account and what to do.
"""

import os
import pwd
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from himalia.core.errors import HomeUnusable
from himalia.core.private_files import ensure_private_folder

REMEDY = "make it writable by that account, or choose another folder with --home or $HIMALIA_HOME"


def _account() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def require_writable_home(home: Path) -> None:
    """Check that this account may write ``home``, then create it 0700 or make it private."""
    if home.is_dir() and not os.access(home, os.W_OK | os.X_OK):
        raise HomeUnusable(
            f"The Himalia home {home} is read-only for {_account()} (the store, the keys and the audit "
            f"head are written there): {REMEDY}."
        )
    ensure_private_folder(home)


def _sqlite_folder(db_url: str) -> Path | None:
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).absolute().parent


@contextmanager
def home_problems_reported(home: str, db_url: str) -> Iterator[None]:
    """Turn a file-system refusal inside the block into one ``HomeUnusable`` sentence."""
    try:
        yield
    except OSError as error:
        what = (error.strerror or str(error)).lower()
        where = f" ({error.filename})" if error.filename else ""
        raise HomeUnusable(f"Himalia cannot use its home {home} as {_account()}: {what}{where}; {REMEDY}.") from error
    except OperationalError as error:
        folder = _sqlite_folder(db_url)
        if folder is None or not isinstance(error.orig, sqlite3.OperationalError):
            raise
        raise HomeUnusable(
            f"Himalia cannot open its store in {folder} as {_account()}: {error.orig}; "
            f"make that folder and the store writable by that account, or choose another with --db-url."
        ) from error
