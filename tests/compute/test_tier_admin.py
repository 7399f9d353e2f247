"""What the Tiers page of the admin panel needs: validation naming the field, archive, the spawn
form as a chosen group would see it, and what runs on each tier now."""

from typing import Any

import pytest

from himalia.compute.spawn_form import spawn_form
from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.compute import DescribeTier, TierSpec

from ..conftest import LiveAPI


@pytest.fixture
def tiers(plane: ControlPlane) -> None:
    operator = Caller.operator("test-setup", client_address="test")
    plane.tiers.put_tier(operator, "small", TierSpec(display_name="Small", cpu_request=1, default=True))
    plane.tiers.put_tier(
        operator,
        "team",
        TierSpec(
            display_name="Team",
            cpu_request=2,
            memory_request=4 * 2**30,
            cost_per_hour=0.5,
            allowed_groups=["contributors"],
        ),
    )


def editable(tier: dict[str, Any]) -> dict[str, Any]:
    """A described tier as the editor sends it back: its spec, without what the server computes."""
    return {k: v for k, v in tier.items() if k in TierSpec.model_fields}


def test_a_limit_below_its_request_is_refused_naming_the_limit(api: LiveAPI, tiers: None) -> None:
    team = editable(api.request("GET", "/tiers/team").json())
    memory = api.request("PUT", "/tiers/team", json={**team, "memory_limit": "2Gi"})
    assert memory.status_code == 400
    assert memory.json()["field"] == "memory_limit" and "below memory_request" in memory.json()["message"]
    cores = api.request("PUT", "/tiers/team", json={**team, "cpu_limit": 1})
    assert cores.status_code == 400 and cores.json()["field"] == "cpu_limit"
    group = api.request("PUT", "/tiers/team", json={**team, "allowed_groups": ["contributors", "no-such-group"]})
    assert group.status_code == 400 and group.json()["field"] == "allowed_groups"
    assert "no-such-group" in group.json()["message"]
    assert api.request("GET", "/tiers/team").json()["cpu_request"] == 2, "a refused edit changed the tier"


def test_the_preview_is_the_hubs_form_for_the_group_alone(api: LiveAPI, tiers: None) -> None:
    contributors = api.request("GET", "/spawn-form?group=contributors").json()
    assert contributors["group"] == "contributors" and contributors["tiers"] == ["small", "team"]
    offered = [DescribeTier.model_validate(t) for t in api.request("GET", "/tiers?user=contributor").json()]
    assert contributors["html"] == spawn_form(offered)
    assert 'value="team"' in contributors["html"] and "0.50 USD per hour" in contributors["html"]
    # Readers are not allowed the team tier; a person in no group sees the open tiers only.
    assert api.request("GET", "/spawn-form?group=readers").json()["tiers"] == ["small"]
    assert api.request("GET", "/spawn-form").json() == {
        "group": None,
        "tiers": ["small"],
        "html": spawn_form([DescribeTier.model_validate(api.request("GET", "/tiers/small").json())]),
    }


def test_archiving_a_tier_takes_it_out_of_the_preview_and_unarchiving_brings_it_back(api: LiveAPI, tiers: None) -> None:
    team = editable(api.request("GET", "/tiers/team").json())
    assert api.request("PUT", "/tiers/team", json={**team, "archived": True}).json()["archived"] is True
    assert api.request("GET", "/spawn-form?group=contributors").json()["tiers"] == ["small"]
    assert "team" in [t["name"] for t in api.request("GET", "/tiers?archived=true").json()]
    api.request("PUT", "/tiers/team", json={**team, "archived": False}).raise_for_status()
    assert api.request("GET", "/spawn-form?group=contributors").json()["tiers"] == ["small", "team"]


def test_the_preview_needs_manage_tiers_and_a_group_that_exists(api: LiveAPI, tiers: None) -> None:
    for role in ("contributor", "reader", "nogrant", "projadmin"):
        refused = api.request("GET", "/spawn-form?group=contributors", role)
        assert refused.status_code == 403 and "manage_tiers" in refused.json()["message"], role
    unknown = api.request("GET", "/spawn-form?group=ghosts")
    assert unknown.status_code == 400 and unknown.json()["field"] == "group"
    malformed = api.request("GET", "/spawn-form", params={"group": "<script>"})
    assert malformed.status_code == 400 and malformed.json()["field"] == "group"


def test_a_tier_manager_who_is_no_administrator_edits_and_previews(api: LiveAPI, tiers: None) -> None:
    made = api.request("POST", "/groups", json={"name": "tier-managers", "permissions": ["manage_tiers"]})
    assert made.status_code == 201, made.text
    api.request("POST", "/groups/tier-managers/members", json={"user": "nogrant"}).raise_for_status()
    team = editable(api.request("GET", "/tiers/team", "nogrant").json())
    saved = api.request("PUT", "/tiers/team", "nogrant", json={**team, "display_name": "Team work"})
    assert saved.status_code == 200, saved.text
    assert "<b>Team work</b>" in api.request("GET", "/spawn-form?group=contributors", "nogrant").json()["html"]


def test_what_runs_on_a_tier_now(api: LiveAPI, tiers: None) -> None:
    for user, tier, server in [("contributor", "team", ""), ("reader", "small", ""), ("admin", "small", "gpu")]:
        started = api.request("POST", "/servers", json={"user": user, "tier": tier, "server_name": server})
        assert started.status_code == 201, started.text
    every = {t["name"]: t for t in api.request("GET", "/tiers").json()}
    assert (every["small"]["running_servers"], every["team"]["running_servers"]) == (2, 1)
    assert every["small"]["running_runs"] == 0
    small = api.request("GET", "/usage?running=true&tier=small").json()
    assert small["total"] == 2 and {(u["user"], u["server_name"]) for u in small["items"]} == {
        ("reader", ""),
        ("admin", "gpu"),
    }
    api.request("DELETE", f"/servers/{small['items'][0]['id']}").raise_for_status()
    assert api.request("GET", "/usage?running=true&tier=small").json()["total"] == 1
    assert api.request("GET", "/tiers/small").json()["running_servers"] == 1
    assert api.request("GET", "/usage?running=true&tier=nowhere").json()["total"] == 0
    assert api.request("GET", "/usage?tier=Not_A_Tier").json()["field"] == "tier"
    # Others see their own usage only, whichever tier they ask about.
    mine = api.request("GET", "/usage?running=true&tier=small", "reader").json()
    assert [u["user"] for u in mine["items"]] in ([], ["reader"])


def test_a_scenario_run_counts_on_its_tier_with_its_project(api: LiveAPI, plane: ControlPlane, tiers: None) -> None:
    definition = {
        "id": "nightly",
        "name": "Nightly",
        "tier": "small",
        "steps": [{"name": "Vars", "type": "set_variables", "values": {"v": "1"}}],
    }
    saved = api.request("PUT", "/projects/ALPHA/scenarios/nightly", json={"definition": definition, "notebooks": {}})
    assert saved.status_code == 200, saved.text
    run = api.request("POST", "/projects/ALPHA/scenarios/nightly/run", json={})
    assert run.status_code == 201, run.text
    plane.runs.start_run(run.json()["id"])  # what the run engine does when it claims the run
    assert api.request("GET", "/tiers/small").json()["running_runs"] == 1
    usage = api.request("GET", "/usage?running=true&tier=small").json()["items"]
    assert [(u["kind"], u["run_id"], u["project"], u["user"]) for u in usage] == [
        ("run", run.json()["id"], "ALPHA", "admin")
    ]
