"""Connection secrets: encrypted at rest, never returned, logged, audited or exported."""

import logging

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from himalia.controlplane import ControlPlane
from himalia.core.crypto import SecretBox, SecretKeyError
from himalia.core.errors import Forbidden, InvalidInput
from himalia.data.drivers import scrub
from himalia.identity.caller import Caller
from himalia.wire.data import AccessSpec, CreateConnection, SetCredentials

from ..conftest import AUDIT_KEY, SECRET_KEY, SHARED_SECRET, LiveAPI
from ..postgres import TemporaryPostgres

PER_USER_SECRET = "per-user-s3cr3t-Zk9"
NEW_SECRET = "created-over-api-Pw4"
EVERY_SECRET = (SHARED_SECRET, PER_USER_SECRET, NEW_SECRET)
ROLES = ("nogrant", "reader", "contributor", "projadmin", "admin")


def test_no_secret_leaks_anywhere(api: LiveAPI, plane: ControlPlane, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = api.request(
        "POST",
        "/connections",
        role="projadmin",
        json={
            "name": "api_made",
            "type": "files",
            "params": {"url": "s3://made"},
            "secrets": {"key": NEW_SECRET},
            "usable_by": {"mode": "everyone"},
            "details_readable_by": {"mode": "everyone"},
        },
    )
    assert created.status_code == 201
    assert api.request(
        "PUT", "/connections/personal_db/credentials", role="reader", json={"secrets": {"password": PER_USER_SECRET}}
    ).ok
    assert api.request("PATCH", "/connections/shared_db", role="admin", json={"secrets": {"token": SHARED_SECRET}}).ok

    responses = [created.text]
    for role in ROLES:
        for path in (
            "/connections",
            "/connections/shared_db",
            "/connections/personal_db",
            "/connections/api_made",
            "/audit",
            "/audit/export?format=jsonl",
            "/audit/export?format=csv",
            "/openapi.json",
        ):
            responses.append(api.request("GET", path, role=role).text)
        for name in ("shared_db", "personal_db", "api_made"):
            responses.append(api.request("POST", f"/connections/{name}/test", role=role).text)
    with plane.db.engine.connect() as connection:
        stored = [str(row) for row in connection.execute(text("SELECT * FROM connections"))]
        stored += [str(row) for row in connection.execute(text("SELECT * FROM connection_credentials"))]
        stored += [str(row) for row in connection.execute(text("SELECT * FROM audit_entries"))]

    for secret in EVERY_SECRET:
        for text_seen in responses:
            assert secret not in text_seen
        assert secret not in caplog.text
        for row in stored:
            assert secret not in row, "secrets must be encrypted at rest and absent from the audit trail"
    # The audit trail still says *that* secrets changed, by name.
    audit = api.request("GET", "/audit?action=connection.set_credentials", role="admin").json()
    assert audit["items"][0]["details"] == {"secret_names": ["password"]}


def test_per_user_credentials_are_each_users_own(plane: ControlPlane) -> None:
    reader = plane.users.caller_for("reader")
    contributor = plane.users.caller_for("contributor")
    plane.connections.set_my_credentials(reader, "personal_db", SetCredentials(secrets={"password": "r"}))
    assert plane.connections.get_connection(reader, "personal_db").has_my_credentials is True
    assert plane.connections.get_connection(contributor, "personal_db").has_my_credentials is False
    failing = plane.connections.test_connection  # a per-user connection without my secrets is refused
    with pytest.raises(InvalidInput, match="needs your own credentials"):
        failing(contributor, "personal_db")


def test_error_text_is_scrubbed_of_secrets() -> None:
    message = scrub("could not log in with pw=abc123 to host (pw abc123)", {"password": "abc123", "empty": ""})
    assert message == "could not log in with pw=*** to host (pw ***)"


def test_postgresql_connection_test_really_connects(plane: ControlPlane, postgres: TemporaryPostgres) -> None:
    """A real server with password authentication: right password works, wrong one fails without leaking."""
    with plane.db.engine.connect() as connection:
        if plane.db.dialect != "postgresql":
            pytest.skip("runs once, on the PostgreSQL backend")
    from sqlalchemy import create_engine

    admin = create_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP ROLE IF EXISTS warehouse_reader"))
        connection.execute(text("CREATE ROLE warehouse_reader LOGIN PASSWORD 'right-Pa55'"))
    admin.dispose()
    owner = plane.users.caller_for("projadmin")
    url = postgres.url("postgres", user="warehouse_reader")
    for name, password in (("pg_right", "right-Pa55"), ("pg_wrong", "wrong-Pa55-leak")):
        plane.connections.create_connection(
            owner,
            CreateConnection(
                name=name,
                type="sql",
                params={"url": url},
                secrets={"password": password},
                usable_by=AccessSpec(mode="everyone"),
            ),
        )
    assert plane.connections.test_connection(owner, "pg_right").ok
    failed = plane.connections.test_connection(owner, "pg_wrong")
    assert not failed.ok
    assert "password authentication failed" in failed.message
    assert "wrong-Pa55-leak" not in failed.message


def test_password_in_the_url_is_refused(plane: ControlPlane) -> None:
    owner = plane.users.caller_for("projadmin")
    with pytest.raises(InvalidInput, match=r"secrets\.password") as refused:
        plane.connections.create_connection(
            owner, CreateConnection(name="leaky", type="sql", params={"url": "postgresql://u:pw@h/db"})
        )
    assert refused.value.field == "params.url"


def test_local_files_need_write_unsafe_code(plane: ControlPlane) -> None:
    owner = plane.users.caller_for("projadmin")  # may create connections, may not run unsafe code
    for kind, url in (("sql", "sqlite:////etc/passwd"), ("files", "/etc"), ("files", "file:///etc")):
        with pytest.raises(Forbidden, match="write_unsafe_code"):
            plane.connections.create_connection(owner, CreateConnection(name="local", type=kind, params={"url": url}))  # type: ignore[arg-type]


def test_key_rotation_keeps_every_secret_readable(plane: ControlPlane, db_url: str, tmp_path: object) -> None:
    reader = plane.users.caller_for("reader")
    plane.connections.set_my_credentials(reader, "personal_db", SetCredentials(secrets={"password": "p"}))
    new_key = Fernet.generate_key().decode()
    rotating = ControlPlane(home=str(tmp_path), db_url=db_url, secret_keys=[new_key, SECRET_KEY], audit_key=AUDIT_KEY)
    rotating.start()
    try:
        assert rotating.connections.rotate_keys(Caller.operator()) == 2
    finally:
        rotating.stop()
    rotated = ControlPlane(home=str(tmp_path), db_url=db_url, secret_keys=[new_key], audit_key=AUDIT_KEY)
    rotated.start()
    try:
        admin = rotated.users.caller_for("admin")
        assert rotated.connections.get_connection(admin, "shared_db").secret_names == ["token"]
    finally:
        rotated.stop()
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox([Fernet.generate_key().decode()]).decrypt(SecretBox([new_key]).encrypt({"a": "b"}))


def test_audit_redacts_secret_looking_keys() -> None:
    from himalia.identity.audit import REDACTED, redact

    details = {"password": "p", "nested": [{"db_token": "t", "secret_names": ["a"]}], "api-key": "k", "name": "n"}
    assert redact(details) == {
        "password": REDACTED,
        "nested": [{"db_token": REDACTED, "secret_names": ["a"]}],
        "api-key": REDACTED,
        "name": "n",
    }
