"""The API on the home's operator socket, for ``himalia scenario run --wait`` on this machine.

A host that runs scenarios opens it once its engine runs (see ``himalia.core.operator_socket``
for who is answered there and why). A home holds one: while another control plane answers on
it, a second host leaves it alone; a socket left by one that died is replaced. Anything else at
that path (a file, a folder, a symbolic link, wherever it points) is left untouched and no socket is
opened. The file is removed when the host stops, unless another has replaced it meanwhile.
"""

import contextlib
import logging
import os
import socket
import stat
from pathlib import Path

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

from himalia.api import api_prefix, routes
from himalia.api.base import API_PREFIX_SETTING, CONTROL_PLANE, OPERATOR_SOCKET_SETTING
from himalia.controlplane import ControlPlane
from himalia.core.operator_socket import socket_path

log = logging.getLogger("himalia")


def answers(path: Path) -> bool:
    """Whether a process accepts connections on the socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class OperatorSocket:
    """One HTTP server on ``<home>/control.sock`` serving the API's routes to the operator."""

    def __init__(self, server: HTTPServer, path: Path) -> None:
        self.server, self.path = server, path
        self._inode = path.stat().st_ino

    @classmethod
    def open(cls, control_plane: ControlPlane) -> "OperatorSocket | None":
        """Listen on the home's socket (on the running IOLoop), or say why not and return None."""
        path = socket_path(control_plane.home)
        if path is None:
            log.warning(
                "Himalia home %s: its path is too long for a Unix socket; `himalia scenario run "
                "--wait` will run its scenarios in its own process",
                control_plane.home,
            )
            return None
        try:
            mode: int | None = os.lstat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISSOCK(mode):
            log.warning(
                "%s exists and is not a socket; it is left as it is and `himalia scenario run --wait` "
                "will run its scenarios in its own process until it is removed",
                path,
            )
            return None
        if mode is not None and answers(path):
            log.info("Another control plane answers on %s; this one does not", path)
            return None
        settings = {CONTROL_PLANE: control_plane, API_PREFIX_SETTING: api_prefix("/"), OPERATOR_SOCKET_SETTING: True}
        server = HTTPServer(
            web.Application(routes("/"), **settings),  # type: ignore[arg-type]
            max_body_size=control_plane.max_request_body_bytes,
        )
        server.add_socket(bind_unix_socket(str(path), mode=0o600))
        return cls(server, path)

    def close(self) -> None:
        self.server.stop()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
