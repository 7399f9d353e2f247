"""Mirroring JupyterHub's people, groups and admin flags into Himalia (the service's sync)."""

from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller
from himalia.identity.users import HubPerson
from himalia.wire.identity import CreateGroup, UpdateUser


def person(login: str, *groups: str, admin: bool = False) -> HubPerson:
    return HubPerson(login, admin, frozenset(groups))


def groups_of(plane: ControlPlane, login: str) -> set[str]:
    return set(plane.users.get_user(Caller.operator(), login).groups)


def test_hub_groups_become_himalia_groups_and_hub_admins_become_admins(plane: ControlPlane) -> None:
    changes = plane.users.sync_from_hub(
        [person("hubalice", "admins", "readers", admin=True), person("hubbob", "analysts")], "administrators"
    )
    assert "created user hubalice" in changes and "created group analysts" in changes
    assert groups_of(plane, "hubalice") == {"admins", "readers", "administrators"}
    assert plane.users.caller_for("hubalice").is_admin
    assert not plane.users.caller_for("hubbob").is_admin
    # An existing group (here from the seeded world) keeps its permissions; the hub owns its members now.
    assert "hubalice" in (plane.users.get_group(Caller.operator(), "readers").members or [])


def test_losing_a_group_or_the_admin_flag_at_the_hub_removes_it_here(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([person("hubalice", "analysts", admin=True)], "administrators")
    changes = plane.users.sync_from_hub([person("hubalice", "readers")], "administrators")
    assert set(changes) == {
        "added hubalice to readers",
        "removed hubalice from administrators",
        "removed hubalice from analysts",
    }
    assert not plane.users.caller_for("hubalice").is_admin


def test_local_groups_and_local_people_are_left_alone(plane: ControlPlane) -> None:
    operator = Caller.operator()
    plane.users.create_group(operator, CreateGroup(name="local-only", permissions=[GlobalPermission.VIEW_AUDIT]))
    plane.users.sync_from_hub([person("hubalice")], "administrators")
    plane.users.add_member(operator, "local-only", "hubalice")
    plane.users.sync_from_hub([person("hubalice")], "administrators")
    assert "local-only" in groups_of(plane, "hubalice")
    # 'admin' of the seeded world was made here: a complete sync neither removes nor deactivates it.
    plane.users.sync_from_hub([person("hubalice")], "administrators", complete=True)
    assert plane.users.caller_for("admin").is_admin


def test_a_complete_sync_deactivates_hub_people_gone_from_the_hub_and_a_return_reactivates(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([person("hubalice"), person("hubbob")], "administrators", complete=True)
    changes = plane.users.sync_from_hub([person("hubalice")], "administrators", complete=True)
    assert changes == ["deactivated hubbob (gone from the hub)"]
    assert not plane.users.get_user(Caller.operator(), "hubbob").active
    assert plane.users.sync_from_hub([person("hubbob")], "administrators") == ["reactivated hubbob"]


def test_names_himalia_cannot_hold_are_skipped_not_fatal(plane: ControlPlane) -> None:
    changes = plane.users.sync_from_hub([person("Not A Login!"), person("ok", "bad group name!")], "administrators")
    assert changes == ["created user ok"]
    assert groups_of(plane, "ok") == set()


def test_every_sync_change_is_audited(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([person("hubalice", "analysts", admin=True)], "administrators")
    entries = plane.audit.list_entries(Caller.operator(), AuditFilter(actor="jupyterhub-sync"), 50, 0).items
    assert {"user.create", "group.add_member"} <= {e.action for e in entries}


def test_an_administrator_deactivating_someone_the_sync_deactivated_makes_it_theirs(plane: ControlPlane) -> None:
    """Else the sync, which reactivates only whom it deactivated, would undo it when they return."""
    plane.users.sync_from_hub([person("mallory")], "administrators")
    plane.users.sync_from_hub([], "administrators", complete=True)  # gone from the hub
    admin = plane.users.caller_for("admin")
    plane.users.update_user(admin, "mallory", UpdateUser(active=False))
    assert plane.users.sync_from_hub([person("mallory")], "administrators") == []  # back at the hub
    assert not plane.users.get_user(admin, "mallory").active
    (entry,) = plane.audit.list_entries(Caller.operator(), AuditFilter(actor="admin", object_id="mallory"), 5, 0).items
    assert entry.details == {"active": False, "deactivated_by": {"before": "jupyterhub-sync", "after": "admin"}}
