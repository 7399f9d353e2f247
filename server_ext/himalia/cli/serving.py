"""The control plane serving this home, reached through its operator socket (``himalia.core.operator_socket``).

A command that finds it sends its request there instead of opening the store itself: the
serving engine starts the run at once, on its warm workers, and the command imports no service.
Only the standard library is used here, so that finding out costs milliseconds.
"""

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

from himalia.core.operator_socket import ACT_AS_HEADER, STORE_HEADER, peer_uid, socket_path, store_digest
from himalia.wire import API_PREFIX

#: What a follow request asks the server to wait for a change (it answers sooner when one comes).
FOLLOW_WAIT_SECONDS = 30
#: The status of a socket whose control plane serves another store (``himalia.api.base.OtherStore``).
MISDIRECTED = 421


class Refused(Exception):
    """The server refused the request; ``message`` is its one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ForeignSocket(Exception):
    """The home's socket is served by a process of another OS account: nothing is sent to it."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class ServingPlane:
    """The API of the control plane answering on ``path``, as the operator or as ``act_as``."""

    def __init__(self, path: Path, db_url: str, act_as: str | None) -> None:
        self.path = path
        self.headers = {STORE_HEADER: store_digest(db_url), "Content-Type": "application/json"}
        if act_as:
            self.headers[ACT_AS_HEADER] = act_as
        self._connection = _UnixConnection(path, timeout=FOLLOW_WAIT_SECONDS + 30)

    @classmethod
    def find(cls, home: str, db_url: str, act_as: str | None) -> "ServingPlane | None":
        """The control plane serving ``home`` and the store ``db_url``, if one answers there.

        The server is known by its OS account as the client is: a socket in the home that a process
        of another account listens on raises ``ForeignSocket`` before a byte is sent to it.
        """
        path = socket_path(home)
        if path is None or path.is_symlink() or not path.is_socket():
            return None
        plane = cls(path, db_url, act_as)
        try:
            plane._connection.connect()
        except OSError:  # a socket its control plane left when it died
            return None
        assert plane._connection.sock is not None
        if (uid := peer_uid(plane._connection.sock)) != os.geteuid():
            plane.close()
            raise ForeignSocket(f"{path} is served by a process of another OS account (uid {uid}), nothing sent to it")
        return plane

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """The answer's JSON (None for 304 and 204); a refusal raises ``Refused``."""
        payload = None if body is None else json.dumps(body)
        self._connection.request(method, API_PREFIX + path, payload, {**self.headers, **(headers or {})})
        response = self._connection.getresponse()
        data = response.read()
        self.etag = response.getheader("Etag")
        if response.status in (204, 304):
            return None
        answer = json.loads(data) if data else None
        if response.status >= 400:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise Refused(response.status, message or f"{response.status} {response.reason}")
        return answer

    def close(self) -> None:
        self._connection.close()


def scenario_path(project_key: str, scenario_id: str) -> str:
    return f"/projects/{quote(project_key, safe='')}/scenarios/{quote(scenario_id, safe='')}"
