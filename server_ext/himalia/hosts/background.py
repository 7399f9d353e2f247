"""The API on a loopback port in a thread: what ``himalia scenario run --wait`` gives its kernels
when no control plane serves this home.

The port is bound at once, so its address can be handed to the run; the handlers are imported
and served in the thread, while the run's worker starts. A kernel that connects before they
are ready waits in the socket's backlog.
"""

import asyncio
import threading

from tornado.netutil import bind_sockets

from himalia.controlplane import ControlPlane
from himalia.wire import API_PREFIX


class BackgroundAPI:
    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self._sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{self._sockets[0].getsockname()[1]}{API_PREFIX}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="himalia-api", daemon=True)

    async def _serve(self) -> None:
        from tornado.httpserver import HTTPServer

        from himalia.hosts.server import make_application

        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        server = HTTPServer(make_application(self.control_plane))
        server.add_sockets(self._sockets)
        await self._stopping.wait()
        server.stop()
        await server.close_all_connections()

    def start(self) -> str:
        """Start serving in the background; the API's address, at once."""
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._ready.wait(10):
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
