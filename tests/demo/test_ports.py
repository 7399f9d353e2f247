"""A demo port already taken stops `make lab` and `make demo` before anything starts, in one sentence."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from himalia.demo.ports import PortProblem, PortSetting, check_ports, parse_setting

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: The Makefile's port variables of each demo.
PORT_VARIABLES = {
    "lab": ("LAB_PORT", "LAB_SMTP_PORT"),
    "demo": ("HUB_PORT", "HUB_API_PORT", "HUB_PROXY_API_PORT", "HUB_SERVICE_PORT", "HUB_SMTP_PORT", "IDP_PORT"),
}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something listens on for the test's duration."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_taken_port_is_named_with_the_variable_to_change(taken_port: int) -> None:
    free = free_port()
    with pytest.raises(PortProblem) as refused:
        check_ports([PortSetting("LAB_SMTP_PORT", free), PortSetting("LAB_PORT", taken_port)], "make lab")
    assert str(refused.value) == (
        f"Port {taken_port} is already in use: stop what listens there or choose another "
        "with `make lab LAB_PORT=<free port>`."
    )
    check_ports([PortSetting("LAB_SMTP_PORT", free)], "make lab")  # a free port passes


def test_one_port_for_two_variables_and_non_numbers_are_refused() -> None:
    port = free_port()
    with pytest.raises(PortProblem, match=rf"^LAB_PORT and LAB_SMTP_PORT are both {port}: give each its own port"):
        check_ports([PortSetting("LAB_PORT", port), PortSetting("LAB_SMTP_PORT", port)], "make lab")
    for text, reason in [
        ("HUB_PORT=eighty", "HUB_PORT must be a port number from 1 to 65535, not 'eighty'"),
        ("HUB_PORT=70000", "HUB_PORT must be a port number from 1 to 65535, not '70000'"),
        ("HUB_PORT=", "HUB_PORT must be a port number from 1 to 65535, not ''"),
        ("8000", "expected VARIABLE=PORT, not '8000'"),
    ]:
        with pytest.raises(PortProblem) as refused:
            parse_setting(text)
        assert str(refused.value) == reason
    assert parse_setting("HUB_PORT=8000") == PortSetting("HUB_PORT", 8000)


@pytest.mark.parametrize(
    ("target", "variable", "started"),
    [("lab", "LAB_PORT", "LAB_HOME"), ("lab", "LAB_SMTP_PORT", "LAB_HOME"), ("demo", "IDP_PORT", "HUB_STATE")],
)
def test_the_makefile_stops_before_starting_anything(
    target: str, variable: str, started: str, taken_port: int, tmp_path: Path
) -> None:
    """The Makefile's own recipe (its install steps assumed done), run from an empty folder."""
    folder = tmp_path / "state"
    ports = {name: free_port() for name in PORT_VARIABLES[target]} | {variable: taken_port}
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(REPOSITORY / "Makefile"),
            "-o",
            "install",
            "-o",
            "share-python",
            target,
            f"BIN={BIN}",
            *(f"{name}={port}" for name, port in ports.items()),
            f"{started}={folder}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    sentence = (
        f"Port {taken_port} is already in use: stop what listens there or choose another "
        f"with `make {target} {variable}=<free port>`."
    )
    assert done.stderr.splitlines()[0] == sentence, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not folder.exists()  # nothing was seeded, nothing started
