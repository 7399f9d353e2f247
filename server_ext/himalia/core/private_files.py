"""Files only the control plane's OS account may read: its home, the store, the keys, the audit head.

Modes are set explicitly rather than left to the umask, which belongs to whoever started the
process (0022 makes new files world-readable, 0000 world-writable). Existing files and folders
lose their group and other bits at start, so that a home created by an older version is fixed
too; the owner's bits are kept, so a folder that its owner made read-only stays read-only.
"""

import os
import tempfile
from pathlib import Path

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_to_owner(path: Path) -> None:
    """Remove the group and other bits of ``path`` if it exists and is this account's (owner and
    special bits unchanged); another account's file is left to its owner."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return
    mode = status.st_mode & 0o7777
    if mode & 0o077 and status.st_uid == os.geteuid():
        os.chmod(path, mode & ~0o077)


def ensure_private_folder(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700, or restrict an existing one to its owner."""
    if not path.exists():
        path.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(path, PRIVATE_FOLDER_MODE)  # mkdir's mode passes through the umask
    restrict_to_owner(path)


def create_private_file(path: Path, text: str = "") -> bool:
    """Create ``path`` as 0600 holding ``text``; ``False`` if it already existed (left as it is)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def replace_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: readers see the old content or the new, never a part."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
