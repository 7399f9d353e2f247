"""``himalia serve`` and ``openapi``: the REST API on its own, and its description."""

import json
import os

import click

from himalia.cli.context import Context, config_option, pass_ctx
from himalia.cli.output import run


@click.command("serve")
@click.option("--ip", help="Default: 127.0.0.1, or the host of $JUPYTERHUB_SERVICE_URL under JupyterHub.")
@click.option("--port", type=int, help="Default: 8765, or the port of $JUPYTERHUB_SERVICE_URL under JupyterHub.")
@click.option("--base-url", default="/", show_default=True, help="Ignored under JupyterHub (the service prefix).")
@click.option(
    "--hub/--no-hub",
    default=None,
    help="Run as a JupyterHub service (default: when started by JupyterHub, i.e. $JUPYTERHUB_API_TOKEN is set).",
)
@config_option
@pass_ctx
def serve_command(ctx: Context, ip: str | None, port: int | None, base_url: str, hub: bool | None) -> None:
    """Serve the REST API on its own: Himalia tokens, and JupyterHub's identities as a hub service.

    Every setting (c.ControlPlane.*, c.Mailer.*, c.WebhookSettings.*, c.HubService.*, c.UserIsolation.*,
    the executors') comes from the configuration file; --home and --db-url win over it.
    """
    import asyncio
    import logging
    from urllib.parse import urlsplit

    from himalia.hosts.server import serve

    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    if hub is None:
        hub = bool(os.environ.get("JUPYTERHUB_API_TOKEN"))
    service_url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "")) if hub else None
    ip = ip or (service_url.hostname if service_url and service_url.hostname else "127.0.0.1")
    port = port or (service_url.port if service_url and service_url.port else 8765)
    plane = run(ctx.plane)
    plane.log.info("Configuration: %s", ctx.configuration().describe())
    run(lambda: asyncio.run(serve(plane, ip, port, base_url, hub=hub)))


@click.command("openapi")
def openapi_command() -> None:
    """Print the REST API's OpenAPI document (the lab extension's wire types are generated from it)."""
    from himalia.api import API_PREFIX
    from himalia.api.openapi import document_for

    click.echo(json.dumps(document_for(API_PREFIX), indent=1, sort_keys=True))
