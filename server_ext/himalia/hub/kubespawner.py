"""In the hub on Kubernetes: KubeSpawner whose ``profile_list`` is the user's tiers, from the control plane.

The spawn form is Himalia's own (``TieredSpawner``: the same on every spawner); KubeSpawner
applies the chosen profile's overrides (requests, limits, GPUs, node selector, tolerations,
/dev/shm) to the pod. The control plane admits the chosen tier before the overrides are applied,
as ``TieredSpawner`` does for every spawner.
"""

from collections.abc import Callable
from typing import Any

from kubespawner import KubeSpawner
from traitlets import default

from himalia.compute.resources import profile_entry
from himalia.hub.spawners import TieredSpawner


class KubernetesTierSpawner(TieredSpawner, KubeSpawner):
    @default("profile_list")
    def _profiles_from_the_control_plane(self) -> Callable[[Any], Any]:
        async def profiles(spawner: "KubernetesTierSpawner") -> list[dict[str, Any]]:
            return [profile_entry(tier) for tier in await spawner.allowed_tiers()]

        return profiles

    async def load_user_options(self) -> None:
        tier = await self.admit()
        # Our form says 'tier' and 'profile' is the tier's label (show_tier); KubeSpawner picks its
        # profile by slug from 'profile', the tier's name.
        options: dict[str, Any] = dict(self.user_options or {})
        options.pop("tier", None)
        self.user_options = {**options, "profile": tier.name}
        try:
            await super().load_user_options()
        except BaseException:
            await self.release()
            raise
        finally:
            self.show_tier(tier)
        environment: dict[str, Any] = self.environment  # type: ignore[has-type]
        self.environment = {**environment, **self.himalia_env(tier.name)}
