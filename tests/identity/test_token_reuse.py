"""A token's caller is reused for a moment without reading the store, and never past a change:
any write this control plane commits ends every reuse at once, another control plane's change on
the same store is seen within ``token_reuse_seconds``, and a token's expiry is never outlived."""

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from himalia.controlplane import ControlPlane
from himalia.core.errors import Unauthenticated
from himalia.identity.caller import Caller
from himalia.store.orm import ApiToken, utcnow
from himalia.wire.identity import CreateToken

from ..conftest import make_plane

OPERATOR = Caller.operator("test")


def token_for(plane: ControlPlane, login: str) -> tuple[int, str]:
    created = plane.tokens.create_token(OPERATOR, CreateToken(user=login, name="reuse"))
    return created.id, created.token


def test_a_token_is_read_once_while_nothing_changes(plane: ControlPlane, count_statements: Any) -> None:
    _, token = token_for(plane, "reader")
    first = plane.tokens.authenticate(token, "192.0.2.1")  # reads, and marks the token used
    plane.tokens.authenticate(token, "192.0.2.1")  # reads again: that write ended the first reuse
    with count_statements() as statements:
        again = plane.tokens.authenticate(token, "198.51.100.7")
    assert statements == []
    assert again.client_address == "198.51.100.7"  # the request's own address, not the first one's
    assert (again.login, again.token_id, again.global_permissions) == (
        first.login,
        first.token_id,
        first.global_permissions,
    )


def test_any_write_here_ends_every_reuse_at_once(plane: ControlPlane) -> None:
    token_id, token = token_for(plane, "reader")
    for _ in range(2):
        assert not plane.tokens.authenticate(token, "test").is_admin
    plane.users.add_member(OPERATOR, "administrators", "reader")
    assert plane.tokens.authenticate(token, "test").is_admin  # the new group counts on the next request
    plane.tokens.revoke_token(OPERATOR, token_id)
    with pytest.raises(Unauthenticated):
        plane.tokens.authenticate(token, "test")


def test_another_control_planes_change_is_seen_within_the_reuse(plane: ControlPlane, tmp_path: Path) -> None:
    plane.tokens.recent_seconds = 0.3
    token_id, token = token_for(plane, "reader")
    for _ in range(2):
        plane.tokens.authenticate(token, "test")
    other = make_plane(tmp_path / "other-home", plane.db_url)
    try:
        other.tokens.revoke_token(OPERATOR, token_id)
    finally:
        other.stop()
    time.sleep(0.35)
    with pytest.raises(Unauthenticated):
        plane.tokens.authenticate(token, "test")


def test_a_reused_caller_never_outlives_its_tokens_expiry(plane: ControlPlane) -> None:
    plane.tokens.recent_seconds = 60
    token_id, token = token_for(plane, "reader")
    with plane.db.write() as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(expires_at=utcnow() + timedelta(seconds=1))
        )
    for _ in range(2):
        plane.tokens.authenticate(token, "test")
    time.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        plane.tokens.authenticate(token, "test")
