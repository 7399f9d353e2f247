"""What the tiered spawners tell the hub's pages: the chosen tier's label, the templates that show it."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from himalia.compute.tiers import load_tiers_file
from himalia.hub.kubespawner import KubernetesTierSpawner
from himalia.hub.setup import TEMPLATES, configure_pages
from himalia.hub.spawners import LocalTierSpawner
from himalia.wire.compute import DescribeTier

from ..execution.test_kubernetes import MockUser, kubeconfig  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
SEED = load_tiers_file(REPO / "hub_config" / "tiers.yaml")


def seeded(name: str) -> DescribeTier:
    return DescribeTier(name=name, updated_at=datetime.now(UTC), **SEED[name].model_dump())


def test_the_chosen_tier_is_named_for_the_hubs_pages_before_the_server_starts() -> None:
    spawner = LocalTierSpawner()
    assert spawner.options_from_form({"tier": ["medium"]}) == {"tier": "medium"}  # no form shown: the name only
    spawner.offered_tiers = {name: seeded(name) for name in ("small", "medium")}
    options = spawner.options_from_form({"tier": ["medium"]})
    assert options == {"tier": "medium", "profile": "Medium (2 cores, 8 Gi memory)"}
    # API clients written for KubeSpawner's form say 'profile'.
    assert spawner.options_from_form({"profile": ["small"]})["profile"] == "Small (1 core, 2 Gi memory)"
    spawner.user_options = options
    assert spawner.chosen_tier() == "medium"  # the tier's name, never its label


def test_show_tier_keeps_the_other_options_and_names_the_admitted_tier() -> None:
    spawner = LocalTierSpawner()
    spawner.user_options = {"tier": None, "note": "kept"}
    spawner.show_tier(seeded("gpu"))
    assert spawner.user_options == {"tier": "gpu", "profile": "GPU (8 cores, 64 Gi memory, 1 GPU)", "note": "kept"}


def test_the_hub_finds_our_templates_first_and_they_extend_its_own() -> None:
    c = Config()
    c.JupyterHub.template_paths = ["/srv/site-templates"]
    configure_pages(c)
    assert c.JupyterHub.template_paths == [str(TEMPLATES), "/srv/site-templates"]
    pending = (TEMPLATES / "spawn_pending.html").read_text()
    assert '{% extends "templates/spawn_pending.html" %}' in pending


@pytest.mark.usefixtures("kubeconfig")
async def test_kubernetes_servers_get_the_same_form() -> None:
    """KubeSpawner's own profile form would word the tiers its way; Himalia's is used instead."""
    spawner = KubernetesTierSpawner(_mock=True, hub=Hub(), user=MockUser(name="alice"))
    local = LocalTierSpawner()
    assert (
        spawner.options_form.__qualname__ == local.options_form.__qualname__ == "TieredSpawner._tier_form.<locals>.form"
    )
    spawner.offered_tiers = {"gpu": seeded("gpu")}
    assert spawner.options_from_form({"tier": ["gpu"]})["profile"] == "GPU (8 cores, 64 Gi memory, 1 GPU)"
