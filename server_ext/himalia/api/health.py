"""``health``: the platform's own state for administrators, and the probes Kubernetes asks unauthenticated.

The probes answer without a token and say nothing but ``ok`` or not: ``live`` that the process
serves requests (it touches no store, so a store outage never restarts it), ``ready`` that the
store answers at this Himalia's revision. Both run off the API's worker pool, in the health
service's own bounded threads, so that a stuck store cannot hold them.
"""

import asyncio
from typing import Literal

from pydantic import BaseModel

from himalia.api.base import APIHandler, operation
from himalia.core.errors import StoreUnavailable
from himalia.core.permissions import GlobalPermission
from himalia.wire.operations import Health


class ProbeReply(BaseModel):
    status: Literal["ok"]


class HealthHandler(APIHandler):
    route = "/health"

    @operation("Every component's health, with its figures (administrators).", response=Health)
    async def get(self) -> Health:
        self.caller.require(GlobalPermission.ADMIN)
        return await asyncio.to_thread(self.control_plane.health.check)


class LivenessHandler(APIHandler):
    route = "/health/live"

    @operation(
        "Liveness probe: the process answers (no authentication, no store access).", response=ProbeReply, anonymous=True
    )
    async def get(self) -> ProbeReply:
        return ProbeReply(status="ok")


class ReadinessHandler(APIHandler):
    route = "/health/ready"

    @operation(
        "Readiness probe: 200 when the store answers at this Himalia's revision, else 503 (no authentication).",
        response=ProbeReply,
        anonymous=True,
    )
    async def get(self) -> ProbeReply:
        if not await asyncio.to_thread(self.control_plane.health.ready):
            raise StoreUnavailable("Not ready: the store does not answer at this Himalia's revision.")
        return ProbeReply(status="ok")


handlers: list[type[APIHandler]] = [HealthHandler, LivenessHandler, ReadinessHandler]
