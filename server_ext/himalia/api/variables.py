"""Instance ``variables`` and ``projects/{key}/variables``."""

from himalia.api.base import APIHandler, Query, operation
from himalia.wire.common import Variables


class InstanceVariablesHandler(APIHandler):
    route = "/variables"

    @operation("Instance variables (readable by every signed-in user).", response=Variables)
    async def get(self) -> Variables:
        return await self.call(self.control_plane.variables.get_instance, self.caller)

    @operation("Replace the instance variables (administrators).", body=Variables, response=Variables)
    async def put(self, spec: Variables) -> Variables:
        return await self.call(self.control_plane.variables.set_instance, self.caller, spec)


class ProjectVariablesQuery(Query):
    resolved: bool = False


class ProjectVariablesHandler(APIHandler):
    route = "/projects/{key}/variables"

    @operation(
        "Project variables; with resolved=true, merged over the instance's and expanded.",
        query=ProjectVariablesQuery,
        response=Variables,
    )
    async def get(self, key: str, query: ProjectVariablesQuery) -> Variables:
        return await self.call(self.control_plane.variables.get_project, self.caller, key, query.resolved)

    @operation("Replace the project variables (write_content).", body=Variables, response=Variables)
    async def put(self, key: str, spec: Variables) -> Variables:
        return await self.call(self.control_plane.variables.set_project, self.caller, key, spec)


handlers = [InstanceVariablesHandler, ProjectVariablesHandler]
