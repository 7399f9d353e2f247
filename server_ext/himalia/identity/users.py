"""Users, service accounts and groups, with the global permissions groups carry.

Under JupyterHub, people and their groups come from the hub (and through it from the identity
provider): ``sync_from_hub`` mirrors them. It touches only what the hub owns: users and groups
whose ``source`` is ``hub``. Groups made here keep their members, people made here keep their
groups, and a group's global permissions are always managed here.
"""

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from himalia.core.errors import Conflict, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, Profile, as_flags
from himalia.identity.caller import Caller, load_caller
from himalia.identity.service import Service
from himalia.store.db import paginate
from himalia.store.orm import Group, GroupMember, GroupPermission, Project, User
from himalia.wire.common import Page, from_row
from himalia.wire.identity import (
    CreateGroup,
    CreateUser,
    DescribeGroup,
    DescribeMe,
    DescribeUser,
    UpdateGroup,
    UpdateUser,
)


def find_user(session: Session, login: str, field: str = "user") -> User:
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound(f"There is no user '{login}'.", field=field)
    return user


def find_group(session: Session, name: str, field: str = "group") -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(f"There is no group '{name}'.", field=field)
    return group


def find_groups(session: Session, names: list[str], field: str) -> list[Group]:
    """All the named groups in one query, or a 400 naming the first unknown one."""
    found = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(set(names))))}
    for name in names:
        if name not in found:
            raise InvalidInput(f"There is no group '{name}'.", field=field)
    return [found[name] for name in dict.fromkeys(names)]


def _keep_an_administrator(session: Session) -> None:
    """Refuse a change that would leave no active administrator (it rolls back with the transaction)."""
    session.flush()
    administrators = session.scalar(
        select(func.count(func.distinct(User.id)))
        .join(GroupMember, GroupMember.user_id == User.id)
        .join(GroupPermission, GroupPermission.group_id == GroupMember.group_id)
        .where(User.active.is_(True), GroupPermission.permission == GlobalPermission.ADMIN)
    )
    if not administrators:
        raise Conflict("This would leave the platform without an active administrator.")


@dataclass(frozen=True)
class HubPerson:
    """A JupyterHub user as the hub's REST API describes it."""

    login: str
    admin: bool
    groups: frozenset[str]


_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
HUB_SYNC = Caller.operator("jupyterhub-sync", client_address="hub")


def describe_user(user: User) -> DescribeUser:
    return from_row(DescribeUser, user, groups=[g.name for g in user.groups])


class UserService(Service):
    # -- users ---------------------------------------------------------------------------------

    def me(self, caller: Caller) -> DescribeMe:
        with self.db.read() as session:
            if caller.user_id is None:
                raise NotFound("The operator acts without a user account.")
            user = session.get(User, caller.user_id, options=[selectinload(User.groups)])
            assert user is not None
            scope = session.get(Project, caller.project_scope) if caller.project_scope else None
            return DescribeMe(
                **describe_user(user).model_dump(),
                global_permissions=as_flags(caller.effective_global_permissions, GlobalPermission),
                project_scope=scope.key if scope else None,
            )

    def list_users(self, caller: Caller, limit: int, offset: int) -> Page[DescribeUser]:
        caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            query = select(User).options(selectinload(User.groups)).order_by(User.login)
            users, total = paginate(session, query, limit, offset)
            return Page(items=[describe_user(u) for u in users], total=total, limit=limit, offset=offset)

    def get_user(self, caller: Caller, login: str) -> DescribeUser:
        if login != caller.login:
            caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            return describe_user(find_user(session, login))

    def create_user(self, caller: Caller, spec: CreateUser) -> DescribeUser:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            if session.scalar(select(User.id).where(User.login == spec.login)) is not None:
                raise Conflict(f"A user '{spec.login}' already exists.", field="login")
            groups = find_groups(session, spec.groups, "groups")
            user = User(
                login=spec.login,
                display_name=spec.display_name or spec.login,
                email=spec.email,
                profile=spec.profile,
                kind=spec.kind,
                groups=groups,
            )
            session.add(user)
            session.flush()
            self.audit.record(
                session,
                caller,
                "user.create",
                "user",
                user.login,
                details=spec.model_dump(mode="json"),
            )
            return describe_user(user)

    def update_user(self, caller: Caller, login: str, spec: UpdateUser) -> DescribeUser:
        caller.require(GlobalPermission.ADMIN)
        changes = spec.model_dump(mode="json", exclude_none=True)
        with self.db.write() as session:
            user = find_user(session, login)
            for name, value in changes.items():
                setattr(user, name, value)
            _keep_an_administrator(session)
            self.audit.record(session, caller, "user.update", "user", login, details=changes)
            return describe_user(user)

    def caller_for(self, login: str, client_address: str = "") -> Caller:
        """The caller acting as ``login`` (used by trusted hosts: the CLI, the local Jupyter user)."""
        with self.db.read() as session:
            return load_caller(session, find_user(session, login), client_address=client_address)

    def ensure_local_admin(self, login: str) -> None:
        """Make ``login`` exist and belong to an ``administrators`` group holding ``admin``.

        Used in standalone mode, where whoever owns the Jupyter server owns the platform.
        """
        operator = Caller.operator("himalia-extension", client_address="local")
        with self.db.write() as session:
            group = session.scalar(select(Group).where(Group.name == "administrators"))
            if group is None:
                group = Group(name="administrators", description="Platform administrators.")
                group.permissions = [GroupPermission(permission=GlobalPermission.ADMIN)]
                session.add(group)
                self.audit.record(
                    session,
                    operator,
                    "group.create",
                    "group",
                    group.name,
                    details={"permissions": [GlobalPermission.ADMIN]},
                )
            user = session.scalar(select(User).where(User.login == login))
            if user is None:
                user = User(login=login, display_name=login, profile=Profile.DESIGNER)
                session.add(user)
                self.audit.record(
                    session,
                    operator,
                    "user.create",
                    "user",
                    login,
                    details={"reason": "standalone server owner"},
                )
            if group not in user.groups:
                user.groups.append(group)
                self.audit.record(
                    session,
                    operator,
                    "group.add_member",
                    "group",
                    group.name,
                    details={"user": login},
                )

    # -- groups --------------------------------------------------------------------------------

    def list_groups(self, caller: Caller, limit: int, offset: int) -> Page[DescribeGroup]:
        """Every signed-in user may list group names (to grant projects to them)."""
        with self.db.read() as session:
            query = select(Group).options(selectinload(Group.permissions)).order_by(Group.name)
            groups, total = paginate(session, query, limit, offset)
            counts = dict(
                session.execute(
                    select(GroupMember.group_id, func.count())
                    .where(GroupMember.group_id.in_([g.id for g in groups]))
                    .group_by(GroupMember.group_id)
                ).all()
            )
            members: dict[int, list[str]] = {}
            if caller.is_admin:
                for group_id, login in session.execute(
                    select(GroupMember.group_id, User.login)
                    .join(User, User.id == GroupMember.user_id)
                    .where(GroupMember.group_id.in_([g.id for g in groups]))
                    .order_by(User.login)
                ).all():
                    members.setdefault(group_id, []).append(login)
            items = [
                from_row(
                    DescribeGroup,
                    g,
                    permissions=[p.permission for p in g.permissions],
                    member_count=counts.get(g.id, 0),
                    members=members.get(g.id, []) if caller.is_admin else None,
                )
                for g in groups
            ]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def _describe_group(self, session: Session, caller: Caller, group: Group) -> DescribeGroup:
        return from_row(
            DescribeGroup,
            group,
            permissions=[p.permission for p in group.permissions],
            member_count=len(group.members),
            members=[u.login for u in group.members] if caller.is_admin else None,
        )

    def get_group(self, caller: Caller, name: str) -> DescribeGroup:
        with self.db.read() as session:
            return self._describe_group(session, caller, find_group(session, name))

    def create_group(self, caller: Caller, spec: CreateGroup) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            if session.scalar(select(Group.id).where(Group.name == spec.name)) is not None:
                raise Conflict(f"A group '{spec.name}' already exists.", field="name")
            group = Group(name=spec.name, description=spec.description)
            group.permissions = [GroupPermission(permission=p) for p in dict.fromkeys(spec.permissions)]
            session.add(group)
            session.flush()
            self.audit.record(
                session,
                caller,
                "group.create",
                "group",
                group.name,
                details=spec.model_dump(mode="json"),
            )
            return self._describe_group(session, caller, group)

    def update_group(self, caller: Caller, name: str, spec: UpdateGroup) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            group = find_group(session, name)
            details: dict[str, object] = {}
            if spec.description is not None:
                group.description = spec.description
                details["description"] = spec.description
            if spec.permissions is not None:
                before = sorted(p.permission for p in group.permissions)
                group.permissions = [GroupPermission(permission=p) for p in dict.fromkeys(spec.permissions)]
                details["permissions"] = {"before": before, "after": sorted(set(spec.permissions))}
            session.flush()
            _keep_an_administrator(session)
            self.audit.record(session, caller, "group.update", "group", name, details=details)
            return self._describe_group(session, caller, group)

    def delete_group(self, caller: Caller, name: str) -> None:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            group = find_group(session, name)
            session.delete(group)
            _keep_an_administrator(session)
            self.audit.record(session, caller, "group.delete", "group", name)

    def add_member(self, caller: Caller, name: str, login: str) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            group = find_group(session, name)
            user = find_user(session, login)
            if user not in group.members:
                group.members.append(user)
                self.audit.record(session, caller, "group.add_member", "group", name, details={"user": login})
            return self._describe_group(session, caller, group)

    def remove_member(self, caller: Caller, name: str, login: str) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            group = find_group(session, name)
            user = find_user(session, login)
            if user not in group.members:
                raise NotFound(f"'{login}' is not a member of '{name}'.", field="user")
            group.members.remove(user)
            _keep_an_administrator(session)
            self.audit.record(session, caller, "group.remove_member", "group", name, details={"user": login})
            return self._describe_group(session, caller, group)

    # -- JupyterHub ----------------------------------------------------------------------------

    def sync_from_hub(self, people: list[HubPerson], admin_group: str, complete: bool = False) -> list[str]:
        """Mirror hub users, their groups and admin flags (``admin_group`` holds the hub's admins).

        ``complete``: ``people`` is everyone the hub knows, so hub users missing from it are
        deactivated (kept, with their history). Returns what changed, one line each.
        """
        changes: list[str] = []
        with self.db.write() as session:
            groups = {g.name: g for g in session.scalars(select(Group).options(selectinload(Group.members)))}
            admins = groups.get(admin_group)
            if admins is None:
                admins = groups[admin_group] = Group(name=admin_group, description="Platform administrators.")
                admins.permissions = [GroupPermission(permission=GlobalPermission.ADMIN)]
                session.add(admins)
                self.audit.record(session, HUB_SYNC, "group.create", "group", admin_group, details={"source": "hub"})
            admins.source = "hub"
            users = {u.login: u for u in session.scalars(select(User).options(selectinload(User.groups)))}
            seen: set[str] = set()
            for person in people:
                if not _LOGIN.match(person.login):
                    self.log.warning("Not syncing the hub user %r: not a valid Himalia login", person.login)
                    continue
                seen.add(person.login)
                user = users.get(person.login)
                if user is None:
                    user = User(login=person.login, display_name=person.login, source="hub", groups=[])
                    session.add(user)
                    self.audit.record(session, HUB_SYNC, "user.create", "user", person.login, details={"source": "hub"})
                    changes.append(f"created user {person.login}")
                elif not user.active and user.source == "hub":
                    user.active = True
                    self.audit.record(session, HUB_SYNC, "user.update", "user", person.login, details={"active": True})
                    changes.append(f"reactivated {person.login}")
                user.source = "hub"
                wanted = {name for name in person.groups if _GROUP.match(name)} | (
                    {admin_group} if person.admin else set()
                )
                for name in sorted(wanted):
                    group = groups.get(name)
                    if group is None:
                        group = groups[name] = Group(name=name, description="From JupyterHub.", source="hub")
                        session.add(group)
                        self.audit.record(session, HUB_SYNC, "group.create", "group", name, details={"source": "hub"})
                        changes.append(f"created group {name}")
                    group.source = "hub"
                    if group not in user.groups:
                        user.groups.append(group)
                        self.audit.record(
                            session, HUB_SYNC, "group.add_member", "group", name, details={"user": user.login}
                        )
                        changes.append(f"added {user.login} to {name}")
                for group in [g for g in user.groups if g.source == "hub" and g.name not in wanted]:
                    user.groups.remove(group)
                    self.audit.record(
                        session, HUB_SYNC, "group.remove_member", "group", group.name, details={"user": user.login}
                    )
                    changes.append(f"removed {user.login} from {group.name}")
            if complete:
                for user in users.values():
                    if user.source == "hub" and user.active and user.login not in seen:
                        user.active = False
                        self.audit.record(
                            session, HUB_SYNC, "user.update", "user", user.login, details={"active": False}
                        )
                        changes.append(f"deactivated {user.login} (gone from the hub)")
        return changes

    def ensure_service_account(self, login: str, group: str, permissions: list[GlobalPermission]) -> None:
        """A service account in a group holding ``permissions`` (the hub's own identity here)."""
        operator = Caller.operator("himalia-service", client_address="local")
        with self.db.write() as session:
            holder = session.scalar(select(Group).where(Group.name == group).options(selectinload(Group.permissions)))
            if holder is None:
                holder = Group(name=group, description="Services of the platform.")
                session.add(holder)
                self.audit.record(
                    session, operator, "group.create", "group", group, details={"permissions": permissions}
                )
            missing = set(permissions) - {p.permission for p in holder.permissions}
            holder.permissions += [GroupPermission(permission=p) for p in sorted(missing)]
            account = session.scalar(select(User).where(User.login == login).options(selectinload(User.groups)))
            if account is None:
                account = User(login=login, display_name=login, kind="service", groups=[])
                session.add(account)
                self.audit.record(session, operator, "user.create", "user", login, details={"kind": "service"})
            if holder not in account.groups:
                account.groups.append(holder)
