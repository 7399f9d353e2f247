"""The demo's mail sink: a local SMTP server that keeps every message it receives as an ``.eml`` file.

For the demo and the tests only, not for production: it accepts mail from anyone for anyone,
without TLS or authentication, and never delivers anything. Each message is written whole (an
atomic rename, so a reader never sees half a file) to ``<folder>/<UTC timestamp>-<n>.eml`` and
announced on standard output with one line: ``mail to x@y: <subject> -> <path>``.

    python -m himalia.demo.mailsink --port 8025 --folder .himalia-demo/mail

or, from Python, ``controller = start_mailsink(folder, port)`` and later ``controller.stop()``.
"""

import argparse
import asyncio
import itertools
import signal
import threading
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from types import FrameType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_PORT = 8025


class FolderHandler:
    """The aiosmtpd handler: each message becomes ``<UTC timestamp>-<n>.eml`` in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    def save(self, content: bytes, recipients: list[str]) -> Path:
        """Write one message and announce it; returns the file's path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}-{next(self._numbers)}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(content)
        partial.replace(path)
        subject = BytesParser(policy=default).parsebytes(content, headersonly=True).get("subject", "")
        print(f"mail to {', '.join(recipients)}: {subject} -> {path}", flush=True)
        return path

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        self.save(content, [str(r) for r in envelope.rcpt_tos])
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's threaded controller, also on port 0 (the system picks a free port, read ``.port``)."""

    def _trigger_server(self) -> Any:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        return super()._trigger_server()


def start_mailsink(folder: Path, port: int = DEFAULT_PORT, *, host: str = "127.0.0.1") -> Controller:
    """Start the sink in a thread of its own; the caller stops it with ``.stop()``.

    ``port=0`` lets the system pick a free port, then available as the controller's ``port``.
    """
    folder = Path(folder).absolute()  # the announced paths open from anywhere
    folder.mkdir(parents=True, exist_ok=True)
    controller = _Controller(FolderHandler(folder), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    """``python -m himalia.demo.mailsink``: run until interrupted (Ctrl-C or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m himalia.demo.mailsink", description="The demo's local SMTP server (not for production)."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--folder", type=Path, default=Path("mail"), help="where the .eml files go (default ./mail)")
    arguments = parser.parse_args(argv)
    stopped = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    controller = start_mailsink(arguments.folder, arguments.port, host=arguments.host)
    print(f"mail sink on {arguments.host}:{controller.port}, saving to {controller.handler.folder}", flush=True)
    try:
        while not stopped.wait(1):
            pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
