"""The access grid: people or groups against projects, each cell what is held and where it comes from.

The authorization matrix answers for one subject; an administrator reviewing access wants them
all at once. The grid reads a page of subjects, every project, and their memberships and grants
in a handful of statements, however many subjects and projects there are, and computes each
cell as ``project_permissions`` would: the union of the grants to the person and to their
groups, closed under implication, everything for holders of the global ``admin``.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from himalia.core.errors import NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission, expand_project_permissions, preset_of
from himalia.store.db import paginate
from himalia.store.orm import Group, GroupMember, GroupPermission, Project, ProjectGrant, User
from himalia.wire.access import AccessGrid, GridCell, GridProject, GridSource, GridSubject

Subjects = Literal["users", "groups"]
SourceKind = Literal["user", "owner", "group", "global"]
#: ``(principal kind, principal id) -> project id -> permissions granted``; a grant names exactly one principal.
Grants = dict[tuple[str, int | None], dict[int, set[str]]]

_EVERYTHING = frozenset(ProjectPermission)


@dataclass(frozen=True)
class _Column:
    id: int
    key: str
    owner_id: int


def _ordered(permissions: Iterable[str]) -> list[ProjectPermission]:
    held = set(permissions)
    return [p for p in ProjectPermission if p in held]


def _global(held: set[str]) -> list[GlobalPermission]:
    if GlobalPermission.ADMIN in held:
        return list(GlobalPermission)
    return [p for p in GlobalPermission if p in held]


def _source(kind: SourceKind, group: str | None, permissions: Iterable[str]) -> GridSource:
    closed = expand_project_permissions(permissions)
    return GridSource(kind=kind, group=group, permissions=_ordered(closed), preset=preset_of(closed))


def _cell(project: str, sources: list[GridSource], effective: bool) -> GridCell:
    held = expand_project_permissions(p for source in sources for p in source.permissions) if effective else frozenset()
    return GridCell(
        project=project, permissions=_ordered(held), preset=preset_of(held) if held else None, sources=sources
    )


def read_access_grid(
    session: Session, subjects: Subjects, project: str | None, search: str | None, limit: int, offset: int
) -> AccessGrid:
    """One page of people (``users``) or groups against every project, or only ``project``."""
    columns, described = _columns(session, project)
    if subjects == "users":
        rows, total = _user_rows(session, columns, search, limit, offset)
    else:
        rows, total = _group_rows(session, columns, search, limit, offset)
    return AccessGrid(
        subject_type="user" if subjects == "users" else "group",
        projects=described,
        subjects=rows,
        total=total,
        limit=limit,
        offset=offset,
    )


def _columns(session: Session, project: str | None) -> tuple[list[_Column], list[GridProject]]:
    query = (
        select(Project.id, Project.key, Project.name, Project.status, Project.owner_id, User.login)
        .join(User, User.id == Project.owner_id)
        .order_by(Project.key)
    )
    if project is not None:
        query = query.where(Project.key == project)
    rows = session.execute(query).all()
    if project is not None and not rows:
        raise NotFound(f"There is no project '{project}'.", field="project")
    columns = [_Column(id=row.id, key=row.key, owner_id=row.owner_id) for row in rows]
    described = [GridProject(key=row.key, name=row.name, owner=row.login, status=row.status) for row in rows]
    return columns, described


def _grants(session: Session, columns: list[_Column], users: list[int], groups: list[int]) -> Grants:
    """The grants to the people and groups named, on the columns."""
    principals = []
    if users:
        principals.append(ProjectGrant.user_id.in_(users))
    if groups:
        principals.append(ProjectGrant.group_id.in_(groups))
    granted: Grants = defaultdict(lambda: defaultdict(set))
    if not principals or not columns:
        return granted
    query = select(ProjectGrant.project_id, ProjectGrant.user_id, ProjectGrant.group_id, ProjectGrant.permission)
    query = query.where(or_(*principals))
    if len(columns) == 1:
        query = query.where(ProjectGrant.project_id == columns[0].id)
    for project_id, user_id, group_id, permission in session.execute(query):
        principal = ("user", user_id) if user_id is not None else ("group", group_id)
        granted[principal][project_id].add(permission)
    return granted


def _user_rows(
    session: Session, columns: list[_Column], search: str | None, limit: int, offset: int
) -> tuple[list[GridSubject], int]:
    query = select(User).order_by(User.login)
    if search:
        query = query.where(
            User.login.icontains(search, autoescape=True) | User.display_name.icontains(search, autoescape=True)
        )
    users, total = paginate(session, query, limit, offset)
    if not users:
        return [], total
    groups_of: dict[int, dict[int, str]] = defaultdict(dict)
    global_of: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for user_id, group_id, group_name, permission in session.execute(
        select(GroupMember.user_id, Group.id, Group.name, GroupPermission.permission)
        .join(Group, Group.id == GroupMember.group_id)
        .outerjoin(GroupPermission, GroupPermission.group_id == Group.id)
        .where(GroupMember.user_id.in_([u.id for u in users]))
    ):
        groups_of[user_id][group_id] = group_name
        if permission is not None:
            global_of[user_id][group_name].add(permission)
    every_group = sorted({g for groups in groups_of.values() for g in groups})
    granted = _grants(session, columns, [u.id for u in users], every_group)
    rows = []
    for user in users:
        admin_groups = sorted(name for name, held in global_of[user.id].items() if GlobalPermission.ADMIN in held)
        member_of = sorted(groups_of[user.id].items(), key=lambda item: item[1])
        cells = []
        for column in columns:
            sources = []
            direct = granted[("user", user.id)].get(column.id)
            if direct:
                sources.append(_source("owner" if column.owner_id == user.id else "user", None, direct))
            for group_id, group_name in member_of:
                through_group = granted[("group", group_id)].get(column.id)
                if through_group:
                    sources.append(_source("group", group_name, through_group))
            sources.extend(_source("global", name, _EVERYTHING) for name in admin_groups)
            if sources:
                cells.append(_cell(column.key, sources, effective=user.active))
        held_globally = {p for held in global_of[user.id].values() for p in held}
        rows.append(
            GridSubject(
                name=user.login,
                display_name=user.display_name,
                kind="service" if user.kind == "service" else "user",
                active=user.active,
                groups=[name for _, name in member_of],
                global_permissions=_global(held_globally) if user.active else [],
                cells=cells,
            )
        )
    return rows, total


def _group_rows(
    session: Session, columns: list[_Column], search: str | None, limit: int, offset: int
) -> tuple[list[GridSubject], int]:
    query = select(Group).order_by(Group.name)
    if search:
        query = query.where(
            Group.name.icontains(search, autoescape=True) | Group.description.icontains(search, autoescape=True)
        )
    groups, total = paginate(session, query, limit, offset)
    if not groups:
        return [], total
    held: dict[int, set[str]] = defaultdict(set)
    for group_id, permission in session.execute(
        select(GroupPermission.group_id, GroupPermission.permission).where(
            GroupPermission.group_id.in_([g.id for g in groups])
        )
    ):
        held[group_id].add(permission)
    granted = _grants(session, columns, [], [g.id for g in groups])
    rows = []
    for group in groups:
        cells = []
        for column in columns:
            sources = []
            own = granted[("group", group.id)].get(column.id)
            if own:
                sources.append(_source("group", group.name, own))
            if GlobalPermission.ADMIN in held[group.id]:
                sources.append(_source("global", group.name, _EVERYTHING))
            if sources:
                cells.append(_cell(column.key, sources, effective=True))
        rows.append(
            GridSubject(
                name=group.name,
                display_name=group.description,
                kind="group",
                active=True,
                groups=[],
                global_permissions=_global(held[group.id]),
                cells=cells,
            )
        )
    return rows, total
