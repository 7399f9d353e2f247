"""A hardware tier in the two dialects Kubernetes is driven in: pod specs and KubeSpawner traits.

A tier is stated once, in the control plane (requests, limits, GPUs, node pool, ``/dev/shm``).
The Kubernetes executor writes it into its Jobs' pod specs (the API's camelCase fields); the hub
writes it into KubeSpawner's ``profile_list``, whose overrides are KubeSpawner traits. Both are
derived here so that a workspace and a scenario run on the same tier get the same pod.
"""

from collections.abc import Callable
from typing import Any

from himalia.wire.compute import DescribeTier, TierSpec

SHM_VOLUME = "himalia-shm"
SHM_PATH = "/dev/shm"
_BINARY_UNITS = (("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def tier_name(tier: TierSpec, name: str | None = None) -> str:
    """The tier's name: given, or carried by a ``DescribeTier``."""
    if name is not None:
        return name
    if isinstance(tier, DescribeTier):
        return tier.name
    raise ValueError("a TierSpec carries no name: pass name=")


def cpu_quantity(cores: float) -> str:
    """Whole cores as '2', fractions in millicores ('500m'), as kubectl shows them."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{round(cores * 1000)}m"


def format_bytes(size: int) -> str:
    """A byte count as people write it in a tier ('2Gi'), exact or in bytes."""
    for suffix, unit in _BINARY_UNITS:
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def container_resources(tier: TierSpec) -> dict[str, dict[str, str]]:
    """The container's ``resources``: memory in bytes, GPUs in both requests and limits, since
    Kubernetes does not overcommit extended resources and requires the two to be equal."""
    requests = {"cpu": cpu_quantity(tier.cpu_request), "memory": str(tier.memory_request)}
    limits: dict[str, str] = {}
    if tier.cpu_limit is not None:
        limits["cpu"] = cpu_quantity(tier.cpu_limit)
    if tier.memory_limit is not None:
        limits["memory"] = str(tier.memory_limit)
    if tier.gpus:
        requests[tier.gpu_resource] = limits[tier.gpu_resource] = str(tier.gpus)
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def tolerations(tier: TierSpec) -> list[dict[str, str]]:
    return [toleration.model_dump(exclude_none=True) for toleration in tier.tolerations]


def scheduling(tier: TierSpec) -> dict[str, Any]:
    """The pod spec's ``nodeSelector`` and ``tolerations``, when the tier sets them."""
    placement: dict[str, Any] = {}
    if tier.node_selector:
        placement["nodeSelector"] = dict(tier.node_selector)
    if tier.tolerations:
        placement["tolerations"] = tolerations(tier)
    return placement


def shm_volume(tier: TierSpec) -> dict[str, Any] | None:
    """A memory-backed ``/dev/shm`` of the tier's size (the container runtime's default is 64 MiB,
    too small for PyTorch's data loaders). Its pages count against the container's memory limit."""
    if tier.shm_size is None:
        return None
    return {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": str(tier.shm_size)}}


def shm_volume_mount(tier: TierSpec) -> dict[str, str] | None:
    return None if tier.shm_size is None else {"name": SHM_VOLUME, "mountPath": SHM_PATH}


def _appending(trait: str, items: list[dict[str, Any]]) -> Callable[[Any], Any]:
    """An override that adds ``items`` to what the spawner already has in ``trait``.

    KubeSpawner merges dict overrides but replaces lists, and Zero to JupyterHub configures
    ``volumes`` (the home directory) and ``tolerations`` (its dedicated user nodes) as lists:
    a plain list here would drop them. KubeSpawner calls a callable override with the spawner.
    """

    def extend(spawner: Any) -> Any:
        current = getattr(spawner, trait)
        if isinstance(current, dict):  # KubeSpawner also accepts {key: item}, sorted by key
            return {**current, **{f"himalia-{trait}-{i}": item for i, item in enumerate(items)}}
        return [*current, *items]

    return extend


def kubespawner_overrides(tier: TierSpec, name: str | None = None) -> dict[str, Any]:
    """The ``kubespawner_override`` of the tier's ``profile_list`` entry (KubeSpawner trait names)."""
    overrides: dict[str, Any] = {
        "cpu_guarantee": tier.cpu_request,
        "cpu_limit": tier.cpu_limit,
        "mem_guarantee": tier.memory_request,
        "mem_limit": tier.memory_limit,
        "environment": {"HIMALIA_TIER": tier_name(tier, name)},
    }
    if tier.gpus:
        overrides["extra_resource_guarantees"] = {tier.gpu_resource: str(tier.gpus)}
        overrides["extra_resource_limits"] = {tier.gpu_resource: str(tier.gpus)}
    if tier.node_selector:
        overrides["node_selector"] = dict(tier.node_selector)
    if tier.tolerations:
        overrides["tolerations"] = _appending("tolerations", tolerations(tier))
    volume, mount = shm_volume(tier), shm_volume_mount(tier)
    if volume is not None and mount is not None:
        overrides["volumes"] = _appending("volumes", [volume])
        overrides["volume_mounts"] = _appending("volume_mounts", [mount])
    return overrides


def profile_entry(tier: TierSpec, name: str | None = None) -> dict[str, Any]:
    """The tier as an entry of KubeSpawner's ``profile_list``: the overrides of the tier chosen in
    the spawn form (``himalia.compute.spawn_form`` words the form itself)."""
    slug = tier_name(tier, name)
    return {
        "display_name": tier.display_name or slug,
        "slug": slug,
        "description": tier.description,
        "default": tier.default,
        "kubespawner_override": kubespawner_overrides(tier, slug),
    }
