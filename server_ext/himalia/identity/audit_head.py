"""The audit chain's head, sealed with the audit key, and its copy outside the database.

Entries chain to each other, so editing one breaks the chain; deleting the newest ones does not,
as long as whoever deletes them also resets the head row to the new last entry. Two witnesses
stop that: the head row carries a seal (an HMAC with the audit key, which the database does not
hold) so that it cannot be moved back, and a head file next to the key keeps the head as last
committed, so that an old head row restored from a backup disagrees with it. The row and the
file are sealed under different labels: a copy of one is never a valid value of the other.

The file is replaced atomically after each commit, under a lock shared by every process of the
home, and only moves forward; a crash between a commit and its file write leaves the file
behind the chain, which ``verify`` accepts when the file names an entry of the chain. A file
that disagrees with the database is kept as it is until the disagreement has been appended to
the chain itself (``audit.HEAD_MISMATCH``), so that later entries cannot erase the evidence.
"""

import fcntl
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from himalia.core.private_files import PRIVATE_FOLDER_MODE, create_private_file, replace_private_file, restrict_to_owner

#: What a seal is over, so that a row's seal is no file's, and neither is an entry's hash.
ROW_LABEL = "row"
FILE_LABEL = "file"


def head_seal(key: bytes, label: str, seq: int, digest: str) -> str:
    """HMAC of the head at ``seq`` whose last entry hash is ``digest``."""
    return hmac.new(key, f"himalia-audit-head:{label}:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SealedHead:
    seq: int
    hash: str
    seal: str

    def is_sealed_by(self, key: bytes, label: str) -> bool:
        return hmac.compare_digest(self.seal, head_seal(key, label, self.seq, self.hash))


class HeadFileUnreadable(Exception):
    """The head file exists but is not a head this code wrote."""


class HeadFile:
    """The external copy of the chain head: ``{"seq", "hash", "seal"}`` in a 0600 file."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._lock_path = path.with_name(path.name + ".lock")
        self._thread_lock = threading.Lock()

    def read(self) -> SealedHead | None:
        """The head the file holds, ``None`` if there is no file; ``HeadFileUnreadable`` if it is garbage."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            head = SealedHead(seq=int(data["seq"]), hash=str(data["hash"]), seal=str(data["seal"]))
        except (ValueError, KeyError, TypeError) as error:
            raise HeadFileUnreadable(f"not a head file ({error.__class__.__name__})") from error
        return head

    def is_valid(self, head: SealedHead) -> bool:
        return head.is_sealed_by(self._key, FILE_LABEL)

    def advance(self, seq: int, digest: str, *, replace_disagreeing: bool = False) -> None:
        """Record ``seq``/``digest`` as the head unless the file already holds this or a later one.

        A file that is unreadable, whose seal does not match or that is ahead is evidence, left
        alone unless ``replace_disagreeing`` (the disagreement is now recorded in the chain).
        """
        with self._locked():
            if not replace_disagreeing:
                try:
                    current = self.read()
                except HeadFileUnreadable:
                    return
                if current is not None and (not self.is_valid(current) or current.seq >= seq):
                    return
            seal = head_seal(self._key, FILE_LABEL, seq, digest)
            replace_private_file(self.path, json.dumps({"seq": seq, "hash": digest, "seal": seal}) + "\n")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: threads by a lock, processes (CLI beside a server) by ``flock``."""
        if not self.path.parent.exists():
            self.path.parent.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
        create_private_file(self._lock_path)
        restrict_to_owner(self._lock_path)
        with self._thread_lock, open(self._lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
