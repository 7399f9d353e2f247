"""``connections``: definitions, access, per-user credentials and the ``test`` action."""

from himalia.api.base import APIHandler, PageQuery, operation
from himalia.wire.common import Page
from himalia.wire.data import (
    ConnectionCredentials,
    ConnectionTestResult,
    CreateConnection,
    DescribeConnection,
    SetCredentials,
    UpdateConnection,
)


class ConnectionsHandler(APIHandler):
    route = "/connections"

    @operation(
        "List the connections I may use or whose details I may read.",
        query=PageQuery,
        response=Page[DescribeConnection],
    )
    async def get(self, query: PageQuery) -> Page[DescribeConnection]:
        return await self.call(self.control_plane.connections.list_connections, self.caller, query.limit, query.offset)

    @operation(
        "Create a connection (create_connections).",
        body=CreateConnection,
        response=DescribeConnection,
        status=201,
    )
    async def post(self, spec: CreateConnection) -> DescribeConnection:
        return await self.call(self.control_plane.connections.create_connection, self.caller, spec)


class ConnectionHandler(APIHandler):
    route = "/connections/{name}"

    @operation("Describe a connection; details only to those who may read them.", response=DescribeConnection)
    async def get(self, name: str) -> DescribeConnection:
        return await self.call(self.control_plane.connections.get_connection, self.caller, name)

    @operation(
        "Change a connection (its owner or administrators).",
        body=UpdateConnection,
        response=DescribeConnection,
    )
    async def patch(self, name: str, spec: UpdateConnection) -> DescribeConnection:
        return await self.call(self.control_plane.connections.update_connection, self.caller, name, spec)

    @operation("Delete a connection (its owner or administrators).")
    async def delete(self, name: str) -> None:
        await self.call(self.control_plane.connections.delete_connection, self.caller, name)


class ConnectionTestHandler(APIHandler):
    route = "/connections/{name}/test"

    @operation("Connect for real with my credentials and report the outcome.", response=ConnectionTestResult)
    async def post(self, name: str) -> ConnectionTestResult:
        return await self.call(self.control_plane.connections.test_connection, self.caller, name)


class ConnectionCredentialsHandler(APIHandler):
    route = "/connections/{name}/credentials"

    @operation(
        "The parameters and my credentials, for a kernel to connect as me (needs use; audited).",
        response=ConnectionCredentials,
    )
    async def get(self, name: str) -> ConnectionCredentials:
        return await self.call(self.control_plane.connections.read_credentials, self.caller, name)

    @operation("Store my own secrets for a per_user connection.", body=SetCredentials, response=DescribeConnection)
    async def put(self, name: str, spec: SetCredentials) -> DescribeConnection:
        return await self.call(self.control_plane.connections.set_my_credentials, self.caller, name, spec)


handlers = [
    ConnectionsHandler,
    ConnectionHandler,
    ConnectionTestHandler,
    ConnectionCredentialsHandler,
]
