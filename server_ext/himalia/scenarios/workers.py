"""How a control plane process names itself on the runs it holds, and tells whether a holder is gone."""

import os
import secrets
import socket

_INCARNATION = secrets.token_hex(4)


def this_worker() -> str:
    """How this process names itself on the runs it holds: ``host:pid:incarnation``.

    The incarnation tells a restarted process from its predecessor when both got the same pid
    (pid 1 in a container).
    """
    return f"{socket.gethostname()}:{os.getpid()}:{_INCARNATION}"


def worker_gone(worker: str | None) -> bool:
    """Whether the process that held a run is certainly gone: same host, and dead or reborn."""
    host, pid, incarnation = [*(worker or "").split(":"), "", "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return incarnation != _INCARNATION
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
