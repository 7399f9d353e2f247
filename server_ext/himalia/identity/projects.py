"""Projects, their per-project grants, and the authorization matrix.

A user's permissions on a project are the union of the grants to the user and to the user's
groups, closed under implication; global admins hold every permission everywhere. A caller
with no permission on a project gets exactly what they would get if it did not exist.
"""

import json
import logging
import threading
from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, String, cast, delete, false, func, or_, select
from sqlalchemy.orm import Session, joinedload

from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound, ask_for
from himalia.core.permissions import (
    PRESET_DESCRIPTIONS,
    PROJECT_PRESETS,
    GlobalPermission,
    ProjectPermission,
    as_flags,
    expand_project_permissions,
    in_order,
    preset_of,
)
from himalia.identity.access_grid import Subjects, read_access_grid
from himalia.identity.caller import Caller, load_caller
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import find_group, find_user
from himalia.store.db import Database
from himalia.store.events import Events, ScenarioChanged
from himalia.store.orm import (
    Bundle,
    BundleActivation,
    Group,
    GroupMember,
    GroupPermission,
    Project,
    ProjectGrant,
    Scenario,
    ScenarioRun,
    User,
)
from himalia.wire.access import AccessGrid
from himalia.wire.common import Page, from_row
from himalia.wire.identity import (
    AccessSource,
    CreateProject,
    CurrentProject,
    DescribeAuthMatrix,
    DescribeGrant,
    DescribePreset,
    DescribeProject,
    ExplainAccess,
    MatrixRow,
    SetGrant,
    UpdateProject,
)
from himalia.wire.scenarios import RunState

ALL_PROJECT_PERMISSIONS = frozenset(ProjectPermission)


def _grant_filter(caller: Caller) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if caller.user_id is not None:
        conditions.append(ProjectGrant.user_id == caller.user_id)
    if caller.group_ids:
        conditions.append(ProjectGrant.group_id.in_(sorted(caller.group_ids)))
    return or_(false(), *conditions)


def _sorted(permissions: frozenset[ProjectPermission]) -> list[ProjectPermission]:
    return list(in_order(permissions))


#: What a listed project's description is read from (``DescribeProject``'s fields and the row's id).
_LISTED_COLUMNS = (
    Project.id,
    Project.key,
    Project.name,
    Project.description,
    User.login.label("owner"),
    Project.tags,
    Project.status,
    Project.created_at,
    Project.updated_at,
)


def project_permissions(session: Session, caller: Caller, project: Project) -> frozenset[ProjectPermission]:
    if caller.project_scope is not None and caller.project_scope != project.id:
        return frozenset()
    if caller.sees_every_project:
        return ALL_PROJECT_PERMISSIONS
    granted = session.scalars(
        select(ProjectGrant.permission).where(ProjectGrant.project_id == project.id, _grant_filter(caller))
    ).all()
    return expand_project_permissions(granted)


def require_project(
    session: Session, caller: Caller, key: str, permission: ProjectPermission | None = None
) -> tuple[Project, frozenset[ProjectPermission]]:
    """The project and the caller's permissions on it; 404 if invisible, 403 if ``permission`` lacks."""
    project = session.scalar(select(Project).options(joinedload(Project.owner)).where(Project.key == key))
    permissions = project_permissions(session, caller, project) if project else frozenset()
    if project is None or not permissions:
        raise NotFound(f"There is no project '{key}'.")
    if permission is not None and permission not in permissions:
        raise project_refusal(session, caller, project, permissions, f"'{permission}'")
    return project, permissions


def projects_granting(session: Session, caller: Caller, wanted: frozenset[ProjectPermission]) -> dict[int, str]:
    """The projects (row -> key) on which the caller holds any of ``wanted``: one or two statements."""
    projects = select(Project.id, Project.key)
    if caller.project_scope is not None:
        projects = projects.where(Project.id == caller.project_scope)
    if caller.sees_every_project:
        return {row: key for row, key in session.execute(projects)}
    granted: dict[int, set[str]] = defaultdict(set)
    for project_id, permission in session.execute(
        select(ProjectGrant.project_id, ProjectGrant.permission).where(_grant_filter(caller))
    ):
        granted[project_id].add(permission)
    keep = [row for row, held in granted.items() if expand_project_permissions(held) & wanted]
    if not keep:
        return {}
    return {row: key for row, key in session.execute(projects.where(Project.id.in_(keep)))}


def project_administrators(session: Session, project: Project) -> list[str]:
    """The active people holding ``admin`` on the project, themselves or through a group, by login."""
    admin_grant = (ProjectGrant.project_id == project.id) & (ProjectGrant.permission == ProjectPermission.ADMIN)
    direct = select(User.login).join(ProjectGrant, ProjectGrant.user_id == User.id).where(admin_grant, User.active)
    through_groups = (
        select(User.login)
        .join(GroupMember, GroupMember.user_id == User.id)
        .join(ProjectGrant, ProjectGrant.group_id == GroupMember.group_id)
        .where(admin_grant, User.active)
    )
    return sorted(set(session.scalars(direct.union(through_groups)).all()))


def _what_is_held(permissions: frozenset[ProjectPermission]) -> str:
    if ProjectPermission.READ_CONTENT in permissions:
        return "may read"
    if ProjectPermission.RUN_SCENARIOS in permissions:
        return "may run the scenarios of"
    return "may see the dashboards of"


def project_refusal(
    session: Session, caller: Caller, project: Project, permissions: frozenset[ProjectPermission], missing: str
) -> Forbidden:
    """The one refusal on a project the caller sees: what they hold, what lacks and who grants it.

    The caller sees the project, hence its grants: naming its administrators reveals nothing new.
    """
    administrators = project_administrators(session, project)
    return Forbidden(
        f"{caller.login} {_what_is_held(permissions)} {project.key} but does not hold {missing} on it: "
        f"{ask_for('it', administrators, f'{project.key} administrators')}."
    )


def require_run_or_write(
    session: Session, caller: Caller, project: Project, permissions: frozenset[ProjectPermission]
) -> None:
    """Computing metrics and running checks or scenarios: contributors and launchers, not readers."""
    if ProjectPermission.WRITE_CONTENT not in permissions and ProjectPermission.RUN_SCENARIOS not in permissions:
        raise project_refusal(session, caller, project, permissions, "'write_content' or 'run_scenarios'")


def describe_project(project: Project, permissions: frozenset[ProjectPermission]) -> DescribeProject:
    return from_row(DescribeProject, project, owner=project.owner.login, my_permissions=_sorted(permissions))


class ProjectService(Service):
    """Projects and grants; also each person's current project, as their lab's sidebar last chose it.

    The current project is kept in memory, per user (not per browser tab: the last choice wins): it
    is a signal from the lab to the same person's kernels, which the lab sends again whenever it
    loads, so a restarted control plane learns it back without a schema of its own.

    Archiving a project deactivates its scenarios: ``events`` tells the scheduler, which would
    otherwise keep polling for them and watching their deadlines (a project is deleted only once
    none of its scenarios is active, hence scheduled).
    """

    def __init__(self, db: Database, audit: AuditRecorder, log: logging.Logger, events: Events) -> None:
        super().__init__(db, audit, log)
        self.events = events
        self._current: dict[int, int] = {}
        self._current_lock = threading.Lock()

    def current_project(self, caller: Caller) -> CurrentProject:
        """The project the caller last chose in the sidebar, if they still see it; a token's own scope first."""
        with self.db.read() as session:
            if caller.project_scope is not None:
                scoped = session.get(Project, caller.project_scope)
                return CurrentProject(project=scoped.key if scoped else None)
            with self._current_lock:
                chosen = self._current.get(caller.user_id) if caller.user_id is not None else None
            project = session.get(Project, chosen) if chosen is not None else None
            if project is None or not project_permissions(session, caller, project):
                return CurrentProject(project=None)
            return CurrentProject(project=project.key)

    def choose_project(self, caller: Caller, spec: CurrentProject) -> CurrentProject:
        """Remember the sidebar's choice (``None``: no project); a project the caller cannot see is a 404."""
        if caller.user_id is None:
            raise InvalidInput("The operator has no sidebar: name the project instead.", field="project")
        with self.db.read() as session:
            project_id = require_project(session, caller, spec.project)[0].id if spec.project else None
        with self._current_lock:
            if project_id is None:
                self._current.pop(caller.user_id, None)
            else:
                self._current[caller.user_id] = project_id
        return CurrentProject(project=spec.project)

    def list_projects(
        self,
        caller: Caller,
        limit: int,
        offset: int,
        search: str | None = None,
        tag: str | None = None,
    ) -> Page[DescribeProject]:
        """The projects the caller may see: two statements whatever the number of projects (three
        for a page past the end, which must still count them).

        Columns, not ORM rows: the page and its total come in one statement (a window count), and
        each row becomes its description directly; the listing is the API's most frequent read.
        """
        with self.db.read() as session:
            query = select(*_LISTED_COLUMNS).join(User, User.id == Project.owner_id)
            if caller.project_scope is not None:
                query = query.where(Project.id == caller.project_scope)
            if not caller.sees_every_project:
                query = query.where(Project.id.in_(select(ProjectGrant.project_id).where(_grant_filter(caller))))
            if search:
                query = query.where(
                    Project.key.icontains(search, autoescape=True)
                    | Project.name.icontains(search, autoescape=True)
                    | Project.description.icontains(search, autoescape=True)
                )
            if tag:
                # Tags are a JSON list of strings; its text form holds the tag quoted on every backend.
                query = query.where(cast(Project.tags, String).contains(json.dumps(tag), autoescape=True))
            rows = session.execute(
                query.add_columns(func.count().over().label("total")).order_by(Project.key).limit(limit).offset(offset)
            ).all()
            if rows:
                total = rows[0].total
            elif offset:
                total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            else:
                total = 0
            granted: dict[int, set[str]] = defaultdict(set)
            if not caller.sees_every_project and rows:
                for project_id, permission in session.execute(
                    select(ProjectGrant.project_id, ProjectGrant.permission).where(
                        ProjectGrant.project_id.in_([row.id for row in rows]), _grant_filter(caller)
                    )
                ):
                    granted[project_id].add(permission)
            items = [
                DescribeProject.model_validate(
                    {
                        **row._mapping,
                        "my_permissions": in_order(
                            ALL_PROJECT_PERMISSIONS
                            if caller.sees_every_project
                            else expand_project_permissions(granted[row.id])
                        ),
                    }
                )
                for row in rows
            ]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def get_project(self, caller: Caller, key: str) -> DescribeProject:
        with self.db.read() as session:
            return describe_project(*require_project(session, caller, key))

    def create_project(self, caller: Caller, spec: CreateProject) -> DescribeProject:
        caller.require(GlobalPermission.CREATE_PROJECTS)
        with self.db.write() as session:
            if session.scalar(select(Project.id).where(Project.key == spec.key)) is not None:
                raise Conflict(f"The project key '{spec.key}' is taken.", field="key")
            if spec.owner is not None and spec.owner != caller.login:
                if not caller.is_admin:
                    raise Forbidden("Only administrators create projects on behalf of someone else.")
                owner = find_user(session, spec.owner, field="owner")
            elif caller.user_id is not None:
                owner = session.get_one(User, caller.user_id)
            else:
                raise InvalidInput("Say who owns the project.", field="owner")
            project = Project(
                key=spec.key,
                name=spec.name,
                description=spec.description,
                tags=list(dict.fromkeys(spec.tags)),
                owner=owner,
                variables={},
            )
            session.add(project)
            session.flush()
            session.add_all(
                ProjectGrant(project_id=project.id, user_id=owner.id, permission=p) for p in ProjectPermission
            )
            self.audit.record(
                session,
                caller,
                "project.create",
                "project",
                project.key,
                project_key=project.key,
                details=spec.model_dump(mode="json"),
            )
            return describe_project(project, project_permissions(session, caller, project))

    def update_project(self, caller: Caller, key: str, spec: UpdateProject) -> DescribeProject:
        """Change a project; archiving it (status ``archived``) also deactivates its scenarios, so that
        nothing of it runs on a schedule any more. Unarchiving leaves them inactive: which ones should
        run again is a decision, not a restoration."""
        changes = spec.model_dump(mode="json", exclude_none=True)
        deactivated: list[int] = []
        with self.db.write() as session:
            project, permissions = require_project(session, caller, key, ProjectPermission.ADMIN)
            details: dict[str, Any] = dict(changes)
            if changes.get("status") == "archived":
                scenarios = _deactivate_scenarios(session, project)
                details["deactivated_scenarios"] = [scenario.slug for scenario in scenarios]
                deactivated = [scenario.id for scenario in scenarios]
            for name, value in changes.items():
                if name == "owner":
                    project.owner = find_user(session, value, field="owner")
                else:
                    setattr(project, name, value)
            session.flush()
            self.audit.record(session, caller, "project.update", "project", key, project_key=key, details=details)
            described = describe_project(project, permissions)
        self._changed(deactivated)
        return described

    def delete_project(self, caller: Caller, key: str, delete_bundles: bool = False) -> None:
        """Delete a project and everything in it; refused while anything still depends on it.

        Refused while one of its scenarios is active (archive the project first), while one of its
        runs is not finished, and, unless ``delete_bundles``, while bundle versions of it are stored:
        they are keyed by the project's key and go with it (else whoever next creates a project of
        that key would find, and could activate, this one's definitions), and they may be the only
        copies of what it promoted.
        """
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.ADMIN)
            _refuse_while_depended_on(session, project, delete_bundles)
            session.delete(project)
            session.execute(delete(BundleActivation).where(BundleActivation.project_key == key))
            bundles = len(session.scalars(delete(Bundle).where(Bundle.project_key == key).returning(Bundle.id)).all())
            self.audit.record(
                session, caller, "project.delete", "project", key, project_key=key, details={"bundles": bundles}
            )

    def _changed(self, scenario_ids: list[int]) -> None:
        """Tell the scheduler, once the change is committed, which scenarios it must read again."""
        for scenario_id in scenario_ids:
            self.events.publish(ScenarioChanged(scenario_id))

    # -- grants --------------------------------------------------------------------------------

    @staticmethod
    def presets() -> list[DescribePreset]:
        return [
            DescribePreset(name=name, description=PRESET_DESCRIPTIONS[name], permissions=_sorted(perms))
            for name, perms in PROJECT_PRESETS.items()
        ]

    def _grants(self, session: Session, project: Project) -> list[DescribeGrant]:
        rows = session.execute(
            select(ProjectGrant.permission, Group.name, User.login)
            .outerjoin(Group, Group.id == ProjectGrant.group_id)
            .outerjoin(User, User.id == ProjectGrant.user_id)
            .where(ProjectGrant.project_id == project.id)
        ).all()
        by_principal: dict[tuple[str, str], set[ProjectPermission]] = defaultdict(set)
        for permission, group_name, login in rows:
            principal = ("group", group_name) if group_name is not None else ("user", login)
            by_principal[principal].add(ProjectPermission(permission))
        return [
            DescribeGrant(
                principal_type=kind,
                principal=name,
                permissions=_sorted(frozenset(perms)),
                preset=preset_of(frozenset(perms)),
            )
            for (kind, name), perms in sorted(by_principal.items())
        ]

    def list_grants(self, caller: Caller, key: str) -> list[DescribeGrant]:
        with self.db.read() as session:
            project, _ = require_project(session, caller, key)
            return self._grants(session, project)

    def set_grant(self, caller: Caller, key: str, spec: SetGrant) -> list[DescribeGrant]:
        """Replace what one principal holds on the project."""
        permissions = expand_project_permissions(
            PROJECT_PRESETS[spec.preset] if spec.preset else spec.permissions or []
        )
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.ADMIN)
            if spec.group is not None:
                principal = {"group_id": find_group(session, spec.group, field="group").id}
            else:
                principal = {"user_id": find_user(session, spec.user or "", field="user").id}
            before = self._remove(session, project, principal)
            session.add_all(ProjectGrant(project_id=project.id, permission=p, **principal) for p in permissions)
            session.flush()
            self.audit.record(
                session,
                caller,
                "project.grant",
                "project",
                key,
                project_key=key,
                details={
                    "group": spec.group,
                    "user": spec.user,
                    "before": sorted(before),
                    "after": [p.value for p in _sorted(permissions)],
                },
            )
            return self._grants(session, project)

    def remove_grant(self, caller: Caller, key: str, principal_type: str, name: str) -> list[DescribeGrant]:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.ADMIN)
            if principal_type == "group":
                principal = {"group_id": find_group(session, name).id}
            else:
                principal = {"user_id": find_user(session, name).id}
            before = self._remove(session, project, principal)
            if not before:
                raise NotFound(f"The {principal_type} '{name}' has no grant on {key}.")
            self.audit.record(
                session,
                caller,
                "project.revoke",
                "project",
                key,
                project_key=key,
                details={principal_type: name, "before": sorted(before)},
            )
            return self._grants(session, project)

    @staticmethod
    def _remove(session: Session, project: Project, principal: dict[str, int]) -> set[str]:
        column_name, principal_id = next(iter(principal.items()))
        column = getattr(ProjectGrant, column_name)
        existing = session.scalars(
            select(ProjectGrant).where(ProjectGrant.project_id == project.id, column == principal_id)
        ).all()
        for grant in existing:
            session.delete(grant)
        session.flush()
        return {g.permission for g in existing}

    # -- authorization matrix ------------------------------------------------------------------

    def auth_matrix(self, caller: Caller, user: str | None = None, group: str | None = None) -> DescribeAuthMatrix:
        """Effective permissions of a user or group on every project, in one grants query.

        Asked about oneself, the answer is what the caller's own credentials allow: a
        project-scoped token sees its one project and no global permission.
        """
        if group is not None and user is not None:
            raise InvalidInput("Ask for a user or a group, not both.", field="group")
        if group is not None or (user is not None and user != caller.login):
            caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            scope = caller.project_scope
            if group is not None:
                subject_group = find_group(session, group, field="group")
                held = frozenset(p.permission for p in subject_group.permissions)
                sees_everything = GlobalPermission.ADMIN in held
                global_permissions = frozenset(GlobalPermission) if sees_everything else held
                grant_filter: ColumnElement[bool] = ProjectGrant.group_id == subject_group.id
                subject_type, subject_name = "group", group
            else:
                if user is None or user == caller.login:
                    if caller.user_id is None:
                        raise InvalidInput("The operator has no permissions of its own: name a user.", field="user")
                    subject = caller
                else:
                    subject = load_caller(session, find_user(session, user, field="user"))
                sees_everything = subject.sees_every_project
                global_permissions = subject.effective_global_permissions
                grant_filter = _grant_filter(subject)
                subject_type, subject_name = "user", subject.login
            rows: list[MatrixRow] = []
            if sees_everything:
                everything = as_flags(ProjectPermission, ProjectPermission)
                projects = select(Project.key, Project.name).order_by(Project.key)
                if scope is not None:
                    projects = projects.where(Project.id == scope)
                for key, name in session.execute(projects).all():
                    rows.append(MatrixRow(project=key, name=name, permissions=everything))
            else:
                grants = (
                    select(Project.key, Project.name, ProjectGrant.permission)
                    .join(ProjectGrant, ProjectGrant.project_id == Project.id)
                    .where(grant_filter)
                )
                if scope is not None:
                    grants = grants.where(Project.id == scope)
                granted: dict[tuple[str, str], set[str]] = defaultdict(set)
                for key, name, permission in session.execute(grants).all():
                    granted[(key, name)].add(permission)
                for (key, name), perms in sorted(granted.items()):
                    closed = expand_project_permissions(perms)
                    rows.append(MatrixRow(project=key, name=name, permissions=as_flags(closed, ProjectPermission)))
            return DescribeAuthMatrix(
                subject_type=subject_type,
                subject=subject_name,
                global_permissions=as_flags(global_permissions, GlobalPermission),
                projects=rows,
            )

    def access_grid(
        self, caller: Caller, subjects: Subjects, project: str | None, search: str | None, limit: int, offset: int
    ) -> AccessGrid:
        """Everyone's effective permissions on every project (administrators: it names every person)."""
        caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            return read_access_grid(session, subjects, project, search, limit, offset)

    # -- access troubleshooting ----------------------------------------------------------------

    def explain_access(self, caller: Caller, login: str, key: str, permission: ProjectPermission) -> ExplainAccess:
        """Why ``login`` holds ``permission`` on ``key``, or what is missing and who can grant it.

        Administrators ask about anyone. The project's admins ask about the people holding a
        grant on it, themselves or through a group, which they could read from its grants
        already; anyone else who sees the project asks about themselves. Any other name is the
        same 404 whether or not such a person exists, and only administrators are told who the
        administrators are: the answer must not enumerate people.
        """
        with self.db.read() as session:
            project = session.scalar(select(Project).options(joinedload(Project.owner)).where(Project.key == key))
            if caller.is_admin:
                subject = find_user(session, login, field="user")
                administrators = global_administrators(session)
            elif login == caller.login:
                project = require_project(session, caller, key)[0]
                subject = find_user(session, login, field="user")
                administrators = []
            else:
                project = require_project(session, caller, key, ProjectPermission.ADMIN)[0]
                subject = _grant_holder(session, project, login)
                administrators = []
            if project is None:
                return ExplainAccess(
                    user=subject.login,
                    project=key,
                    permission=permission,
                    granted=False,
                    user_active=subject.active,
                    project_exists=False,
                    held=[],
                    sources=[],
                    explanation=f"There is no project '{key}'.",
                    project_administrators=[],
                    administrators=administrators,
                )
            sources, held, direct = _access_sources(session, subject, project, permission)
            project_admins = project_administrators(session, project)
            granted = subject.active and bool(sources)
            grant_command = None
            if not subject.active:
                explanation = (
                    f"{subject.login}'s account is deactivated, so they hold nothing on any project; "
                    f"an administrator reactivates it (PATCH /users/{subject.login} with active: true)"
                    + (f", after which {_describe(sources)}." if sources else ".")
                )
            elif granted:
                explanation = f"{subject.login} holds '{permission}' on {key}: {_describe(sources)}."
            else:
                holding = ", ".join(_sorted(held)) if held else "nothing"
                explanation = (
                    f"{subject.login} does not hold '{permission}' on {key} (they hold {holding}): "
                    f"{ask_for('it', project_admins, f'{key} administrators')}."
                )
                grant_command = _grant_command(key, subject.login, direct | {permission})
            return ExplainAccess(
                user=subject.login,
                project=key,
                permission=permission,
                granted=granted,
                user_active=subject.active,
                project_exists=True,
                owner=project.owner.login,
                held=_sorted(held),
                sources=sources,
                explanation=explanation,
                project_administrators=project_admins,
                administrators=administrators,
                grant_command=grant_command,
            )


def _deactivate_scenarios(session: Session, project: Project) -> list[Scenario]:
    """Deactivate the project's active scenarios (the scheduler fires only active ones)."""
    scenarios = list(
        session.scalars(
            select(Scenario).where(Scenario.project_id == project.id, Scenario.active).order_by(Scenario.slug)
        )
    )
    for scenario in scenarios:
        scenario.active = False
        scenario.definition = {**scenario.definition, "active": False}
    return scenarios


def _listed(names: list[str], limit: int = 3) -> str:
    """At most ``limit`` names and how many more, so that a refusal stays one line."""
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def _refuse_while_depended_on(session: Session, project: Project, delete_bundles: bool) -> None:
    """The one reason a project may not be deleted yet, naming what depends on it and what to do."""
    active = session.scalars(
        select(Scenario.slug).where(Scenario.project_id == project.id, Scenario.active).order_by(Scenario.slug)
    ).all()
    if active:
        raise Conflict(
            f"Project {project.key} has active scenarios ({_listed(list(active))}): "
            "archive it first, which deactivates them."
        )
    unfinished = session.execute(
        select(ScenarioRun.id, Scenario.slug)
        .join(Scenario, Scenario.id == ScenarioRun.scenario_id)
        .where(ScenarioRun.project_id == project.id, ScenarioRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
        .order_by(ScenarioRun.id)
        .limit(1)
    ).first()
    if unfinished is not None:
        raise Conflict(f"Run #{unfinished[0]} of '{unfinished[1]}' in {project.key} is not finished: abort it first.")
    versions = session.scalars(
        select(Bundle.version).where(Bundle.project_key == project.key).order_by(Bundle.version)
    ).all()
    if versions and not delete_bundles:
        active_version = session.scalar(
            select(Bundle.version)
            .join(BundleActivation, BundleActivation.bundle_id == Bundle.id)
            .where(BundleActivation.project_key == project.key)
            .order_by(BundleActivation.id.desc())
            .limit(1)
        )
        live = f", version {active_version} active" if active_version is not None else ""
        raise Conflict(
            f"Project {project.key} holds {len(versions)} bundle version(s) ({_listed([str(v) for v in versions])}"
            f"{live}), deleted with it: download those to keep, then delete it with delete_bundles.",
            field="delete_bundles",
        )


def global_administrators(session: Session) -> list[str]:
    """The active people holding the global ``admin`` permission through a group, by login."""
    return sorted(
        session.scalars(
            select(User.login)
            .join(GroupMember, GroupMember.user_id == User.id)
            .join(GroupPermission, GroupPermission.group_id == GroupMember.group_id)
            .where(GroupPermission.permission == GlobalPermission.ADMIN, User.active)
            .distinct()
        ).all()
    )


def _grant_holder(session: Session, project: Project, login: str) -> User:
    """The person called ``login`` if they hold a grant on the project; one 404 otherwise."""
    on_project = ProjectGrant.project_id == project.id
    holder = session.scalar(
        select(User).where(
            User.login == login,
            User.id.in_(select(ProjectGrant.user_id).where(on_project))
            | User.id.in_(
                select(GroupMember.user_id)
                .join(ProjectGrant, ProjectGrant.group_id == GroupMember.group_id)
                .where(on_project)
            ),
        )
    )
    if holder is None:
        raise NotFound(
            f"No one called '{login}' holds a grant on {project.key}: its administrators may ask about "
            "the people holding one, administrators about anyone.",
            field="user",
        )
    return holder


def _access_sources(
    session: Session, subject: User, project: Project, permission: ProjectPermission
) -> tuple[list[AccessSource], frozenset[ProjectPermission], set[ProjectPermission]]:
    """The grants giving ``permission``, everything held on the project, and the user's direct grants.

    Grants are stored closed under implication (``set_grant``), so a principal gives the
    permission when its grants hold it; the description names the preset they amount to.
    """
    memberships = session.execute(
        select(Group.id, Group.name, GroupPermission.permission)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .outerjoin(GroupPermission, GroupPermission.group_id == Group.id)
        .where(GroupMember.user_id == subject.id)
    ).all()
    group_names = {group_id: name for group_id, name, _ in memberships}
    admin_groups = sorted({name for _, name, held in memberships if held == GlobalPermission.ADMIN})
    rows = session.execute(
        select(ProjectGrant.group_id, ProjectGrant.permission).where(
            ProjectGrant.project_id == project.id,
            or_(ProjectGrant.user_id == subject.id, ProjectGrant.group_id.in_(sorted(group_names))),
        )
    ).all()
    by_principal: dict[str | None, set[ProjectPermission]] = defaultdict(set)
    for group_id, granted in rows:
        by_principal[group_names[group_id] if group_id is not None else None].add(ProjectPermission(granted))
    direct = by_principal.get(None, set())
    sources: list[AccessSource] = []
    for group in sorted(by_principal, key=lambda name: (name is not None, name or "")):
        closed = expand_project_permissions(by_principal[group])
        if permission not in closed:
            continue
        preset = preset_of(closed)
        as_preset = f" (preset {preset})" if preset else ""
        if group is not None:
            kind, description = "group", f"the group '{group}' they belong to holds '{permission}'{as_preset}"
        elif project.owner_id == subject.id:
            kind, description = "owner", f"as the project's owner they hold '{permission}' themselves{as_preset}"
        else:
            kind, description = "user", f"a grant to them holds '{permission}'{as_preset}"
        sources.append(AccessSource(kind=kind, group=group, permission=permission, description=description))
    for group in admin_groups:
        sources.append(
            AccessSource(
                kind="global",
                group=group,
                permission=GlobalPermission.ADMIN,
                description=f"the group '{group}' they belong to holds the global permission 'admin' (every project)",
            )
        )
    held = (
        ALL_PROJECT_PERMISSIONS
        if admin_groups
        else expand_project_permissions(p for ps in by_principal.values() for p in ps)
    )
    return sources, held, direct


def _describe(sources: list[AccessSource]) -> str:
    return "; ".join(source.description for source in sources)


def _grant_command(key: str, login: str, permissions: set[ProjectPermission]) -> str:
    """``himalia project grant`` giving ``permissions`` to the user (a grant replaces what they held directly)."""
    closed = expand_project_permissions(permissions)
    preset = preset_of(closed)
    if preset is not None:
        return f"himalia project grant {key} --user {login} --preset {preset}"
    return f"himalia project grant {key} --user {login} " + " ".join(f"--permission {p}" for p in _sorted(closed))
