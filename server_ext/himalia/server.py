"""``himalia serve``: the control plane as its own Tornado service, authenticated by tokens.

This is the host JupyterHub will run as a managed service; the handlers are the same ones the
Jupyter server extension mounts.
"""

import asyncio
import signal

from tornado import web
from tornado.httpserver import HTTPServer

from .api import api_prefix, routes
from .api.base import API_PREFIX_SETTING, CONTROL_PLANE
from .controlplane import ControlPlane


def make_application(control_plane: ControlPlane, base_url: str = "/") -> web.Application:
    settings = {CONTROL_PLANE: control_plane, API_PREFIX_SETTING: api_prefix(base_url)}
    return web.Application(routes(base_url), **settings)  # type: ignore[arg-type]


async def serve(control_plane: ControlPlane, ip: str, port: int, base_url: str = "/") -> None:
    """Serve until SIGINT or SIGTERM."""
    server = HTTPServer(make_application(control_plane, base_url), xheaders=True)
    server.listen(port, ip)
    reachable = "127.0.0.1" if ip in {"", "0.0.0.0", "::"} else ip
    control_plane.api_url = f"http://{reachable}:{port}{api_prefix(base_url)}"
    if control_plane.run_scenarios:
        control_plane.start_engine()
    control_plane.log.info("Himalia control plane listening on http://%s:%d%s", ip, port, api_prefix(base_url))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.stop()
    await server.close_all_connections()
