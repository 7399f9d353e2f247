"""A scenario's tier as an attacker would pick it: one that does not exist, one reserved to others.

The tier is checked for the scenario's run-as user when it is saved and when each run starts; a
run that starts on a tier opens a usage record that its end (or the recovery of its control
plane) closes. Runs here are real runs of the engine, on SQLite and PostgreSQL, with steps that
need no kernel.
"""

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.store.orm import ApiToken, ScenarioRun, Tier, TierUsage, User, utcnow
from himalia.wire.compute import TierSpec

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "10 scenario tier"
BASE = "/projects/ALPHA/scenarios"
OPERATOR = Caller.operator("test-setup", client_address="test")


@pytest.fixture
def tiers(plane: ControlPlane) -> None:
    """``open`` to everyone, ``team`` to contributors, ``admins-only`` to administrators, ``retired`` archived."""
    plane.tiers.put_tier(OPERATOR, "open", TierSpec(cost_per_hour=0.5))
    plane.tiers.put_tier(OPERATOR, "team", TierSpec(allowed_groups=["contributors"]))
    plane.tiers.put_tier(OPERATOR, "admins-only", TierSpec(allowed_groups=["administrators"]))
    plane.tiers.put_tier(OPERATOR, "retired", TierSpec(archived=True))


def definition(scenario: str, tier: str | None, run_as: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": scenario,
        "name": scenario,
        "steps": [{"name": "Values", "type": "set_variables", "values": {"x": 1}}],
    }
    if tier is not None:
        body["tier"] = tier
    if run_as is not None:
        body["run_as"] = run_as
    return body


def save(api: LiveAPI, role: str, body: dict[str, Any]) -> Any:
    return api.request("PUT", f"{BASE}/{body['id']}", role, json={"definition": body})


def request_run(api: LiveAPI, role: str, scenario: str) -> Any:
    return api.request("POST", f"{BASE}/{scenario}/run", role, json={})


def wait(api: LiveAPI, scenario: str, run_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.request("GET", f"{BASE}/{scenario}/runs/{run_id}", "admin").json()
        if run["state"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def start_engine(plane: ControlPlane, api: LiveAPI) -> None:
    plane.api_url = api.base
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=False)


def usage_of(plane: ControlPlane, run_id: int) -> list[tuple[str, str, bool]]:
    """(user, tier, ended) of the run's usage records."""
    with plane.db.read() as session:
        rows = session.execute(
            select(User.login, Tier.name, TierUsage.ended_at)
            .join(User, User.id == TierUsage.user_id)
            .join(Tier, Tier.id == TierUsage.tier_id)
            .where(TierUsage.run_id == run_id)
        ).all()
    return [(login, tier, ended is not None) for login, tier, ended in rows]


# -- on save ---------------------------------------------------------------------------------------

SAVE_REFUSALS = [
    # (who saves, tier, run_as, status, words of the message)
    ("contributor", "nope", None, 400, "there is no tier 'nope'"),
    ("contributor", "Open", None, 400, "there is no tier 'Open'"),
    ("contributor", "open ", None, 400, "there is no tier 'open '"),
    ("contributor", "../open", None, 400, "there is no tier '../open'"),
    ("contributor", "admins-only", None, 403, "not available to contributor"),
    ("contributor", "retired", None, 403, "is archived"),
    ("admin", "team", None, 403, "not available to admin"),
    ("admin", "team", "reader", 403, "not available to reader"),
    ("admin", "retired", "contributor", 403, "is archived"),
    ("admin", "nope", "contributor", 400, "there is no tier 'nope'"),
]


@pytest.mark.parametrize(("role", "tier", "run_as", "status", "words"), SAVE_REFUSALS)
def test_a_tier_that_does_not_exist_or_is_not_the_run_as_users_is_refused_on_save(
    api: LiveAPI, tiers: None, ledger: Ledger, role: str, tier: str, run_as: str | None, status: int, words: str
) -> None:
    reply = save(api, role, definition("sized", tier, run_as))

    refused = reply.status_code == status and reply.json()["field"] == "tier" and words in reply.json()["message"]
    assert refused, reply.text
    assert api.request("GET", f"{BASE}/sized", "admin").status_code == 404
    assert ledger.tried(ATTACK, f"save {tier!r} by {role} as {run_as or role}", refused)


def test_allowed_tiers_are_saved_for_the_run_as_user(api: LiveAPI, tiers: None) -> None:
    assert save(api, "contributor", definition("mine", "team")).status_code == 200
    assert save(api, "contributor", definition("everyone", "open")).status_code == 200
    assert save(api, "contributor", definition("untiered", None)).status_code == 200
    # An administrator who may not use 'team' may still make a contributor's scenario run on it.
    assert save(api, "admin", definition("delegated", "team", run_as="contributor")).status_code == 200


# -- on every run ----------------------------------------------------------------------------------


def test_run_requests_and_reruns_are_refused_once_the_tier_is_no_longer_allowed(
    plane: ControlPlane, api: LiveAPI, tiers: None, ledger: Ledger
) -> None:
    assert save(api, "contributor", definition("mine", "team")).status_code == 200
    assert save(api, "contributor", definition("everyone", "open")).status_code == 200
    earlier = request_run(api, "contributor", "mine").json()["id"]
    assert api.request("POST", f"{BASE}/mine/runs/{earlier}/abort", "contributor").status_code == 200
    plane.tiers.put_tier(OPERATOR, "team", TierSpec(allowed_groups=["administrators"]))
    plane.tiers.put_tier(OPERATOR, "open", TierSpec(archived=True))

    attempts = {
        "run of mine": request_run(api, "contributor", "mine"),
        "rerun of mine": api.request("POST", f"{BASE}/mine/runs/{earlier}/rerun", "contributor", json={}),
        "run of everyone": request_run(api, "contributor", "everyone"),
    }
    for case, reply in attempts.items():
        words = "is archived" if "everyone" in case else "not available to contributor"
        refused = reply.status_code == 403 and reply.json()["field"] == "tier" and words in reply.json()["message"]
        assert refused, (case, reply.text)
        assert ledger.tried(ATTACK, f"{case} after its tier changed", refused)
    assert api.request("GET", f"{BASE}/mine/runs", "admin").json()["total"] == 1
    assert api.request("GET", f"{BASE}/everyone/runs", "admin").json()["total"] == 0


def test_a_queued_run_whose_tier_changed_fails_to_start_without_usage_or_token(
    plane: ControlPlane, api: LiveAPI, tiers: None, ledger: Ledger
) -> None:
    """The engine checks again: runs queued (or fired by a schedule) while their tier was allowed,
    started after it was restricted, archived or deleted, fail with the reason and record nothing."""
    plane.tiers.put_tier(OPERATOR, "soon-archived", TierSpec())
    plane.tiers.put_tier(OPERATOR, "ephemeral", TierSpec())
    cases = {"restricted": "team", "archived": "soon-archived", "deleted": "ephemeral"}
    queued = {}
    for scenario, tier in cases.items():
        assert save(api, "contributor", definition(scenario, tier)).status_code == 200
        queued[scenario] = request_run(api, "contributor", scenario).json()["id"]
    plane.tiers.put_tier(OPERATOR, "team", TierSpec(allowed_groups=["administrators"]))
    plane.tiers.put_tier(OPERATOR, "soon-archived", TierSpec(archived=True))
    with plane.db.write() as session:  # an operator's cleanup in the database
        session.execute(delete(Tier).where(Tier.name == "ephemeral"))

    start_engine(plane, api)
    expected = {
        "restricted": "tier: the tier 'team' is not available to contributor: it is reserved for the groups "
        "administrators.",
        "archived": "tier: the tier 'soon-archived' is archived.",
        "deleted": "tier: there is no tier 'ephemeral'.",
    }
    for scenario, run_id in queued.items():
        run = wait(api, scenario, run_id)
        refused = (run["state"], run["message"]) == ("failed", f"The run could not start: {expected[scenario]}")
        assert refused, run
        assert usage_of(plane, run_id) == []
        with plane.db.read() as session:
            assert session.get_one(ScenarioRun, run_id).token_id is None
            assert session.scalar(select(ApiToken.id).where(ApiToken.name.like(f"run #{run_id} %"))) is None
        assert ledger.tried(ATTACK, f"queued run, then its tier {scenario}", refused)


def test_every_run_on_a_tier_records_its_usage(plane: ControlPlane, api: LiveAPI, tiers: None, ledger: Ledger) -> None:
    assert save(api, "contributor", definition("mine", "team")).status_code == 200
    assert save(api, "admin", definition("delegated", "team", run_as="contributor")).status_code == 200
    assert save(api, "contributor", definition("untiered", None)).status_code == 200
    start_engine(plane, api)

    for scenario in ("mine", "delegated"):
        run_id = request_run(api, "admin", scenario).json()["id"]
        run = wait(api, scenario, run_id)
        assert run["state"] == "succeeded", run
        recorded = usage_of(plane, run_id) == [("contributor", "team", True)]
        assert recorded, usage_of(plane, run_id)
        assert ledger.tried(ATTACK, f"usage of a run on a tier ({scenario})", refused=recorded)
    untiered = request_run(api, "contributor", "untiered").json()["id"]
    assert wait(api, "untiered", untiered)["state"] == "succeeded"
    assert usage_of(plane, untiered) == []
    mine = api.request("GET", "/usage", "contributor").json()["items"]
    assert [(u["kind"], u["tier"], u["user"]) for u in mine] == [("run", "team", "contributor")] * 2


def test_a_recovered_run_closes_its_usage(plane: ControlPlane, api: LiveAPI, tiers: None) -> None:
    """A control plane that died with a run on a tier leaves an open record; the recovery closes it."""
    assert save(api, "contributor", definition("mine", "open")).status_code == 200
    run_id = request_run(api, "contributor", "mine").json()["id"]
    assert plane.runs.claim_next("elsewhere:1:gone", 0) == run_id
    with plane.db.write() as session:
        contributor = session.scalars(select(User).where(User.login == "contributor")).one()
        plane.tiers.open_run_usage(session, contributor, "open", run_id)
    assert usage_of(plane, run_id) == [("contributor", "open", False)]
    with plane.db.write() as session:
        session.get_one(ScenarioRun, run_id).heartbeat_at = utcnow() - timedelta(minutes=5)

    assert plane.runs.recover(timedelta(seconds=60)) == [run_id]
    assert usage_of(plane, run_id) == [("contributor", "open", True)]
