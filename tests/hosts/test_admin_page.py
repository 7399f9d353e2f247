"""The administration application in the jupyter-server host: its page, behind the Jupyter login,
carries the base URL and sets the ``_xsrf`` cookie its changes send; its bundle is public. In a hub
user's server the same address sends the browser on to the hub service's application."""

import asyncio
import json
import re
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from himalia.hosts.admin import STATIC

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    return extension_config | {"HimaliaExtension": {"local_user": "owner"}}


def get(client: Any, loop: asyncio.AbstractEventLoop, url: str, **kwargs: Any) -> HTTPResponse:
    return loop.run_until_complete(client.fetch(url, raise_error=False, follow_redirects=False, **kwargs))


def page_config(page: HTTPResponse) -> dict[str, str]:
    found = re.search(r'<script id="himalia-admin-config" type="application/json">(.*?)</script>', page.body.decode())
    assert found, page.body
    return json.loads(found.group(1))


def test_the_page_needs_the_jupyter_login_and_sets_the_xsrf_cookie(
    http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str, jp_serverapp: Any
) -> None:
    anonymous = get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/")
    assert anonymous.code == 302 and "/login?next=" in anonymous.headers["Location"]

    token = jp_serverapp.identity_provider.token
    page = get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/?token={token}")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page_config(page) == {
        "baseUrl": jp_base_url,
        "homeUrl": f"{jp_base_url}lab",
        "homeLabel": "Back to JupyterLab",
    }
    cookies = page.headers.get_list("Set-Cookie")
    assert any(cookie.startswith("_xsrf=") for cookie in cookies), cookies


@pytest.mark.skipif(not (STATIC / "admin.js").exists(), reason="npm run build:admin builds the bundle")
def test_the_bundle_the_page_names_is_served_to_anyone(
    http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str, jp_serverapp: Any
) -> None:
    token = jp_serverapp.identity_provider.token
    page = get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/?token={token}").body.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\?v=[0-9a-f]+)"', page)
    assert [asset.split("?")[0] for asset in assets] == [
        f"{jp_base_url}himalia/admin/static/admin.css",
        f"{jp_base_url}himalia/admin/static/admin.js",
    ]
    for asset in assets:
        served = get(http_server_client, jp_asyncio_loop, asset.replace("&amp;", "&"))
        assert served.code == 200 and served.body, asset
    missing = get(http_server_client, jp_asyncio_loop, f"{jp_base_url}himalia/admin/static/../__init__.py")
    assert missing.code in (403, 404)
