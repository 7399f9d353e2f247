"""The probes in the stand-alone host: a Jupyter server answers them without its token or a cookie,
and the details need the server's owner (an administrator) or an administrator's token."""

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from ..conftest import World
from ..hosts.test_extension import API, Fetch, as_user


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    return extension_config | {"HimaliaExtension": {"local_user": "owner"}}


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Fetch:
    """``jp_fetch`` run to completion (see tests/hosts/test_extension.py for why synchronously)."""
    return lambda *parts, **kwargs: jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))


@pytest.fixture
def fetch_anonymous(http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str) -> Fetch:
    """No Authorization header, no cookie, no ?token=."""
    return lambda path: jp_asyncio_loop.run_until_complete(
        http_server_client.fetch(f"{jp_base_url}{API}/{path}", raise_error=False)
    )


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)


def test_the_probes_without_credentials(fetch_anonymous: Fetch) -> None:
    for probe in ("live", "ready"):
        reply = fetch_anonymous(f"health/{probe}")
        assert (reply.code, body(reply)) == (200, {"status": "ok"})
    assert fetch_anonymous("health").code == 401


def test_the_details_for_the_owner_and_not_a_reader(fetch: Fetch, world: World) -> None:
    health = body(fetch("himalia", "api", "v1", "health"))
    assert {component["name"] for component in health["components"]} >= {"store", "scheduler", "keys"}
    refused = fetch("himalia", "api", "v1", "health", headers=as_user(world, "reader"), raise_error=False)
    assert refused.code == 403
