"""``HimaliaExtension.local_user_admin = False``: the lab acts as an existing user with that user's rights.

This is how a person tries the panels as a demo reader, and how the UI tests prove that a reader
sees no edit controls; the platform must then refuse what the reader may not do, whatever the
browser sends.
"""

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from ..conftest import World

API = "himalia/api/v1"


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any], world: World) -> dict[str, Any]:
    extension_config["ControlPlane"]["run_scenarios"] = False
    return extension_config | {"HimaliaExtension": {"local_user": "reader", "local_user_admin": False}}


def fetch(jp_fetch: Any, loop: asyncio.AbstractEventLoop, *parts: str, **kwargs: Any) -> HTTPResponse:
    return loop.run_until_complete(jp_fetch(*parts, raise_error=False, **kwargs))


def test_the_server_owner_acts_as_the_configured_user_without_promotion(
    jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> None:
    me = json.loads(fetch(jp_fetch, jp_asyncio_loop, API, "me").body)
    assert me["login"] == "reader"
    assert me["groups"] == ["readers"]
    assert me["global_permissions"]["admin"] is False

    alpha = json.loads(fetch(jp_fetch, jp_asyncio_loop, API, "projects", "ALPHA").body)
    assert "write_content" not in alpha["my_permissions"]
    refused = fetch(
        jp_fetch, jp_asyncio_loop, API, "projects", "ALPHA", "variables", method="PUT", body='{"variables": {"x": 1}}'
    )
    assert refused.code == 403, refused.body
    assert fetch(jp_fetch, jp_asyncio_loop, API, "users").code == 403
