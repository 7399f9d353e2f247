"""The access grid: everyone's (or every group's) effective permissions on every project, and why."""

from typing import Literal

from pydantic import BaseModel, Field

from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.wire.common import Preset


class GridSource(BaseModel):
    """One reason a subject holds permissions on a project."""

    kind: Literal["user", "owner", "group", "global"] = Field(
        description="A grant to the person, the project owner's own grant, a grant to a group "
        "(the subject's own or, for a person, one they belong to), or the global permission 'admin'."
    )
    group: str | None = Field(None, description="The group, for group grants and the global permission.")
    permissions: list[ProjectPermission] = Field(description="What this source gives, implications included.")
    preset: Preset | None = Field(None, description="The preset those permissions amount to, if any.")


class GridCell(BaseModel):
    """A subject on a project: each permission held comes from every source listing it."""

    project: str
    permissions: list[ProjectPermission] = Field(description="Effective: nothing for a deactivated person.")
    preset: Preset | None
    sources: list[GridSource]


class GridSubject(BaseModel):
    """A row: a person (or service account) or a group, with a cell per project where anything applies."""

    name: str = Field(description="The person's login or the group's name.")
    display_name: str = Field(description="A person's display name, a group's description.")
    kind: Literal["user", "service", "group"]
    active: bool = Field(description="Groups are always active; a deactivated person holds nothing.")
    groups: list[str] = Field(description="The groups a person belongs to (empty for a group).")
    global_permissions: list[GlobalPermission] = Field(description="Effective: 'admin' implies them all.")
    cells: list[GridCell] = Field(description="Projects without a cell grant the subject nothing.")


class GridProject(BaseModel):
    """A column."""

    key: str
    name: str
    owner: str
    status: str


class AccessGrid(BaseModel):
    """One page of subjects against every project (or the one asked for)."""

    subject_type: Literal["user", "group"]
    projects: list[GridProject]
    subjects: list[GridSubject]
    total: int = Field(description="Subjects matching the search, over all pages.")
    limit: int
    offset: int
