"""``me``, ``users`` and ``groups``."""

from typing import Literal

from pydantic import Field

from himalia.api.base import APIHandler, PageQuery, operation
from himalia.wire.common import Page
from himalia.wire.identity import (
    CreateGroup,
    CreateUser,
    CurrentProject,
    DescribeDeactivation,
    DescribeGroup,
    DescribeMe,
    DescribeUser,
    GroupMembership,
    UpdateGroup,
    UpdateUser,
)


class MeHandler(APIHandler):
    route = "/me"

    @operation("Who am I: my account, groups and global permissions.", response=DescribeMe)
    async def get(self) -> DescribeMe:
        return await self.call(self.control_plane.users.me, self.caller)


class MyProjectHandler(APIHandler):
    route = "/me/project"

    @operation(
        "The project I chose in the lab's sidebar (my kernels' project when none is named).", response=CurrentProject
    )
    async def get(self) -> CurrentProject:
        return await self.call(self.control_plane.projects.current_project, self.caller)

    @operation(
        "Choose my current project (the lab's sidebar tells it), or none.", body=CurrentProject, response=CurrentProject
    )
    async def put(self, spec: CurrentProject) -> CurrentProject:
        return await self.call(self.control_plane.projects.choose_project, self.caller, spec)


class ListUsersQuery(PageQuery):
    kind: Literal["user", "service"] | None = Field(None, description="People or service accounts only.")
    active: bool | None = Field(None, description="Active (true) or deactivated (false) accounts only.")
    search: str | None = Field(
        None, max_length=100, description="Text found in the login, display name or email, in any case."
    )


class UsersHandler(APIHandler):
    route = "/users"

    @operation("List users and service accounts (administrators).", query=ListUsersQuery, response=Page[DescribeUser])
    async def get(self, query: ListUsersQuery) -> Page[DescribeUser]:
        return await self.call(
            self.control_plane.users.list_users,
            self.caller,
            query.limit,
            query.offset,
            kind=query.kind,
            active=query.active,
            search=query.search,
        )

    @operation(
        "Create a user or service account (administrators).",
        body=CreateUser,
        response=DescribeUser,
        status=201,
    )
    async def post(self, spec: CreateUser) -> DescribeUser:
        return await self.call(self.control_plane.users.create_user, self.caller, spec)


class UserHandler(APIHandler):
    route = "/users/{login}"

    @operation("Describe a user (oneself, or any user for administrators).", response=DescribeUser)
    async def get(self, login: str) -> DescribeUser:
        return await self.call(self.control_plane.users.get_user, self.caller, login)

    @operation(
        "Change a user's profile, contact or active flag (administrators); deactivating revokes their tokens "
        "and stops their scenarios from starting as them.",
        body=UpdateUser,
        response=DescribeUser,
    )
    async def patch(self, login: str, spec: UpdateUser) -> DescribeUser:
        return await self.call(self.control_plane.users.update_user, self.caller, login, spec)


class UserDeactivationHandler(APIHandler):
    route = "/users/{login}/deactivation"

    @operation(
        "What deactivating a user would do: tokens revoked, scenarios stopped, servers running (administrators).",
        response=DescribeDeactivation,
    )
    async def get(self, login: str) -> DescribeDeactivation:
        return await self.call(self.control_plane.users.deactivation, self.caller, login)


class GroupsHandler(APIHandler):
    route = "/groups"

    @operation("List groups; members are shown to administrators.", query=PageQuery, response=Page[DescribeGroup])
    async def get(self, query: PageQuery) -> Page[DescribeGroup]:
        return await self.call(self.control_plane.users.list_groups, self.caller, query.limit, query.offset)

    @operation(
        "Create a group with global permissions (administrators).",
        body=CreateGroup,
        response=DescribeGroup,
        status=201,
    )
    async def post(self, spec: CreateGroup) -> DescribeGroup:
        return await self.call(self.control_plane.users.create_group, self.caller, spec)


class GroupHandler(APIHandler):
    route = "/groups/{name}"

    @operation("Describe a group.", response=DescribeGroup)
    async def get(self, name: str) -> DescribeGroup:
        return await self.call(self.control_plane.users.get_group, self.caller, name)

    @operation(
        "Change a group's description or global permissions (administrators).",
        body=UpdateGroup,
        response=DescribeGroup,
    )
    async def patch(self, name: str, spec: UpdateGroup) -> DescribeGroup:
        return await self.call(self.control_plane.users.update_group, self.caller, name, spec)

    @operation("Delete a group (administrators).")
    async def delete(self, name: str) -> None:
        await self.call(self.control_plane.users.delete_group, self.caller, name)


class GroupMembersHandler(APIHandler):
    route = "/groups/{name}/members"

    @operation("Add a user to a group (administrators).", body=GroupMembership, response=DescribeGroup)
    async def post(self, name: str, spec: GroupMembership) -> DescribeGroup:
        return await self.call(self.control_plane.users.add_member, self.caller, name, spec.user)


class GroupMemberHandler(APIHandler):
    route = "/groups/{name}/members/{login}"

    @operation("Remove a user from a group (administrators).", response=DescribeGroup)
    async def delete(self, name: str, login: str) -> DescribeGroup:
        return await self.call(self.control_plane.users.remove_member, self.caller, name, login)


handlers = [
    MeHandler,
    MyProjectHandler,
    UsersHandler,
    UserHandler,
    UserDeactivationHandler,
    GroupsHandler,
    GroupHandler,
    GroupMembersHandler,
    GroupMemberHandler,
]
