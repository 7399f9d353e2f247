"""In a hub user's server, ``{base_url}himalia/admin/`` sends the browser to the hub service's
administration application, so that the lab links to the same address in both hosts."""

import asyncio
from typing import Any

import pytest


@pytest.fixture
def jp_server_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/jupyter/")
    return {
        "ServerApp": {"jpserver_extensions": {"himalia": True}},
        "HimaliaExtension": {"service_url": "http://127.0.0.1:1/services/himalia/himalia/api/v1"},
    }


def test_the_application_is_the_hub_services(
    http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str
) -> None:
    for path in ("himalia/admin/", "himalia/admin"):
        future = http_server_client.fetch(f"{jp_base_url}{path}", raise_error=False, follow_redirects=False)
        answer = jp_asyncio_loop.run_until_complete(future)
        assert (answer.code, answer.headers.get("Location")) == (302, "/jupyter/services/himalia/admin/"), path
