"""``tiers``, the ``servers`` the hub starts on them, and ``usage``."""

from pydantic import Field

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.core.errors import NotFound
from himalia.wire.common import GroupName, Page, TierName
from himalia.wire.compute import DescribeTier, DescribeUsage, SpawnFormPreview, StartServer, TierSpec


class ListTiersQuery(Query):
    user: str | None = Field(None, max_length=100, description="The tiers this user may choose (tier managers).")
    archived: bool = Field(False, description="Include archived tiers (tier managers listing all tiers).")


class UsageQuery(PageQuery):
    user: str | None = Field(None, max_length=100, description="One user's usage (tier managers; others: their own).")
    running: bool = Field(False, description="Only servers and runs still running.")
    tier: TierName | None = Field(None, description="Only this tier's servers and runs.")


class SpawnFormQuery(Query):
    group: GroupName | None = Field(None, description="Whose members' form to show; none: a person in no group.")


class TiersHandler(APIHandler):
    route = "/tiers"

    @operation(
        "The tiers I may choose (tier managers: every tier, or those of ?user=).",
        query=ListTiersQuery,
        response=list[DescribeTier],
    )
    async def get(self, query: ListTiersQuery) -> list[DescribeTier]:
        tiers = self.control_plane.tiers
        return await self.call(tiers.list_tiers, self.caller, query.user, query.archived)


class TierHandler(APIHandler):
    route = "/tiers/{name}"

    @operation("Describe a tier I may choose (tier managers: any tier).", response=DescribeTier)
    async def get(self, name: str) -> DescribeTier:
        return await self.call(self.control_plane.tiers.get_tier, self.caller, name)

    @operation(
        "Create or replace a tier (manage_tiers); the next spawn form shows it.", body=TierSpec, response=DescribeTier
    )
    async def put(self, name: str, spec: TierSpec) -> DescribeTier:
        return await self.call(self.control_plane.tiers.put_tier, self.caller, name, spec)


class ServersHandler(APIHandler):
    route = "/servers"

    @operation(
        "Admit a server on a tier within its limits and open its usage record (the hub, with manage_tiers).",
        body=StartServer,
        response=DescribeUsage,
        status=201,
    )
    async def post(self, spec: StartServer) -> DescribeUsage:
        return await self.call(self.control_plane.tiers.start_server, self.caller, spec)


class ServerHandler(APIHandler):
    route = "/servers/{usage_id}"

    @operation("Record that a server stopped (the hub, with manage_tiers).", response=DescribeUsage)
    async def delete(self, usage_id: str) -> DescribeUsage:
        if not (usage_id.isascii() and usage_id.isdigit()) or len(usage_id) > 18:
            raise NotFound(f"There is no server usage record {usage_id}.")
        return await self.call(self.control_plane.tiers.stop_server, self.caller, int(usage_id))


class UsageHandler(APIHandler):
    route = "/usage"

    @operation(
        "Who used which tier from when to when, newest first (mine; tier managers: everyone's).",
        query=UsageQuery,
        response=Page[DescribeUsage],
    )
    async def get(self, query: UsageQuery) -> Page[DescribeUsage]:
        tiers = self.control_plane.tiers
        return await self.call(
            tiers.list_usage, self.caller, query.limit, query.offset, query.user, query.running, query.tier
        )


class SpawnFormHandler(APIHandler):
    route = "/spawn-form"

    @operation(
        "The spawn form as a member of ?group= alone would see it, rendered as the hub does (manage_tiers).",
        query=SpawnFormQuery,
        response=SpawnFormPreview,
    )
    async def get(self, query: SpawnFormQuery) -> SpawnFormPreview:
        return await self.call(self.control_plane.tiers.spawn_form_preview, self.caller, query.group)


handlers = [TiersHandler, TierHandler, ServersHandler, ServerHandler, UsageHandler, SpawnFormHandler]
