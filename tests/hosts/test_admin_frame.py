"""The administration page in the jupyter-server host is protected from framing as behind the
hub: jupyter_server's own policy (``frame-ancestors 'self'``) is on the page, its files and the API."""

import asyncio
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from himalia.hosts.admin import STATIC

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    return extension_config | {"HimaliaExtension": {"local_user": "owner"}}


def get(client: Any, loop: asyncio.AbstractEventLoop, url: str) -> HTTPResponse:
    return loop.run_until_complete(client.fetch(url, raise_error=False, follow_redirects=False))


@pytest.mark.skipif(not (STATIC / "admin.js").exists(), reason="npm run build:admin builds the bundle")
def test_no_other_site_may_frame_the_page_its_files_or_the_api(
    http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str, jp_serverapp: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    responses = [
        get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/?token={token}"),
        get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/static/admin.css"),
        get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/api/v1/me?token={token}"),
        get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/"),  # to the Jupyter login
    ]
    assert [response.code for response in responses] == [200, 200, 200, 302]
    for response in responses:
        policy = [part.strip() for part in response.headers.get("Content-Security-Policy", "").split(";")]
        assert "frame-ancestors 'self'" in policy, (response.effective_url, response.headers)
