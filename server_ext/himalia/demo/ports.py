"""Check the demos' ports before anything starts: a port already taken is one sentence, not a traceback.

``make lab`` and ``make demo`` start several servers (JupyterLab or JupyterHub with its proxy, the
Himalia service, the dev identity provider, the mail sink); each port is a Makefile variable. The
recipe first runs

    python -m himalia.demo.ports --for "make lab" LAB_PORT=8888 LAB_SMTP_PORT=8025

which exits with status 1 and one line naming the port and the variable to change when a port is
not a number, is given to two variables, or has a listener already.
"""

import argparse
import errno
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

#: The address every demo server listens on (JupyterLab's ``localhost`` includes it).
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PortSetting:
    variable: str
    port: int


class PortProblem(Exception):
    """A port setting that would stop a demo server from starting; the message is the sentence to print."""


def parse_setting(text: str) -> PortSetting:
    """``LAB_PORT=8888`` as a setting, or a problem naming the variable."""
    variable, sep, value = text.partition("=")
    if not sep or not variable:
        raise PortProblem(f"expected VARIABLE=PORT, not {text!r}")
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise PortProblem(f"{variable} must be a port number from 1 to 65535, not {value!r}")
    return PortSetting(variable, int(value))


def listening_problem(setting: PortSetting, command: str, host: str = LOOPBACK) -> str | None:
    """Why a server could not listen on ``host:port`` now (probed as servers bind: with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, setting.port))
        except OSError as error:
            change = f"`{command} {setting.variable}=<free port>`"
            if error.errno == errno.EADDRINUSE:
                return (
                    f"Port {setting.port} is already in use: stop what listens there or choose another with {change}."
                )
            return f"Port {setting.port} cannot be opened ({error.strerror}): choose another with {change}."
    return None


def check_ports(settings: Sequence[PortSetting], command: str) -> None:
    """Raise the first problem: a port given to two variables, or one something already listens on."""
    seen: dict[int, str] = {}
    for setting in settings:
        if setting.port in seen:
            raise PortProblem(
                f"{seen[setting.port]} and {setting.variable} are both {setting.port}: "
                f"give each its own port (`{command} {setting.variable}=...`)."
            )
        seen[setting.port] = setting.variable
    for setting in settings:
        if problem := listening_problem(setting, command):
            raise PortProblem(problem)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m himalia.demo.ports", description="Check that the demo's ports are free before it starts."
    )
    parser.add_argument("--for", dest="command", default="make", help="the command to suggest (e.g. 'make lab')")
    parser.add_argument("settings", nargs="+", metavar="VARIABLE=PORT")
    arguments = parser.parse_args(argv)
    try:
        check_ports([parse_setting(text) for text in arguments.settings], arguments.command)
    except PortProblem as problem:
        print(problem, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
