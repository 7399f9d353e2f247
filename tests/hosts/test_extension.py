"""The jupyter-server extension host: who a request acts as, and the API's error contract there.

Whoever the Jupyter server authenticates (here: by its own token, which ``jp_fetch`` adds) acts as
``HimaliaExtension.local_user``, a global administrator; a request carrying a Himalia token acts
as that token's user with that user's permissions, and needs no XSRF cookie. Runs on both backends
(``db_url``), under pytest-jupyter's default base URL ``/a%40b/``.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from ..conftest import World

API = "himalia/api/v1"
Fetch = Callable[..., HTTPResponse]


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any]) -> dict[str, Any]:
    return extension_config | {"HimaliaExtension": {"local_user": "owner"}}


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Fetch:
    """``jp_fetch`` (the Jupyter token unless ``headers`` has an Authorization) run to completion.

    The tests are synchronous on purpose: with ``asyncio_mode = "auto"``, pytest-asyncio would run
    an ``async def`` test on a loop of its own, while the Jupyter server and ``jp_fetch``'s client
    live on pytest-jupyter's ``jp_asyncio_loop``: awaiting ``jp_fetch`` there never completes.
    """

    def run(*parts: str, **kwargs: Any) -> HTTPResponse:
        return jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))

    return run


@pytest.fixture
def fetch_anonymous(http_server_client: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, jp_base_url: str) -> Fetch:
    """A request with no credentials at all: no Authorization header, no cookie, no ?token=."""

    def run(path: str, **kwargs: Any) -> HTTPResponse:
        future = http_server_client.fetch(f"{jp_base_url}{API}/{path}", raise_error=False, **kwargs)
        return jp_asyncio_loop.run_until_complete(future)

    return run


def as_user(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"token {world.tokens[role]}"}


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)


def assert_error(response: HTTPResponse, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    reply = body(response)
    assert set(reply) == {"status", "message", "field"}
    assert reply["status"] == status
    assert isinstance(reply["message"], str) and reply["message"]
    assert reply["field"] == field
    return reply


def test_jupyter_token_acts_as_the_local_administrator(fetch: Fetch) -> None:
    me = body(fetch(API, "me"))
    assert me["login"] == "owner"
    assert me["global_permissions"]["admin"] is True
    assert "administrators" in me["groups"]
    # ... with an administrator's powers: here, seeing every user.
    logins = {user["login"] for user in body(fetch(API, "users"))["items"]}
    assert {"owner", "reader", "target"} <= logins


def test_himalia_token_acts_as_its_user_with_its_permissions(fetch: Fetch, world: World) -> None:
    reader = as_user(world, "reader")
    me = body(fetch(API, "me", headers=reader))
    assert me["login"] == "reader"
    assert me["global_permissions"]["admin"] is False
    assert me["groups"] == ["readers"]

    # The local administrator makes a project nobody has a grant on: hidden from the reader.
    created = fetch(API, "projects", method="POST", body=json.dumps({"key": "OWNED", "name": "Owned"}))
    assert created.code == 201
    assert body(created)["owner"] == "owner"
    assert_error(fetch(API, "projects", "OWNED", headers=reader, raise_error=False), 404)
    # ALPHA, granted to the readers group, is visible with the reader preset and no more.
    alpha = body(fetch(API, "projects", "ALPHA", headers=reader))
    assert "read_content" in alpha["my_permissions"]
    assert "admin" not in alpha["my_permissions"]
    assert {project["key"] for project in body(fetch(API, "projects", headers=reader))["items"]} == {"ALPHA"}
    # Administrators-only verbs are forbidden.
    with pytest.raises(HTTPClientError) as denied:
        fetch(API, "users", method="POST", body=json.dumps({"login": "intruder"}), headers=reader)
    assert_error(denied.value.response, 403)
    assert_error(fetch(API, "users", headers=reader, raise_error=False), 403)
    # A user without any grant does not even learn that ALPHA exists.
    assert_error(fetch(API, "projects", "ALPHA", headers=as_user(world, "nogrant"), raise_error=False), 404)


def login_cookie(fetch: Fetch) -> str:
    """The Jupyter login cookie a browser holds after signing in (here: by the Jupyter token)."""
    response = fetch(API, "me")
    return "; ".join(cookie.split(";", 1)[0] for cookie in response.headers.get_list("Set-Cookie"))


def test_post_with_a_himalia_token_needs_no_xsrf_cookie(fetch: Fetch, fetch_anonymous: Fetch, world: World) -> None:
    response = fetch(
        API, "tokens", method="POST", body=json.dumps({"name": "from-jupyter"}), headers=as_user(world, "reader")
    )
    assert response.code == 201
    created = body(response)
    assert created["user"] == "reader"
    assert created["name"] == "from-jupyter"
    # The new token is a working credential of the same user.
    me = body(fetch(API, "me", headers={"Authorization": f"token {created['token']}"}))
    assert me["login"] == "reader"
    # Whereas a POST without an Authorization header (a browser's, say) must carry Jupyter's XSRF token.
    cookie = login_cookie(fetch)
    assert body(fetch_anonymous("me", headers={"Cookie": cookie}))["login"] == "owner"
    unsigned = fetch_anonymous("tokens", method="POST", body="{}", headers={"Cookie": cookie})
    assert "_xsrf" in assert_error(unsigned, 403)["message"]


def test_no_credentials_is_401_with_the_error_body(fetch_anonymous: Fetch) -> None:
    for path in ("me", "projects", "users", "audit"):
        assert_error(fetch_anonymous(path), 401)


def test_unknown_tokens_are_401_never_the_local_administrator(fetch: Fetch) -> None:
    for header in ("token hml_not-a-real-token", "token not-the-jupyter-token", "Bearer hml_x"):
        response = fetch(API, "me", headers={"Authorization": header}, raise_error=False)
        assert_error(response, 401)


def test_openapi_document_is_served_without_authentication(fetch_anonymous: Fetch, jp_base_url: str) -> None:
    response = fetch_anonymous("openapi.json")
    assert response.code == 200
    document = body(response)
    assert document["openapi"].startswith("3.")
    # Paths carry the Jupyter server's base URL.
    assert f"{jp_base_url}{API}/me" in document["paths"]
    assert f"{jp_base_url}{API}/projects/{{key}}" in document["paths"]


@pytest.mark.parametrize("who", ["jupyter", "himalia"])
def test_malformed_json_body_is_400_naming_body(fetch: Fetch, world: World, who: str) -> None:
    headers = as_user(world, "admin") if who == "himalia" else {}
    for path, method in (("tokens", "POST"), ("projects/ALPHA", "PATCH"), ("variables", "PUT")):
        response = fetch(API, path, method=method, body="{not json", headers=headers, raise_error=False)
        reply = assert_error(response, 400, field="body")
        assert "JSON" in reply["message"]


def test_text_resources_keep_their_media_type_under_jupyter(fetch: Fetch) -> None:
    """Jupyter's APIHandler would stamp every reply JSON; a report shown as source is no report."""
    exported = fetch(API, "projects", "ALPHA", "scenarios", "nightly", "export")
    assert exported.headers["Content-Type"].startswith("application/yaml")
    log = fetch(API, "projects", "ALPHA", "scenarios", "nightly", "runs", "1", "log")
    assert log.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body(fetch(API, "me"))["login"] == "owner"
    assert fetch(API, "me").headers["Content-Type"].startswith("application/json")


def test_the_extension_reads_notebooks_in_the_jupyter_root(started_extension: Any, jp_root_dir: Any) -> None:
    """Standalone, the lab's saves and previews read the Jupyter root: its files are its user's own."""
    assert started_extension.control_plane.notebook_root == str(jp_root_dir)
