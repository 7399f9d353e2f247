"""Retention: pinning a run, a project's space in the store, and a purge run now."""

from himalia.api.base import APIHandler, operation
from himalia.api.scenarios import run_number
from himalia.wire.scenarios import DescribeRun, PinRun, ProjectStorage, PurgeReport, PurgeRequest


class PinRunHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/pin"

    @operation(
        "Keep a run's artifacts and log whatever retention says, or let retention judge it again "
        "(run_scenarios or write_content).",
        body=PinRun,
        response=DescribeRun,
    )
    async def put(self, key: str, scenario: str, run: str, spec: PinRun) -> DescribeRun:
        plane, number = self.control_plane, run_number(run)
        await self.call(plane.retention.pin, self.caller, key, scenario, number, spec.pinned)
        return await self.call(plane.runs.get_run, self.caller, key, scenario, number)


class ProjectStorageHandler(APIHandler):
    route = "/projects/{key}/storage"

    @operation(
        "The space the project's runs and snapshots take in the store (read_dashboards).", response=ProjectStorage
    )
    async def get(self, key: str) -> ProjectStorage:
        return await self.call(self.control_plane.retention.storage, self.caller, key)


class PurgeHandler(APIHandler):
    route = "/retention/purge"

    @operation(
        "Purge now the run artifacts and logs retention no longer keeps, and unreferenced snapshots "
        "(administrators; dry_run says what, purging nothing).",
        body=PurgeRequest,
        response=PurgeReport,
    )
    async def post(self, spec: PurgeRequest) -> PurgeReport:
        return await self.call(self.control_plane.retention.purge, self.caller, dry_run=spec.dry_run)


handlers = [PinRunHandler, ProjectStorageHandler, PurgeHandler]
