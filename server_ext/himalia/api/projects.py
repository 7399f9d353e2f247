"""``projects``, their ``grants``, the presets and the ``auth-matrix`` (its grid and explanations)."""

from typing import Literal

from pydantic import Field

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.core.errors import NotFound
from himalia.core.permissions import ProjectPermission
from himalia.wire.access import AccessGrid
from himalia.wire.common import Page, ProjectKey
from himalia.wire.identity import (
    CreateProject,
    DescribeAuthMatrix,
    DescribeGrant,
    DescribePreset,
    DescribeProject,
    ExplainAccess,
    SetGrant,
    UpdateProject,
)


class ListProjectsQuery(PageQuery):
    search: str | None = Field(None, max_length=200, description="Substring of key, name or description.")
    tag: str | None = Field(None, max_length=50)


class ProjectsHandler(APIHandler):
    route = "/projects"

    @operation("List the projects I can see.", query=ListProjectsQuery, response=Page[DescribeProject])
    async def get(self, query: ListProjectsQuery) -> Page[DescribeProject]:
        return await self.call(
            self.control_plane.projects.list_projects,
            self.caller,
            query.limit,
            query.offset,
            query.search,
            query.tag,
        )

    @operation(
        "Create a project; its creator becomes owner with admin.",
        body=CreateProject,
        response=DescribeProject,
        status=201,
    )
    async def post(self, spec: CreateProject) -> DescribeProject:
        return await self.call(self.control_plane.projects.create_project, self.caller, spec)


class DeleteProjectQuery(Query):
    delete_bundles: bool = Field(False, description="Delete the project's stored bundle versions with it.")


class ProjectHandler(APIHandler):
    route = "/projects/{key}"

    @operation("Describe a project and my permissions on it.", response=DescribeProject)
    async def get(self, key: str) -> DescribeProject:
        return await self.call(self.control_plane.projects.get_project, self.caller, key)

    @operation("Change a project (project admins).", body=UpdateProject, response=DescribeProject)
    async def patch(self, key: str, spec: UpdateProject) -> DescribeProject:
        return await self.call(self.control_plane.projects.update_project, self.caller, key, spec)

    @operation(
        "Delete a project (project admins); refused while one of its scenarios is active or a run of it "
        "is not finished, and while bundle versions of it are stored unless delete_bundles.",
        query=DeleteProjectQuery,
    )
    async def delete(self, key: str, query: DeleteProjectQuery) -> None:
        await self.call(self.control_plane.projects.delete_project, self.caller, key, query.delete_bundles)


class GrantsHandler(APIHandler):
    route = "/projects/{key}/grants"

    @operation("Who holds what on the project.", response=list[DescribeGrant])
    async def get(self, key: str) -> list[DescribeGrant]:
        return await self.call(self.control_plane.projects.list_grants, self.caller, key)

    @operation(
        "Set what one group or user holds on the project, by preset or permissions (project admins).",
        body=SetGrant,
        response=list[DescribeGrant],
    )
    async def post(self, key: str, spec: SetGrant) -> list[DescribeGrant]:
        return await self.call(self.control_plane.projects.set_grant, self.caller, key, spec)


class GrantHandler(APIHandler):
    route = "/projects/{key}/grants/{principal_type}/{name}"

    @operation("Remove a group's or user's grant (project admins).", response=list[DescribeGrant])
    async def delete(self, key: str, principal_type: str, name: str) -> list[DescribeGrant]:
        if principal_type not in {"group", "user"}:
            raise NotFound("Grants belong to a 'group' or a 'user'.")
        return await self.call(self.control_plane.projects.remove_grant, self.caller, key, principal_type, name)


class PresetsHandler(APIHandler):
    route = "/project-presets"

    @operation(
        "The named presets (Domino's roles) and the permissions they expand to.",
        response=list[DescribePreset],
    )
    async def get(self) -> list[DescribePreset]:
        return self.control_plane.projects.presets()


class AuthMatrixQuery(Query):
    user: str | None = Field(None, max_length=100)
    group: str | None = Field(None, max_length=100)


class AuthMatrixHandler(APIHandler):
    route = "/auth-matrix"

    @operation(
        "Effective global and per-project permissions of a user or group (default: me; others: admins).",
        query=AuthMatrixQuery,
        response=DescribeAuthMatrix,
    )
    async def get(self, query: AuthMatrixQuery) -> DescribeAuthMatrix:
        return await self.call(self.control_plane.projects.auth_matrix, self.caller, query.user, query.group)


class GridQuery(PageQuery):
    subjects: Literal["users", "groups"] = Field("users", description="Rows: people or groups.")
    project: ProjectKey | None = Field(None, description="Only this project's column.")
    search: str | None = Field(None, max_length=200, description="Substring of a login, display name or group.")


class AuthMatrixGridHandler(APIHandler):
    route = "/auth-matrix/grid"

    @operation(
        "People or groups against projects: each one's effective permissions and where each comes from "
        "(administrators).",
        query=GridQuery,
        response=AccessGrid,
    )
    async def get(self, query: GridQuery) -> AccessGrid:
        return await self.call(
            self.control_plane.projects.access_grid,
            self.caller,
            query.subjects,
            query.project,
            query.search,
            query.limit,
            query.offset,
        )


class ExplainQuery(Query):
    user: str = Field(max_length=100)
    project: str = Field(max_length=40)
    permission: ProjectPermission


class AuthMatrixExplainHandler(APIHandler):
    route = "/auth-matrix/explain"

    @operation(
        "Why a user holds a permission on a project, or what is missing and who can grant it "
        "(administrators about anyone, the project's admins about those holding a grant on it, "
        "anyone about themselves; only administrators are told who the administrators are).",
        query=ExplainQuery,
        response=ExplainAccess,
    )
    async def get(self, query: ExplainQuery) -> ExplainAccess:
        return await self.call(
            self.control_plane.projects.explain_access, self.caller, query.user, query.project, query.permission
        )


handlers = [
    ProjectsHandler,
    ProjectHandler,
    GrantsHandler,
    GrantHandler,
    PresetsHandler,
    AuthMatrixHandler,
    AuthMatrixGridHandler,
    AuthMatrixExplainHandler,
]
