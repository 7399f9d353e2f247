"""``himalia serve``: the control plane as its own Tornado service, authenticated by tokens.

This is the host JupyterHub will run as a managed service; the handlers are the same ones the
Jupyter server extension mounts.
"""

import asyncio
import signal

from tornado import web
from tornado.httpserver import HTTPServer

from himalia.api import api_prefix, routes
from himalia.api.base import API_PREFIX_SETTING, CONTROL_PLANE, TRUSTED_PROXIES_SETTING, trusted_networks
from himalia.controlplane import ControlPlane
from himalia.hosts.operator_socket import OperatorSocket


def make_application(control_plane: ControlPlane, base_url: str = "/") -> web.Application:
    settings = {
        CONTROL_PLANE: control_plane,
        API_PREFIX_SETTING: api_prefix(base_url),
        TRUSTED_PROXIES_SETTING: trusted_networks(control_plane.trusted_proxies or ()),
    }
    return web.Application(routes(base_url), **settings)  # type: ignore[arg-type]


def log_settings(control_plane: ControlPlane) -> None:
    """The settings an operator checks first, as the configured objects hold them (files, environment, options)."""
    plane, mailer = control_plane, control_plane.mailer
    plane.log.info(
        "Scenario runs: %s; at most %d at once, %d per run-as user, %d queued",
        "executed here" if plane.run_scenarios else "not executed here",
        plane.max_concurrent_runs,
        plane.max_concurrent_runs_per_user,
        plane.max_queued_runs,
    )
    plane.log.info("Email reports through %s:%d, TLS: %s", mailer.host, mailer.port, mailer.security)
    plane.log.info(
        "Links in reports start at %s",
        plane.public_url or "nothing: set c.ControlPlane.public_url to the address people open the UI at",
    )


async def serve(control_plane: ControlPlane, ip: str, port: int, base_url: str = "/", hub: bool = False) -> None:
    """Serve until SIGINT or SIGTERM; ``hub``: as a JupyterHub service, configured by its environment.

    Every configurable here is created with ``parent=control_plane`` and so reads its section of
    the configuration the plane was given (``c.HubService.*``, ``c.HubOAuth.*``, ``c.Mailer.*``, …).
    """
    hub_service = None
    if hub:
        from himalia.hub.service import HubService, make_hub_application

        hub_service = HubService(control_plane, parent=control_plane)
        hub_service.start()
        application = make_hub_application(control_plane, hub_service)
        base_url = hub_service.auth.base_url
    else:
        application = make_application(control_plane, base_url)
    # No xheaders: the handlers read forwarded-for headers only from the trusted proxies.
    server = HTTPServer(application, max_body_size=control_plane.max_request_body_bytes)
    server.listen(port, ip)
    reachable = "127.0.0.1" if ip in {"", "0.0.0.0", "::"} else ip
    control_plane.api_url = f"http://{reachable}:{port}{api_prefix(base_url)}"
    operator_socket = None
    if control_plane.run_scenarios:
        control_plane.start_engine()
        operator_socket = OperatorSocket.open(control_plane)
    log_settings(control_plane)
    control_plane.log.info("Himalia control plane listening on http://%s:%d%s", ip, port, api_prefix(base_url))
    if hub_service is not None:
        await hub_service.sync_all()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    if hub_service is not None:
        hub_service.stop()
    if operator_socket is not None:
        operator_socket.close()
    server.stop()
    await server.close_all_connections()
