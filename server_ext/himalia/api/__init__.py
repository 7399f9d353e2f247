"""The REST API: one module per resource, combined here into one route table.

Importing the package costs nothing: the handlers (and the services they import) come with
``routes``, so that a host can mount the API's prefix before it serves the API.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from jupyter_server.utils import url_path_join

from himalia.wire import API_PREFIX

if TYPE_CHECKING:
    from himalia.api.base import APIHandler


def api_prefix(base_url: str) -> str:
    return url_path_join(base_url, API_PREFIX)


def routes(
    base_url: str, adapt: "Callable[[type[APIHandler]], type[APIHandler]]" = lambda handler: handler
) -> "list[tuple[str, type[APIHandler]]]":
    """Tornado routes of every handler under ``base_url``, each passed through the host's ``adapt``."""
    from himalia.api.base import route_pattern
    from himalia.api.openapi import OpenAPIHandler
    from himalia.api.resources import RESOURCE_HANDLERS

    prefix = api_prefix(base_url)
    handlers: list[type[APIHandler]] = [*RESOURCE_HANDLERS, OpenAPIHandler]
    return [(route_pattern(prefix, h.route), adapt(h)) for h in handlers]
