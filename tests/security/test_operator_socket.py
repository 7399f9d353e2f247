"""Class 21 (the operator socket): ``<home>/control.sock``, where ``himalia scenario run --wait``
hands its run to the serving control plane, authenticated by the peer's OS account alone.

- Every other OS account is refused, whatever it sends and even when the file modes let it
  connect (real processes of other uids and gids, as root; the socket and home opened up on purpose).
- ``X-Himalia-As`` names a person the operator acts as: an unknown or hostile login is refused
  and acts as nobody, a deactivated person is refused, a known one gets their rights, not more.
- Over TCP the socket's headers are nobody's credential: no token is still 401, a reader's
  token is still the reader, in both hosts.
- Whatever lies at the socket's path before a host starts (a file, a folder, a FIFO, a symbolic
  link to anything) is left untouched and no socket is opened; a socket in the home that a
  process of another account listens on is never sent a byte by the CLI.
"""

import asyncio
import json
import os
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.cli import scenarios as cli_scenarios
from himalia.cli.serving import ForeignSocket, ServingPlane
from himalia.controlplane import ControlPlane
from himalia.core.operator_socket import ACT_AS_HEADER, STORE_HEADER, socket_path, store_digest
from himalia.identity.caller import Caller
from himalia.wire.identity import UpdateUser

from ..conftest import LiveAPI, Serving, World
from .conftest import Ledger

ATTACK = "21 operator socket"
OTHER_UIDS = [1, 2, 33, 1000, 4242, 65534]
#: The intruders' interpreter: the system's, which every account and group may run (the stdlib is enough).
SYSTEM_PYTHON = "/usr/bin/python3"
AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK), reason="switching OS accounts needs root"
)

#: What a process of another account sends: the operator's headers, acting as the administrator.
INTRUDER = textwrap.dedent(
    """
    import socket, sys
    with socket.socket(socket.AF_UNIX) as connection:
        try:
            connection.connect("control.sock")
        except OSError as error:
            print("refused by the file system:", error.errno)
            sys.exit(0)
        connection.sendall(sys.argv[1].encode())
        print(connection.recv(200).decode().splitlines()[0])
    """
)


@pytest.fixture
def backend() -> str:
    """The socket's checks are the host's, not the store's: SQLite is enough."""
    return "sqlite"


@pytest.fixture
def serving(plane: ControlPlane) -> Iterator[Serving]:
    served = Serving(plane)
    assert served.socket is not None, "the test's home path is too long for a Unix socket"
    yield served
    served.stop()


def raw_request(target: str, headers: dict[str, str]) -> str:
    lines = [f"GET {target} HTTP/1.1", "Host: x", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


def send(path: Path, request: str) -> tuple[int, Any]:
    """The status and JSON body of ``request`` sent as raw bytes on the socket ``path``."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(path))
        connection.sendall(request.encode("utf-8", "surrogateescape"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.strip().startswith(b"{") else None


@AS_ROOT
def test_every_other_account_is_refused(plane: ControlPlane, serving: Serving, ledger: Ledger) -> None:
    path = socket_path(plane.home)
    assert path is not None
    request = raw_request("/himalia/api/v1/me", {ACT_AS_HEADER: "admin", STORE_HEADER: store_digest(plane.db_url)})
    assert send(path, request)[0] == 200  # the control plane's own account is answered

    def intrude(uid: int, gid: int) -> str:
        ran = subprocess.run(
            [SYSTEM_PYTHON, "-c", INTRUDER, request],
            cwd=plane.home,  # entered as root: the intruder needs no right on the folders above
            user=uid,
            group=gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.strip()

    for uid in OTHER_UIDS:  # the socket as it is opened: 0600, the file system refuses first
        said = intrude(uid, uid)
        assert ledger.tried(ATTACK, ("mode 0600", uid), said.startswith("refused by the file system")), (uid, said)
    os.chmod(plane.home, 0o711)
    os.chmod(path, 0o666)  # opened up on purpose: the peer's account must still be refused
    for uid in OTHER_UIDS:
        for gid in (uid, 0, os.getegid()):
            said = intrude(uid, gid)
            assert ledger.tried(ATTACK, ("mode 0666", uid, gid), " 401 " in said), (uid, gid, said)


HOSTILE_LOGINS = [
    "nobody-here",
    "x" * 300,
    "' OR '1'='1",
    "admin' --",
    "%",
    "_",
    "*",
    "ADMIN",
    "admin ",  # stripped: the administrator, whom the operator may act as
    "\u0430dmin",  # Cyrillic a
    "\uff41\uff44\uff4d\uff49\uff4e",
    "../admin",
    "admin\tadmin",
]


def test_act_as_names_a_person_or_is_refused(plane: ControlPlane, serving: Serving, ledger: Ledger) -> None:
    path = socket_path(plane.home)
    assert path is not None

    def me(login: str) -> tuple[int, Any]:
        return send(path, raw_request("/himalia/api/v1/me", {ACT_AS_HEADER: login}))

    for login in HOSTILE_LOGINS:
        status, body = me(login)
        if login.strip() == "admin":
            assert status == 200 and body["login"] == "admin"
            continue
        refused = status in (400, 404) and "login" not in body
        assert ledger.tried(ATTACK, ("act as", login), refused), (login, status, body)
        assert "Traceback" not in json.dumps(body)
    status, body = me("reader")
    assert status == 200 and body["login"] == "reader"
    as_reader = send(path, raw_request("/himalia/api/v1/users", {ACT_AS_HEADER: "reader"}))
    assert ledger.tried(ATTACK, ("reader lists users", None), as_reader[0] == 403), as_reader
    plane.users.update_user(Caller.operator(), "contributor", UpdateUser(active=False))
    status, body = me("contributor")
    assert ledger.tried(ATTACK, ("deactivated", "contributor"), status == 401), (status, body)
    wrong_store = send(path, raw_request("/himalia/api/v1/me", {STORE_HEADER: store_digest("sqlite:///x")}))
    assert ledger.tried(ATTACK, ("another store", None), wrong_store[0] == 421), wrong_store


SOCKET_HEADERS: list[dict[str, str]] = [
    {ACT_AS_HEADER: "admin"},
    {ACT_AS_HEADER: "admin", STORE_HEADER: "0" * 32},
    {"x-himalia-as": "admin"},
    {ACT_AS_HEADER.upper(): "projadmin"},
]


def test_socket_headers_over_tcp_are_nobodys_credential(api: LiveAPI, ledger: Ledger) -> None:
    for headers in SOCKET_HEADERS:
        anonymous = api.request("GET", "/me", role="anonymous", headers=headers)
        assert ledger.tried(ATTACK, ("tcp, no token", str(headers)), anonymous.status_code == 401), anonymous.text
        as_reader = api.request("GET", "/me", role="reader", headers=headers)
        assert as_reader.status_code == 200
        assert ledger.tried(ATTACK, ("tcp, reader", str(headers)), as_reader.json()["login"] == "reader")


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    return extension_config | {"HimaliaExtension": {"local_user": "owner"}}


def test_socket_headers_in_the_jupyter_host_are_nobodys_credential(
    started_extension: Any, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, world: World, ledger: Ledger
) -> None:
    """In a lab, the caller is whom the Jupyter server or the Himalia token says, never the header."""

    def login(headers: dict[str, str]) -> str:
        answered = jp_asyncio_loop.run_until_complete(jp_fetch("himalia", "api", "v1", "me", headers=headers))
        return str(json.loads(answered.body)["login"])

    for headers in SOCKET_HEADERS:
        as_owner = login(headers)  # jp_fetch's Jupyter token: the lab's owner
        assert ledger.tried(ATTACK, ("jupyter host, owner", str(headers)), as_owner == "owner"), as_owner
        as_reader = login(headers | {"Authorization": f"token {world.tokens['reader']}"})
        assert ledger.tried(ATTACK, ("jupyter host, reader", str(headers)), as_reader == "reader"), as_reader


def _file(path: Path, outside: Path) -> None:
    path.write_text("kept")


def _folder(path: Path, outside: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("kept")


def _fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def _link_to_file(path: Path, outside: Path) -> None:
    (outside / "target").write_text("kept")
    path.symlink_to(outside / "target")


def _link_dangling(path: Path, outside: Path) -> None:
    path.symlink_to(outside / "nothing-here")


def _link_to_socket(path: Path, outside: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(outside / "stale.sock"))  # a socket nobody listens on, elsewhere
    stale.close()
    path.symlink_to(outside / "stale.sock")


def _link_to_folder(path: Path, outside: Path) -> None:
    (outside / "folder").mkdir()
    path.symlink_to(outside / "folder", target_is_directory=True)


PLANTED: list[Callable[[Path, Path], None]] = [
    _file,
    _folder,
    _fifo,
    _link_to_file,
    _link_dangling,
    _link_to_socket,
    _link_to_folder,
]


def _shape(path: Path) -> Any:
    """What ``path`` and whatever it leads to are, to compare before and after."""
    if path.is_symlink():
        return ("link", os.readlink(path), _shape(Path(os.readlink(path))) if path.exists() else None)
    if path.is_dir():
        return ("folder", sorted((p.name, p.read_text()) for p in path.iterdir()))
    if path.is_fifo() or path.is_socket():
        return ("special", path.stat().st_mode)
    return ("file", path.read_text()) if path.exists() else None


@pytest.mark.parametrize("plant", PLANTED, ids=lambda plant: plant.__name__.strip("_"))
def test_what_lies_at_the_socket_path_is_left_alone(
    plane: ControlPlane, tmp_path: Path, plant: Callable[[Path, Path], None], ledger: Ledger
) -> None:
    path = socket_path(plane.home)
    assert path is not None
    outside = tmp_path / "outside"
    outside.mkdir()
    plant(path, outside)
    before = (_shape(path), sorted(p.name for p in outside.iterdir()))
    served = Serving(plane)
    try:
        left_alone = served.socket is None and (_shape(path), sorted(p.name for p in outside.iterdir())) == before
    finally:
        served.stop()
    assert ledger.tried(ATTACK, ("planted", plant.__name__), left_alone), plant.__name__
    assert ServingPlane.find(plane.home, plane.db_url, None) is None  # nor does the CLI use it


@AS_ROOT
@pytest.mark.parametrize("uid", [1, 4242, 65534])
def test_the_cli_sends_nothing_to_another_accounts_socket(
    plane: ControlPlane, uid: int, monkeypatch: pytest.MonkeyPatch, ledger: Ledger
) -> None:
    """A process of another account listens on the home's socket (bound here, listened on there:
    the listener's account is the one a client sees); the CLI runs the scenario itself and the
    listener receives nothing."""
    path = socket_path(plane.home)
    assert path is not None
    bound = socket.socket(socket.AF_UNIX)
    bound.bind(str(path))
    os.chmod(path, 0o666)
    listener = textwrap.dedent(
        """
        import socket, sys
        server = socket.socket(fileno=int(sys.argv[1]))
        server.listen()
        print("listening", flush=True)
        server.settimeout(30)
        received = 0
        for _ in range(2):  # the finding below, then the CLI's
            connection, _ = server.accept()
            connection.settimeout(1)
            try:
                received += len(connection.recv(65536))
            except TimeoutError:
                pass
        print("received", received)
        """
    )
    with subprocess.Popen(
        [SYSTEM_PYTHON, "-c", listener, str(bound.fileno())],
        pass_fds=[bound.fileno()],
        user=uid,
        group=uid,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
    ) as impostor:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "listening"
        with pytest.raises(ForeignSocket, match=f"uid {uid}"):
            ServingPlane.find(plane.home, plane.db_url, "admin")
        ran_here: list[tuple[Any, ...]] = []
        monkeypatch.setattr(cli_scenarios, "_run_here", lambda *arguments: ran_here.append(arguments))
        store = ["--home", plane.home, "--db-url", plane.db_url]
        result = CliRunner().invoke(main, [*store, "--as", "admin", "scenario", "run", "ALPHA", "nightly"])
        said = impostor.communicate(timeout=60)[0].strip()
    bound.close()
    assert result.exit_code == 0, result.output
    assert "another OS account" in result.output and len(ran_here) == 1, result.output
    assert ledger.tried(ATTACK, ("impostor listens", uid), said == "received 0"), said
