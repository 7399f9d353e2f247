"""Where a control plane that runs scenarios answers its operator: a Unix socket in its home.

``himalia serve`` and the Jupyter server extension listen on ``<home>/control.sock`` (see
``himalia.hosts.operator_socket``) and ``himalia scenario run --wait`` submits its run there when
it answers, instead of starting a control plane of its own. The socket serves the API,
authenticated by the connecting process's OS account as the kernel reports it (``SO_PEERCRED``):
only the account the control plane runs as is answered, as the operator or as the user
``X-Himalia-As`` names. That account is the operator already (it reads the store and the keys in
the same home, and the CLI grants it every right), so nothing secret is written for it.
"""

import hashlib
import os
import socket
import struct
from pathlib import Path

SOCKET_NAME = "control.sock"
#: The header naming the user an operator request acts as (the CLI's ``--as LOGIN``).
ACT_AS_HEADER = "X-Himalia-As"
#: The header carrying a digest of the store the client means; another store's socket refuses it.
STORE_HEADER = "X-Himalia-Store"
#: Linux's limit of a socket path (``sun_path`` holds 108 bytes with the final NUL).
MAX_PATH_BYTES = 107


def socket_path(home: str) -> Path | None:
    """The home's operator socket, or None when its path is too long for a Unix socket."""
    path = Path(home) / SOCKET_NAME
    return path if len(os.fsencode(path)) <= MAX_PATH_BYTES else None


def store_digest(db_url: str) -> str:
    """What ``STORE_HEADER`` carries: enough to tell two stores apart, nothing of the URL's password."""
    return hashlib.sha256(db_url.encode()).hexdigest()[:32]


def peer_uid(connection: socket.socket) -> int:
    """The effective uid of the process at the other end of a connected Unix socket."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid
