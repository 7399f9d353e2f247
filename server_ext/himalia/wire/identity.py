"""The API's vocabulary for people, groups, projects, tokens and the audit trail."""

import unicodedata
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from himalia.core.permissions import GlobalPermission, Profile, ProjectPermission
from himalia.wire.common import GroupName, Login, LongText, Preset, ProjectKey, Request, ShortText, Tag

# -- users and groups -------------------------------------------------------------------------


def is_mail_address(text: str) -> bool:
    """Whether ``text`` is one plain address (``name@example.org``) that a mail header can carry.

    Whitespace or a control character (a pasted newline), a list, a display name, quotes or a
    comment are not: the budget alerts put profile emails in one header, where a bad one would
    stop the mail to everyone.
    """
    if not text or any(c.isspace() or unicodedata.category(c).startswith("C") for c in text):
        return False
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, MessageError):
        return False
    return address.addr_spec == text and bool(address.username) and bool(address.domain)


def _mail_address(text: str) -> str:
    if text and not is_mail_address(text):
        raise ValueError("give one address such as name@example.org, without spaces or control characters")
    return text


#: A profile email: one plain address, or empty for none.
Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_mail_address)]


class CreateUser(Request):
    login: Login
    display_name: ShortText = ""
    email: Email = ""
    profile: Profile = Profile.ANALYST
    kind: Literal["user", "service"] = "user"
    groups: list[GroupName] = Field(default_factory=list, max_length=1000)


class UpdateUser(Request):
    display_name: ShortText | None = None
    email: Email | None = None
    profile: Profile | None = None
    active: bool | None = None


class DescribeUser(BaseModel):
    login: str
    display_name: str
    email: str
    profile: Profile
    kind: Literal["user", "service"]
    active: bool
    source: Literal["hub", "local"] = Field(
        description="'hub': kept in step with JupyterHub (and its identity provider); 'local': managed here."
    )
    groups: list[str]
    created_at: datetime
    last_seen_at: datetime | None = Field(
        description="Their last sign-in or token use, to the minute (UTC); runs acting as them do not count."
    )
    deactivated_by: str | None = Field(None, description="Who deactivated the account, while it is deactivated.")


class DescribeMe(DescribeUser):
    global_permissions: dict[str, bool]
    project_scope: str | None = None


class CreateGroup(Request):
    name: GroupName
    description: LongText = ""
    permissions: list[GlobalPermission] = Field(default_factory=list)


class UpdateGroup(Request):
    description: LongText | None = None
    permissions: list[GlobalPermission] | None = None


class DescribeGroup(BaseModel):
    name: str
    description: str
    source: Literal["hub", "local"] = Field(
        description="'hub': its members come from JupyterHub (the identity provider) and are changed there; "
        "its description and permissions are managed here."
    )
    permissions: list[GlobalPermission]
    member_count: int
    members: list[str] | None = Field(None, description="Only shown to administrators.")


class GroupMembership(Request):
    user: Login


# -- projects ---------------------------------------------------------------------------------


class CreateProject(Request):
    key: ProjectKey
    name: ShortText = Field(min_length=1)
    description: LongText = ""
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    owner: Login | None = Field(None, description="Defaults to the caller.")


class UpdateProject(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    description: LongText | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    status: Literal["active", "archived"] | None = None
    owner: Login | None = None


class DescribeProject(BaseModel):
    key: str
    name: str
    description: str
    owner: str
    tags: list[str]
    status: str
    created_at: datetime
    updated_at: datetime
    my_permissions: list[ProjectPermission]


class CurrentProject(Request):
    """The project I chose in the lab's sidebar, which my kernels use when a notebook names none."""

    project: ProjectKey | None = None


class SetGrant(Request):
    """Grant a preset or explicit permissions to exactly one group or one user."""

    group: GroupName | None = None
    user: Login | None = None
    preset: Preset | None = None
    permissions: list[ProjectPermission] | None = None

    @model_validator(mode="after")
    def _one_principal_one_spec(self) -> "SetGrant":
        if (self.group is None) == (self.user is None):
            raise ValueError("give exactly one of 'group' or 'user'")
        if (self.preset is None) == (self.permissions is None):
            raise ValueError("give exactly one of 'preset' or 'permissions'")
        if self.permissions is not None and not self.permissions:
            raise ValueError("'permissions' is empty: remove the grant instead")
        return self


class DescribeGrant(BaseModel):
    principal_type: Literal["group", "user"]
    principal: str
    permissions: list[ProjectPermission]
    preset: Preset | None


class DescribePreset(BaseModel):
    name: Preset
    description: str
    permissions: list[ProjectPermission]


# -- authorization matrix ---------------------------------------------------------------------


class MatrixRow(BaseModel):
    project: str
    name: str
    permissions: dict[str, bool]


class DescribeAuthMatrix(BaseModel):
    subject_type: Literal["user", "group"]
    subject: str
    global_permissions: dict[str, bool]
    projects: list[MatrixRow]


class AccessSource(BaseModel):
    """One reason a user holds a project permission."""

    kind: Literal["user", "owner", "group", "global"] = Field(
        description="A grant to the user, the owner's own grant, a grant to one of their groups, "
        "or a global permission (admin) held through a group."
    )
    group: str | None = Field(None, description="The group, for group grants and global permissions.")
    permission: str = Field(description="What is granted: it implies the permission asked about.")
    description: str


class ExplainAccess(BaseModel):
    """Why a user holds, or does not hold, one permission on one project."""

    user: str
    project: str
    permission: ProjectPermission
    granted: bool
    user_active: bool
    project_exists: bool
    owner: str | None = Field(None, description="The project's owner.")
    held: list[ProjectPermission] = Field(description="Everything the user holds on the project.")
    sources: list[AccessSource] = Field(description="Every grant that gives the permission.")
    explanation: str = Field(description="The answer in one sentence.")
    project_administrators: list[str] = Field(description="Who can grant it: the project's admins, by login.")
    administrators: list[str] = Field(description="Who can grant anything: the global administrators, by login.")
    grant_command: str | None = Field(None, description="The CLI command that would give the permission.")


# -- tokens -----------------------------------------------------------------------------------


class CreateToken(Request):
    user: Login | None = Field(None, description="Defaults to the caller; admins may name another.")
    name: ShortText = ""
    expires_in_days: int | None = Field(None, ge=1, le=3650)
    project: ProjectKey | None = Field(None, description="Restrict the token to one project.")


class DescribeToken(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    project: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class CreatedToken(DescribeToken):
    token: str = Field(description="Shown once; only its hash is stored.")


# -- deactivation -----------------------------------------------------------------------------


class RunAsScenario(BaseModel):
    """A scenario that runs as someone: it cannot start while they are deactivated."""

    project: str
    id: str
    name: str
    scheduled: bool = Field(description="Whether it has triggers (else it runs only when asked).")


class RunningServer(BaseModel):
    """A workspace server of theirs the platform sees running (its tier usage still open)."""

    name: str = Field(description="The server's name; '' is their default server.")
    tier: str
    started_at: datetime


class DescribeDeactivation(BaseModel):
    """What deactivating a person would do, for the administrator to read before confirming."""

    user: str
    active: bool
    tokens: list[DescribeToken] = Field(description="Revoked on deactivation (never their values).")
    token_count: int = Field(description="All of them, when more than the list holds.")
    scenarios: list[RunAsScenario] = Field(
        description="Active scenarios running as them: their fires are recorded as skipped, asking to run them refused."
    )
    scenario_count: int
    servers: list[RunningServer] = Field(
        description="Left running: a server is stopped in JupyterHub; it can no longer call this API as them."
    )
    refusal: str | None = Field(None, description="Why deactivating them would be refused, if it would.")


# -- audit ------------------------------------------------------------------------------------


class DescribeAuditEntry(BaseModel):
    seq: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    project_key: str | None
    client_address: str
    details: dict[str, Any]
    hash: str


class AuditVerification(BaseModel):
    entries: int
    ok: bool
    problems: list[str]
