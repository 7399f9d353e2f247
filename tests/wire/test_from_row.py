"""``from_row``: a wire model from an ORM row's attributes, the computed fields given at the call."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from himalia.store.orm import Project, User
from himalia.wire.common import from_row
from himalia.wire.identity import DescribeProject, DescribeUser

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _user() -> User:
    return User(
        login="alice", display_name="Alice", email="a@example.org", profile="admin", kind="user", active=True,
        created_at=CREATED,
    )  # fmt: skip


def test_fields_of_the_same_name_come_from_the_row_and_computed_ones_replace_theirs() -> None:
    owner = _user()
    project = Project(
        key="FRAUD", name="Fraud", description="", owner=owner, tags=["risk"], status="active", created_at=CREATED,
        updated_at=CREATED,
    )  # fmt: skip
    described = from_row(DescribeProject, project, owner=owner.login, my_permissions=[])
    assert described.owner == "alice"  # the relationship's row replaced by its login
    assert (described.key, described.tags, described.created_at) == ("FRAUD", ["risk"], CREATED)


def test_a_field_the_row_lacks_and_no_one_computes_is_an_error_not_a_silent_default() -> None:
    row = SimpleNamespace(
        login="bob",
        display_name="",
        email="",
        profile="analyst",
        kind="user",
        source="local",
        active=True,
        created_at=CREATED,
        last_seen_at=None,
    )
    with pytest.raises(ValidationError, match="groups"):
        from_row(DescribeUser, row)
    described = from_row(DescribeUser, row, groups=["analysts"])
    assert described.profile == "analyst" and described.groups == ["analysts"]
