"""People for the admin panel: deactivation and what it does (tokens revoked in the same change,
no run starting as them, said before), last seen kept to the minute, the listing's filters, and
hub groups whose members only the identity provider changes."""

from datetime import UTC, datetime, timedelta
from typing import Any

import alembic.command
import pytest
from sqlalchemy import select, text, update

from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict, Unauthenticated
from himalia.core.permissions import GlobalPermission
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller
from himalia.identity.users import HubPerson
from himalia.store.db import Database
from himalia.store.orm import ScenarioRun, User, utcnow
from himalia.wire.identity import CreateToken, CreateUser, UpdateGroup, UpdateUser
from himalia.wire.operations import BoardStatus, MissedReason
from himalia.wire.scenarios import RunRequest, RunState

from ..conftest import LiveAPI

OPERATOR = Caller.operator("test")
#: Fires are expected after the scenario's last save (the real clock): the tests run two years ahead.
FUTURE = datetime(utcnow().year + 2, 1, 15, tzinfo=UTC)


def admin(plane: ControlPlane) -> Caller:
    return plane.users.caller_for("admin")


def deactivate(plane: ControlPlane, login: str, by: Caller | None = None) -> None:
    plane.users.update_user(by or admin(plane), login, UpdateUser(active=False))


def last_seen(plane: ControlPlane, login: str) -> datetime | None:
    return plane.users.get_user(OPERATOR, login).last_seen_at


def seen_at(plane: ControlPlane, login: str, moment: datetime | None) -> None:
    with plane.db.write() as session:
        session.execute(update(User).where(User.login == login).values(last_seen_at=moment))


# -- deactivation --------------------------------------------------------------------------------


def test_deactivating_revokes_every_token_in_the_same_change_and_audits_how_many(plane: ControlPlane) -> None:
    second = plane.tokens.create_token(OPERATOR, CreateToken(user="target", name="laptop")).token
    plan = plane.users.deactivation(admin(plane), "target")
    assert plan.active and plan.refusal is None
    assert plan.token_count == 2 and {t.name for t in plan.tokens} == {"", "laptop"}
    assert all(t.prefix.startswith("hml_") and len(t.prefix) == 8 for t in plan.tokens)
    assert second not in plan.model_dump_json()  # prefixes only, never a value

    deactivate(plane, "target")
    described = plane.users.get_user(OPERATOR, "target")
    assert not described.active and described.deactivated_by == "admin"
    assert plane.tokens.list_tokens(OPERATOR, 50, 0, user="target").total == 0
    with pytest.raises(Unauthenticated):
        plane.tokens.authenticate(second, "192.0.2.1")
    (entry,) = plane.audit.list_entries(OPERATOR, AuditFilter(action="user.update"), 10, 0).items
    assert entry.object_id == "target" and entry.details == {"active": False, "tokens_revoked": 2}

    reactivated = plane.users.update_user(admin(plane), "target", UpdateUser(active=True))
    assert reactivated.active and reactivated.deactivated_by is None
    assert plane.tokens.list_tokens(OPERATOR, 50, 0, user="target").total == 0  # none given back


def test_a_refused_deactivation_revokes_nothing(plane: ControlPlane, world: Any) -> None:
    """'admin' is the only administrator: the refusal rolls back the tokens' revocation with it."""
    plan = plane.users.deactivation(OPERATOR, "admin")
    assert plan.refusal == "This would leave the platform without an active administrator."
    with pytest.raises(Conflict, match="without an active administrator"):
        deactivate(plane, "admin", by=OPERATOR)
    assert plane.tokens.authenticate(world.tokens["admin"], "192.0.2.1").login == "admin"
    assert plane.users.get_user(OPERATOR, "admin").active


def test_no_one_deactivates_themselves(plane: ControlPlane) -> None:
    plane.users.create_user(OPERATOR, CreateUser(login="second", groups=["administrators"]))
    assert plane.users.deactivation(admin(plane), "admin").refusal == (
        "You cannot deactivate yourself: ask another administrator."
    )
    with pytest.raises(Conflict, match="cannot deactivate yourself") as refused:
        deactivate(plane, "admin")
    assert refused.value.field == "active"
    deactivate(plane, "admin", by=plane.users.caller_for("second"))  # another administrator may
    assert not plane.users.get_user(OPERATOR, "admin").active


def test_a_scheduled_fire_as_a_deactivated_person_is_skipped_and_the_board_says_why(plane: ControlPlane) -> None:
    """The seeded 'nightly' (daily at 02:00 UTC) runs as its author, projadmin."""
    (scenario,) = plane.users.deactivation(admin(plane), "projadmin").scenarios
    assert (scenario.project, scenario.id, scenario.scheduled) == ("ALPHA", "nightly", True)
    deactivate(plane, "projadmin")

    scheduler = plane.new_scheduler(lambda: FUTURE)
    scheduler.load()
    (run_id,) = scheduler.fire_due(FUTURE + timedelta(hours=2))
    with plane.db.write() as session:  # stamped with the scheduler's clock, as it would be
        session.execute(update(ScenarioRun).where(ScenarioRun.id == run_id).values(created_at=FUTURE))
    with plane.db.read() as session:
        run = session.get_one(ScenarioRun, run_id)
        assert run.state == RunState.SKIPPED and run.started_at is None and run.token_id is None
        assert run.trigger_detail["skipped"] == "run_as_deactivated"
        assert "run-as user 'projadmin' is deactivated" in run.message

    board = plane.board.board(admin(plane), since=FUTURE, now=FUTURE + timedelta(hours=3))
    (entry,) = [s for s in board.scenarios if s.scenario == "nightly"]
    (fire,) = [f for f in entry.fires if f.due_at == FUTURE + timedelta(hours=2)]
    assert fire.status == BoardStatus.MISSED and fire.missed_reason == MissedReason.RUN_AS_DEACTIVATED
    assert "'projadmin' is deactivated" in (fire.message or "")

    with pytest.raises(Conflict, match="'nightly' was not started: its run-as user 'projadmin' is deactivated"):
        plane.runs.request_run(admin(plane), "ALPHA", "nightly", RunRequest())

    plane.users.update_user(admin(plane), "projadmin", UpdateUser(active=True))
    (next_run,) = scheduler.fire_due(FUTURE + timedelta(days=1, hours=2))
    with plane.db.read() as session:
        assert session.get_one(ScenarioRun, next_run).state == RunState.QUEUED


def test_a_run_queued_before_the_deactivation_does_not_start_as_them(plane: ControlPlane) -> None:
    queued = plane.runs.request_run(admin(plane), "ALPHA", "nightly", RunRequest())
    deactivate(plane, "projadmin")
    with pytest.raises(Conflict, match="its run-as user 'projadmin' is deactivated"):
        plane.runs.start_run(queued.id)
    with plane.db.read() as session:
        assert session.get_one(ScenarioRun, queued.id).token_id is None  # no token minted for it


# -- last seen -----------------------------------------------------------------------------------


def test_last_seen_is_kept_to_the_minute_by_token_use_and_sign_in(plane: ControlPlane, count_statements: Any) -> None:
    token = plane.tokens.create_token(OPERATOR, CreateToken(user="target")).token
    assert last_seen(plane, "target") is None
    plane.tokens.authenticate(token, "192.0.2.1")
    first = last_seen(plane, "target")
    assert first is not None and utcnow() - first < timedelta(seconds=30)

    with count_statements() as statements:
        plane.tokens.authenticate(token, "192.0.2.1")
        plane.users.sign_in("target", "192.0.2.1")
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]  # within the minute: no write
    assert last_seen(plane, "target") == first

    a_while_ago = utcnow() - timedelta(minutes=2)
    seen_at(plane, "target", a_while_ago)
    plane.users.sign_in("target", "192.0.2.1")  # the lab's own user, a hub login
    refreshed = last_seen(plane, "target")
    assert refreshed is not None and refreshed > a_while_ago + timedelta(minutes=1)

    seen_at(plane, "target", None)
    plane.users.caller_for("target")  # the CLI acting as them is not them signing in
    assert last_seen(plane, "target") is None


def test_a_runs_token_is_not_its_run_as_person_being_seen(plane: ControlPlane) -> None:
    run = plane.runs.request_run(admin(plane), "ALPHA", "nightly", RunRequest())
    started = plane.runs.start_run(run.id)
    seen_at(plane, "projadmin", None)
    assert plane.tokens.authenticate(started.token, "run").login == "projadmin"
    assert last_seen(plane, "projadmin") is None
    with plane.db.read() as session:
        assert session.get_one(ScenarioRun, run.id).token_id is not None


# -- listing -------------------------------------------------------------------------------------


def test_people_are_listed_by_kind_status_and_a_literal_search(plane: ControlPlane, count_statements: Any) -> None:
    users = plane.users
    users.create_user(OPERATOR, CreateUser(login="ci-bot", display_name="CI 100%", kind="service"))
    users.create_user(OPERATOR, CreateUser(login="a_b", display_name="Underscore"))
    users.create_user(OPERATOR, CreateUser(login="axb", display_name="No underscore"))
    deactivate(plane, "nogrant")

    def logins(**filters: Any) -> list[str]:
        return [u.login for u in users.list_users(admin(plane), 50, 0, **filters).items]

    assert logins(kind="service") == ["ci-bot"]
    assert logins(active=False) == ["nogrant"]
    assert "nogrant" not in logins(active=True, kind="user")
    assert logins(search="TARG") == ["target"]  # any case
    assert logins(search="private.example") == ["target"]  # in the email
    assert logins(search="100%") == ["ci-bot"]  # in the display name
    assert logins(search="a_b") == ["a_b"]  # '_' is no wildcard
    assert logins(search="%") == ["ci-bot"]  # nor is '%'
    assert logins(search="\\") == []
    page = users.list_users(admin(plane), 1, 0, kind="user")
    assert page.total == len(logins(kind="user")) and len(page.items) == 1
    caller = admin(plane)
    with count_statements() as statements:
        users.list_users(caller, 50, 0, search="a", active=True, kind="user")
    assert len(statements) <= 3  # count, page, groups: whatever the number of people


def test_users_say_their_source(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([HubPerson("hubalice", False, frozenset({"analysts"}))], "administrators")
    assert plane.users.get_user(OPERATOR, "hubalice").source == "hub"
    assert plane.users.get_user(OPERATOR, "target").source == "local"
    assert plane.users.get_group(OPERATOR, "analysts").source == "hub"
    assert plane.users.get_group(OPERATOR, "readers").source == "local"


# -- JupyterHub ----------------------------------------------------------------------------------


def test_a_hub_groups_members_are_changed_only_by_the_identity_provider(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([HubPerson("hubalice", False, frozenset({"analysts"}))], "administrators")
    for change in (
        lambda: plane.users.add_member(admin(plane), "analysts", "target"),
        lambda: plane.users.remove_member(admin(plane), "analysts", "hubalice"),
    ):
        with pytest.raises(Conflict, match="come from JupyterHub") as refused:
            change()
        assert refused.value.field == "group"
    assert plane.users.get_group(OPERATOR, "analysts").members == ["hubalice"]
    # Its permissions and description are managed here.
    changed = plane.users.update_group(
        admin(plane), "analysts", UpdateGroup(description="Analysts", permissions=[GlobalPermission.VIEW_AUDIT])
    )
    assert changed.permissions == [GlobalPermission.VIEW_AUDIT] and changed.description == "Analysts"


def test_the_hub_sync_does_not_undo_an_administrators_deactivation(plane: ControlPlane) -> None:
    hubbob = HubPerson("hubbob", False, frozenset())
    plane.users.sync_from_hub([hubbob], "administrators")
    token = plane.tokens.create_token(OPERATOR, CreateToken(user="hubbob")).token
    deactivate(plane, "hubbob")
    assert plane.users.sync_from_hub([hubbob], "administrators") == []  # their next login at the hub
    with pytest.raises(Unauthenticated):
        plane.users.sign_in("hubbob")
    with pytest.raises(Unauthenticated):
        plane.tokens.authenticate(token, "192.0.2.1")


def test_the_hub_sync_revokes_the_tokens_of_people_gone_from_the_hub(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([HubPerson("hubbob", False, frozenset())], "administrators", complete=True)
    token = plane.tokens.create_token(OPERATOR, CreateToken(user="hubbob")).token
    assert plane.users.sync_from_hub([], "administrators", complete=True) == ["deactivated hubbob (gone from the hub)"]
    assert plane.users.get_user(OPERATOR, "hubbob").deactivated_by == "jupyterhub-sync"
    with pytest.raises(Unauthenticated):
        plane.tokens.authenticate(token, "192.0.2.1")
    entries = plane.audit.list_entries(OPERATOR, AuditFilter(actor="jupyterhub-sync", action="user.update"), 10, 0)
    assert entries.items[0].details == {"active": False, "tokens_revoked": 1}


def test_hub_people_deactivated_before_revision_0010_are_still_reactivated_by_the_sync(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([HubPerson("hubbob", False, frozenset())], "administrators")
    deactivate(plane, "target")
    database = Database(plane.db.url)
    try:
        alembic.command.downgrade(database.alembic_config(), "0009")
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE users SET active = :no WHERE login = 'hubbob'"), {"no": False})
        database.upgrade()
    finally:
        database.dispose()
    assert plane.users.get_user(OPERATOR, "hubbob").deactivated_by == "jupyterhub-sync"
    assert plane.users.get_user(OPERATOR, "target").deactivated_by is None  # made here: not the sync's
    assert plane.users.sync_from_hub([HubPerson("hubbob", False, frozenset())], "administrators") == [
        "reactivated hubbob"
    ]


# -- through the API -----------------------------------------------------------------------------


def test_the_api_deactivates_after_saying_what_it_will_do(api: LiveAPI) -> None:
    plan = api.request("GET", "/users/target/deactivation").json()
    assert plan["token_count"] == 1 and plan["scenarios"] == [] and plan["servers"] == []
    assert "token" not in plan["tokens"][0]  # the value is never in a description
    assert api.request("GET", "/users/target/deactivation", role="projadmin").status_code == 403
    refused = api.request("PATCH", "/users/target", role="projadmin", json={"active": False})
    assert refused.status_code == 403
    assert api.plane.users.get_user(OPERATOR, "target").active

    done = api.request("PATCH", "/users/target", json={"active": False})
    assert done.status_code == 200 and done.json()["active"] is False
    assert api.request("GET", "/tokens", params={"user": "target"}).json()["total"] == 0
    listed = api.request("GET", "/users", params={"active": "false"}).json()
    assert [u["login"] for u in listed["items"]] == ["target"]
    last = api.request("PATCH", "/users/admin", json={"active": False})
    assert last.status_code == 409 and "without an active administrator" in last.json()["message"]
    assert api.request("POST", "/users", json={"login": "second", "groups": ["administrators"]}).status_code == 201
    mine = api.request("PATCH", "/users/admin", json={"active": False})
    assert mine.status_code == 409 and mine.json()["field"] == "active"
    bad = api.request("GET", "/users", params={"active": "perhaps"})
    assert bad.status_code == 400 and bad.json()["field"] == "active"
    with api.plane.db.read() as session:
        assert session.scalar(select(User.active).where(User.login == "admin"))
