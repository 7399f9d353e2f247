"""The REST API: one module per resource, combined here into one route table."""

from collections.abc import Callable

from jupyter_server.utils import url_path_join

from himalia.api import audit, connections, datasets, projects, run_steps, scenarios, tiers, tokens, users, variables
from himalia.api.base import APIHandler, route_pattern

API_PREFIX = "/himalia/api/v1"

RESOURCE_HANDLERS: list[type[APIHandler]] = [
    *users.handlers,
    *projects.handlers,
    *connections.handlers,
    *variables.handlers,
    *datasets.handlers,
    *scenarios.handlers,
    *run_steps.handlers,
    *tiers.handlers,
    *tokens.handlers,
    *audit.handlers,
]


def api_prefix(base_url: str) -> str:
    return url_path_join(base_url, API_PREFIX)


def routes(
    base_url: str, adapt: Callable[[type[APIHandler]], type[APIHandler]] = lambda handler: handler
) -> list[tuple[str, type[APIHandler]]]:
    """Tornado routes of every handler under ``base_url``, each passed through the host's ``adapt``."""
    from himalia.api.openapi import OpenAPIHandler

    prefix = api_prefix(base_url)
    handlers: list[type[APIHandler]] = [*RESOURCE_HANDLERS, OpenAPIHandler]
    return [(route_pattern(prefix, h.route), adapt(h)) for h in handlers]
