"""The bundle endpoints over HTTP, with every denial: who may list, create, download, preview, import, activate."""

import base64
import io
import zipfile
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from himalia.bundles.format import public_key_text
from himalia.controlplane import ControlPlane
from himalia.identity.audit import AuditFilter

from ..conftest import LiveAPI

BASE = "/projects/ALPHA/bundles"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def created(api: LiveAPI) -> Iterator[bytes]:
    """Version 1 of ALPHA, created by its owner; the file's bytes."""
    reply = api.request("POST", BASE, "projadmin", json={"note": "first", "with_grants": True})
    assert reply.status_code == 201, reply.text
    download = api.request("GET", f"{BASE}/1/download", "projadmin")
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/zip"
    assert 'filename="ALPHA-v1.himalia-bundle"' in download.headers["Content-Disposition"]
    yield download.content


def encoded(content: bytes) -> str:
    return base64.b64encode(content).decode()


def test_listing_creating_and_downloading_need_their_permissions(api: LiveAPI, created: bytes) -> None:
    assert api.request("GET", BASE, "anonymous").status_code == 401
    assert api.request("GET", BASE, "nogrant").status_code == 404
    listed = api.request("GET", BASE, "reader")
    assert listed.status_code == 200, listed.text
    assert [(b["version"], b["note"], b["origin"]) for b in listed.json()] == [(1, "first", "created")]
    for role in ("reader", "contributor"):
        assert api.request("POST", BASE, role, json={}).status_code == 403
        assert api.request("GET", f"{BASE}/1/download", role).status_code == 403
    assert api.request("POST", BASE, "nogrant", json={}).status_code == 404
    assert api.request("GET", f"{BASE}/7/download", "projadmin").status_code == 404
    assert api.request("GET", f"{BASE}/x/download", "projadmin").status_code == 404
    assert api.request("POST", BASE, "admin", json={"note": "x", "colour": 1}).status_code == 400


def test_preview_import_and_activate_need_admin_on_the_target(api: LiveAPI, created: bytes) -> None:
    body = {"content": encoded(created)}
    for role, status in (("anonymous", 401), ("nogrant", 404), ("reader", 403), ("contributor", 403)):
        assert api.request("POST", f"{BASE}/preview", role, json=body).status_code == status, role
        assert api.request("POST", f"{BASE}/import", role, json=body).status_code == status, role
        assert api.request("POST", f"{BASE}/1/activate", role, json={}).status_code == status, role
    # The project's owner is its admin, but may not use the connection 'wh' its dataset names.
    refused = api.request("POST", f"{BASE}/preview", "projadmin", json=body)
    assert refused.status_code == 400 and refused.json()["field"] == "datasets[0].connection"
    preview = api.request("POST", f"{BASE}/preview", "admin", json=body)
    assert preview.status_code == 200, preview.text
    assert preview.json()["changes"] == [] and preview.json()["project_exists"] is True
    activated = api.request("POST", f"{BASE}/import", "admin", json={**body, "activate": True})
    assert activated.status_code == 200 and activated.json()["activated"] is True
    assert api.request("POST", f"{BASE}/1/activate", "admin", json={}).json()["bundle"]["active"] is True
    assert api.request("POST", f"{BASE}/99/activate", "admin", json={}).status_code == 404


def test_a_damaged_body_or_bundle_is_a_400_naming_it(api: LiveAPI, created: bytes) -> None:
    reply = api.request("POST", f"{BASE}/preview", "admin", json={"content": "not base64!"})
    assert reply.status_code == 400 and reply.json()["field"] == "content"
    with zipfile.ZipFile(io.BytesIO(created)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["definitions.json"] = members["definitions.json"].replace(b"ALPHA", b"ALPHB", 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    reply = api.request("POST", f"{BASE}/import", "admin", json={"content": encoded(buffer.getvalue())})
    assert reply.status_code == 400 and reply.json()["field"] == "definitions.json"
    assert "definitions.json" in reply.json()["message"]
    other = api.request("POST", "/projects/BETA/bundles/preview", "admin", json={"content": encoded(created)})
    assert other.status_code == 400 and other.json()["field"] == "project"


def test_signing_keys_are_readable_and_trusted_by_administrators(api: LiveAPI, plane: ControlPlane) -> None:
    assert api.request("GET", "/bundle-keys/signing", "anonymous").status_code == 401
    key = api.request("GET", "/bundle-keys/signing", "reader").json()["public_key"]
    assert key == plane.bundles.public_key().public_key
    for role in ("reader", "projadmin"):
        assert api.request("GET", "/bundle-keys/trusted", role).status_code == 403
        trust = {"name": "design", "public_key": key}
        assert api.request("POST", "/bundle-keys/trusted", role, json=trust).status_code == 403
    other = public_key_text(Ed25519PrivateKey.generate())
    added = api.request("POST", "/bundle-keys/trusted", "admin", json={"name": "design", "public_key": other})
    assert added.status_code == 201, added.text
    assert (
        api.request("POST", "/bundle-keys/trusted", "admin", json={"name": "x", "public_key": "nope"}).json()["field"]
        == "public_key"
    )
    names = [k["name"] for k in api.request("GET", "/bundle-keys/trusted", "admin").json()]
    assert names == ["this instance", "design"]
    audit = plane.audit.list_entries(
        plane.users.caller_for("admin"),
        AuditFilter(action="bundle.trust_key"),
        10,
        0,
    )
    assert audit.total == 1
