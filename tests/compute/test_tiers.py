"""Hardware tiers: who may choose which, the limits the hub is held to, usage records."""

from pathlib import Path

import pytest
import requests

from himalia.compute.tiers import TiersFileError, load_tiers_file
from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller

from ..conftest import LiveAPI

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiers(plane: ControlPlane) -> None:
    operator = Caller.operator("test-setup", client_address="test")
    plane.tiers.seed(
        operator,
        load_tiers_file(REPO / "hub_config" / "tiers.yaml")
        | {
            "team": load_tiers_file(REPO / "hub_config" / "tiers.yaml")["medium"].model_copy(
                update={"allowed_groups": ["contributors"], "default": False, "max_servers": 2}
            )
        },
    )


def names(response: requests.Response) -> list[str]:
    return [tier["name"] for tier in response.json()]


def test_the_seed_file_loads_and_seeds_only_an_empty_store(plane: ControlPlane, tiers: None) -> None:
    operator = Caller.operator("test-setup", client_address="test")
    assert plane.tiers.seed(operator, load_tiers_file(REPO / "hub_config" / "tiers.yaml")) == []
    gpu = plane.tiers.get_tier(operator, "gpu")
    assert gpu.gpus == 1 and gpu.memory_limit == 64 * 2**30 and gpu.node_selector == {"himalia.io/node-pool": "gpu"}
    assert gpu.tolerations[0].operator == "Exists" and gpu.allowed_groups == ["admins"]


def test_a_bad_tiers_file_names_the_line_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "tiers.yaml"
    bad.write_text("tiers:\n  small:\n    cpu_request: 1\n    memory_limit: lots\n")
    with pytest.raises(TiersFileError) as raised:
        load_tiers_file(bad)
    assert raised.value.message.startswith(f"{bad}:4: tiers.small.memory_limit: ")


def test_people_see_only_the_tiers_their_groups_allow(api: LiveAPI, tiers: None) -> None:
    assert names(api.request("GET", "/tiers", "reader")) == ["small"]
    assert names(api.request("GET", "/tiers", "contributor")) == ["small", "team"]
    assert api.request("GET", "/tiers/team", "reader").status_code == 404
    assert api.request("GET", "/tiers/team", "contributor").json()["allowed_groups"] == ["contributors"]
    # The admin manages tiers: every tier, or those of one user.
    assert set(names(api.request("GET", "/tiers", "admin"))) == {"small", "medium", "large", "gpu", "team"}
    assert names(api.request("GET", "/tiers?user=contributor", "admin")) == ["small", "team"]
    refused = api.request("GET", "/tiers?user=contributor", "reader")
    assert refused.status_code == 403 and "manage_tiers" in refused.json()["message"]


def test_only_tier_managers_change_tiers_and_bad_values_name_their_field(api: LiveAPI, tiers: None) -> None:
    small = {"cpu_request": 1, "memory_request": "1Gi", "default": True}
    assert api.request("PUT", "/tiers/small", "contributor", json=small).status_code == 403
    bad = api.request("PUT", "/tiers/small", "admin", json={**small, "memory_limit": "lots"})
    assert bad.status_code == 400 and bad.json()["field"] == "memory_limit"
    below = api.request("PUT", "/tiers/small", "admin", json={**small, "cpu_limit": 0.5})
    assert below.status_code == 400 and "cpu_limit is below cpu_request" in below.json()["message"]
    unknown = api.request("PUT", "/tiers/small", "admin", json={**small, "allowed_groups": ["nobody-here"]})
    assert unknown.status_code == 400 and unknown.json()["field"] == "allowed_groups"
    made = api.request("PUT", "/tiers/tiny", "admin", json={**small, "display_name": "Tiny"})
    assert made.status_code == 200 and made.json()["memory_request"] == 2**30 and made.json()["default"]
    every = {t["name"]: t for t in api.request("GET", "/tiers", "admin").json()}
    assert [name for name, t in every.items() if t["default"]] == ["tiny"]
    audit = api.request("GET", "/audit?action=tier.create", "admin").json()["items"]
    assert any(entry["object_id"] == "tiny" for entry in audit)


def start(api: LiveAPI, user: str, tier: str | None, server: str = "", role: str = "admin") -> requests.Response:
    return api.request("POST", "/servers", role, json={"user": user, "tier": tier, "server_name": server})


def test_a_forbidden_tier_is_refused_with_the_groups_it_is_for(api: LiveAPI, tiers: None) -> None:
    refused = start(api, "reader", "team")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "The tier 'team' is not available to reader: it is reserved for the groups contributors."
    )
    # Only the hub (a tier manager) admits servers: a user cannot open usage records for itself.
    assert start(api, "contributor", "team", role="contributor").status_code == 403


def test_limits_per_user_and_for_everyone_are_named_and_stops_free_them(api: LiveAPI, tiers: None) -> None:
    first = start(api, "contributor", "team", "a").json()
    assert first["tier"] == "team" and first["ended_at"] is None and first["cost_per_hour"] == 0.2
    again = start(api, "contributor", "team", "b")
    assert again.status_code == 409
    assert "max_servers_per_user = 1" in again.json()["message"]
    # Restarting the same server is not a second server.
    assert start(api, "contributor", "team", "a").status_code == 201
    assert start(api, "projadmin", "small", "").status_code == 201
    api.request("POST", "/groups/contributors/members", "admin", json={"user": "projadmin"}).raise_for_status()
    assert start(api, "projadmin", "team", "x").status_code == 201
    api.request("POST", "/groups/contributors/members", "admin", json={"user": "admin"}).raise_for_status()
    full = start(api, "admin", "team", "y")
    assert full.status_code == 409 and "max_servers = 2" in full.json()["message"]
    running = api.request("GET", "/usage?running=true", "admin").json()
    assert running["total"] == 3
    stopped = api.request("DELETE", f"/servers/{running['items'][0]['id']}", "admin").json()
    assert stopped["ended_at"] is not None
    assert start(api, "admin", "team", "y").status_code == 201


def test_the_default_tier_is_used_when_none_is_chosen(api: LiveAPI, tiers: None) -> None:
    assert start(api, "reader", None).json()["tier"] == "small"


def test_usage_is_private_to_its_user_unless_one_manages_tiers(api: LiveAPI, tiers: None) -> None:
    start(api, "reader", "small")
    start(api, "contributor", "small")
    mine = api.request("GET", "/usage", "reader").json()
    assert [u["user"] for u in mine["items"]] == ["reader"]
    assert api.request("GET", "/usage?user=contributor", "reader").status_code == 403
    assert api.request("GET", "/usage", "admin").json()["total"] == 2


def test_archived_tiers_are_offered_to_nobody(api: LiveAPI, tiers: None) -> None:
    small = api.request("GET", "/tiers/small", "admin").json()
    spec = {
        k: v for k, v in small.items() if k not in {"name", "updated_at", "running_servers", "running_runs", "currency"}
    }
    api.request("PUT", "/tiers/small", "admin", json={**spec, "archived": True, "default": False})
    assert names(api.request("GET", "/tiers", "reader")) == []
    refused = start(api, "reader", "small")
    assert refused.status_code == 403 and "archived" in refused.json()["message"]
