"""Users, service accounts and groups, with the global permissions groups carry.

Under JupyterHub, people and their groups come from the hub (and through it from the identity
provider): ``sync_from_hub`` mirrors them. It touches only what the hub owns: users and groups
whose ``source`` is ``hub``. Groups made here keep their members, people made here keep their
groups, and a group's global permissions are always managed here.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, Profile, as_flags
from himalia.identity.caller import Caller, load_caller
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database, paginate
from himalia.store.orm import (
    ApiToken,
    Group,
    GroupMember,
    GroupPermission,
    Project,
    Scenario,
    ScenarioRun,
    Tier,
    TierUsage,
    User,
    utcnow,
)
from himalia.wire.common import Page, from_row
from himalia.wire.identity import (
    CreateGroup,
    CreateUser,
    DescribeDeactivation,
    DescribeGroup,
    DescribeMe,
    DescribeToken,
    DescribeUser,
    RunAsScenario,
    RunningServer,
    UpdateGroup,
    UpdateUser,
)

#: ``last_seen_at`` (and tokens' ``last_used_at``) is refreshed at most this often, so that reads
#: do not each cost a write.
RECENCY_RESOLUTION = timedelta(minutes=1)
#: The most tokens and scenarios a deactivation preview lists (it counts them all).
PREVIEW_LIMIT = 200


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


_NO_ADMINISTRATOR = "This would leave the platform without an active administrator."
#: Else an administrator could lock themselves (in the lab: the server's owner) out by mistake.
_NOT_YOURSELF = "You cannot deactivate yourself: ask another administrator."


def _active_administrators(session: Session, besides: int | None = None) -> int:
    """How many active users hold ``admin`` through a group (``besides`` one of them not counted)."""
    query = (
        select(func.count(func.distinct(User.id)))
        .join(GroupMember, GroupMember.user_id == User.id)
        .join(GroupPermission, GroupPermission.group_id == GroupMember.group_id)
        .where(User.active.is_(True), GroupPermission.permission == GlobalPermission.ADMIN)
    )
    if besides is not None:
        query = query.where(User.id != besides)
    return session.scalar(query) or 0


def _keep_an_administrator(session: Session, had: int) -> None:
    """Refuse a change that takes away the last active administrator (it rolls back with the
    transaction); ``had`` is how many there were before it. A store that has none yet (at the hub,
    before the first administrator signs in) may still be changed by its operator."""
    session.flush()
    if had and not _active_administrators(session):
        raise Conflict(_NO_ADMINISTRATOR)


def stale(moment: datetime | None) -> bool:
    """Whether a ``last_seen_at`` or ``last_used_at`` is older than ``RECENCY_RESOLUTION``."""
    return moment is None or utcnow() - moment > RECENCY_RESOLUTION


def mark_seen(session: Session, user_id: int) -> None:
    session.execute(update(User).where(User.id == user_id).values(last_seen_at=utcnow()))


def is_run_token(session: Session, token_id: int) -> bool:
    """Whether a token is a scenario run's: its use is the run's, not the person's."""
    return bool(session.scalar(select(exists().where(ScenarioRun.token_id == token_id))))


def _deactivate(session: Session, user: User, by: Caller) -> int:
    """Deactivate ``user`` and revoke every token of theirs; returns how many were revoked.

    Their scenarios stay as they are, but no run starts as them while they are deactivated (the
    run service records such fires as skipped).
    """
    user.active = False
    user.deactivated_by = by.login
    revoked = session.scalar(select(func.count()).where(ApiToken.user_id == user.id)) or 0
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    return revoked


def _refused_hub_membership(group: Group) -> None:
    if group.source == "hub":
        raise Conflict(
            f"The members of '{group.name}' come from JupyterHub (the identity provider): "
            "change them there; the next sync would undo a change made here.",
            field="group",
        )


def _like(text: str) -> str:
    """A case-insensitive ``LIKE`` pattern containing ``text`` literally (``\\`` escapes)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


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


def describe_token(token: ApiToken) -> DescribeToken:
    return from_row(DescribeToken, token, user=token.user.login, project=token.project.key if token.project else None)


def _refused_essential_deactivation(login: str, reason: str) -> Conflict:
    return Conflict(f"'{login}' is {reason}; deactivating it would stop that, so it stays active.", field="active")


class UserService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: logging.Logger) -> None:
        super().__init__(db, audit, log)
        #: Service accounts this process depends on (``ensure_service_account``), login -> what for.
        self.essential_accounts: dict[str, str] = {}

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

    def list_users(
        self,
        caller: Caller,
        limit: int,
        offset: int,
        *,
        kind: str | None = None,
        active: bool | None = None,
        search: str | None = None,
    ) -> Page[DescribeUser]:
        """Users by login; ``search`` finds text in the login, display name or email (any case)."""
        caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            query = select(User).options(selectinload(User.groups)).order_by(User.login)
            if kind is not None:
                query = query.where(User.kind == kind)
            if active is not None:
                query = query.where(User.active.is_(active))
            if search:
                pattern = _like(search)
                query = query.where(
                    or_(
                        *(
                            func.lower(column).like(pattern, escape="\\")
                            for column in (User.login, User.display_name, User.email)
                        )
                    )
                )
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
        """Change a user; ``active=False`` deactivates them (see ``deactivation`` for what that does)."""
        caller.require(GlobalPermission.ADMIN)
        changes: dict[str, object] = spec.model_dump(mode="json", exclude_none=True, exclude={"active"})
        with self.db.write() as session:
            administrators = _active_administrators(session)
            user = find_user(session, login)
            for name, value in changes.items():
                setattr(user, name, value)
            deactivating = spec.active is False and user.active
            if spec.active is False and user.login in self.essential_accounts:
                raise _refused_essential_deactivation(user.login, self.essential_accounts[user.login])
            if deactivating:
                changes.update(active=False, tokens_revoked=_deactivate(session, user, caller))
            elif spec.active is False and user.deactivated_by != caller.login:
                # Deactivated already (by the hub sync, when they left the hub): now it is this
                # administrator's decision, which the sync does not undo when they come back.
                changes.update(active=False, deactivated_by={"before": user.deactivated_by, "after": caller.login})
                user.deactivated_by = caller.login
            elif spec.active and not user.active:
                user.active, user.deactivated_by = True, None
                changes["active"] = True
            _keep_an_administrator(session, administrators)
            if deactivating and user.id == caller.user_id:
                raise Conflict(_NOT_YOURSELF, field="active")
            self.audit.record(session, caller, "user.update", "user", login, details=changes)
            return describe_user(user)

    def deactivation(self, caller: Caller, login: str) -> DescribeDeactivation:
        """What deactivating ``login`` would do: tokens revoked, scenarios stopped, servers left running."""
        caller.require(GlobalPermission.ADMIN)
        with self.db.read() as session:
            user = find_user(session, login)
            token_count = session.scalar(select(func.count()).where(ApiToken.user_id == user.id)) or 0
            tokens = session.scalars(
                select(ApiToken)
                .options(joinedload(ApiToken.user), joinedload(ApiToken.project))
                .where(ApiToken.user_id == user.id)
                .order_by(ApiToken.id)
                .limit(PREVIEW_LIMIT)
            ).all()
            running_as = (Scenario.run_as_id == user.id, Scenario.active.is_(True))
            scenario_count = session.scalar(select(func.count()).where(*running_as)) or 0
            scenarios = session.execute(
                select(Project.key, Scenario.slug, Scenario.name, Scenario.definition)
                .join(Project, Project.id == Scenario.project_id)
                .where(*running_as)
                .order_by(Project.key, Scenario.slug)
                .limit(PREVIEW_LIMIT)
            ).all()
            servers = session.execute(
                select(TierUsage.server_name, Tier.name, TierUsage.started_at)
                .join(Tier, Tier.id == TierUsage.tier_id)
                .where(TierUsage.user_id == user.id, TierUsage.kind == "server", TierUsage.ended_at.is_(None))
                .order_by(TierUsage.started_at)
                .limit(PREVIEW_LIMIT)
            ).all()
            refusal = None
            if user.login in self.essential_accounts:
                refusal = str(_refused_essential_deactivation(user.login, self.essential_accounts[user.login]))
            elif (
                user.active and _active_administrators(session) and not _active_administrators(session, besides=user.id)
            ):  # the last administrator
                refusal = _NO_ADMINISTRATOR
            elif user.id == caller.user_id:
                refusal = _NOT_YOURSELF
            return DescribeDeactivation(
                user=user.login,
                active=user.active,
                tokens=[describe_token(t) for t in tokens],
                token_count=token_count,
                scenarios=[
                    RunAsScenario(project=key, id=slug, name=name, scheduled=bool(definition.get("triggers")))
                    for key, slug, name, definition in scenarios
                ],
                scenario_count=scenario_count,
                servers=[RunningServer(name=name, tier=tier, started_at=at) for name, tier, at in servers],
                refusal=refusal,
            )

    def caller_for(self, login: str, client_address: str = "") -> Caller:
        """The caller acting as ``login`` (the CLI's ``--as``, the hub's own service account)."""
        with self.db.read() as session:
            return load_caller(session, find_user(session, login), client_address=client_address)

    def sign_in(self, login: str, client_address: str = "") -> Caller:
        """The caller of a person a host vouches for (the lab's own user, a hub login): as
        ``caller_for``, and their ``last_seen_at`` kept to the minute.

        A service account is never a person: a hub user or lab owner whose login happens to be
        one's (``jupyterhub``) does not become it.
        """
        with self.db.read() as session:
            user = find_user(session, login)
            if user.kind == "service":
                raise Forbidden(
                    f"'{login}' is a Himalia service account: it acts with its own Himalia token, "
                    "never as a person signed in to JupyterHub or Jupyter."
                )
            caller = load_caller(session, user, client_address=client_address)
            seen_long_ago = stale(user.last_seen_at)
        if seen_long_ago:
            with self.db.write() as session:
                mark_seen(session, user.id)
        return caller

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
            administrators = _active_administrators(session)
            group = find_group(session, name)
            details: dict[str, object] = {}
            if spec.description is not None:
                group.description = spec.description
                details["description"] = spec.description
            if spec.permissions is not None:
                before = sorted(p.permission for p in group.permissions)
                group.permissions = [GroupPermission(permission=p) for p in dict.fromkeys(spec.permissions)]
                details["permissions"] = {"before": before, "after": sorted(set(spec.permissions))}
            _keep_an_administrator(session, administrators)
            self.audit.record(session, caller, "group.update", "group", name, details=details)
            return self._describe_group(session, caller, group)

    def delete_group(self, caller: Caller, name: str) -> None:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            administrators = _active_administrators(session)
            group = find_group(session, name)
            session.delete(group)
            _keep_an_administrator(session, administrators)
            self.audit.record(session, caller, "group.delete", "group", name)

    def add_member(self, caller: Caller, name: str, login: str) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            group = find_group(session, name)
            _refused_hub_membership(group)
            user = find_user(session, login)
            if user not in group.members:
                group.members.append(user)
                self.audit.record(session, caller, "group.add_member", "group", name, details={"user": login})
            return self._describe_group(session, caller, group)

    def remove_member(self, caller: Caller, name: str, login: str) -> DescribeGroup:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            administrators = _active_administrators(session)
            group = find_group(session, name)
            _refused_hub_membership(group)
            user = find_user(session, login)
            if user not in group.members:
                raise NotFound(f"'{login}' is not a member of '{name}'.", field="user")
            group.members.remove(user)
            _keep_an_administrator(session, administrators)
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
                user = users.get(person.login)
                if user is not None and user.kind == "service":
                    self.log.warning(
                        "Not syncing the hub user %r: a Himalia service account has that login", person.login
                    )
                    continue
                seen.add(person.login)
                if user is None:
                    user = User(login=person.login, display_name=person.login, source="hub", groups=[])
                    session.add(user)
                    self.audit.record(session, HUB_SYNC, "user.create", "user", person.login, details={"source": "hub"})
                    changes.append(f"created user {person.login}")
                elif not user.active and user.source == "hub" and user.deactivated_by == HUB_SYNC.login:
                    user.active, user.deactivated_by = True, None
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
                    if user.source == "hub" and user.kind != "service" and user.active and user.login not in seen:
                        revoked = _deactivate(session, user, HUB_SYNC)
                        self.audit.record(
                            session,
                            HUB_SYNC,
                            "user.update",
                            "user",
                            user.login,
                            details={"active": False, "tokens_revoked": revoked},
                        )
                        changes.append(f"deactivated {user.login} (gone from the hub)")
        return changes

    def ensure_service_account(self, login: str, group: str, permissions: list[GlobalPermission], role: str) -> None:
        """A service account in a group holding ``permissions`` (the hub's own identity here), which
        this process depends on (``role`` says for what): it cannot be deactivated while it runs.

        A person's login is refused: making them a service account would hand them its rights.
        """
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
            if account is not None and account.kind != "service":
                raise Conflict(
                    f"'{login}' is a person's login here, not a service account: configure another one.",
                    field="service_account",
                )
            if account is None:
                account = User(login=login, display_name=login, kind="service", groups=[])
                session.add(account)
                self.audit.record(session, operator, "user.create", "user", login, details={"kind": "service"})
            if account.source == "hub":
                # Mirrored over by the hub sync of an older version: it is no hub person's.
                account.source = "local"
                for taken in [g for g in account.groups if g.source == "hub"]:
                    account.groups.remove(taken)
                    self.audit.record(
                        session, operator, "group.remove_member", "group", taken.name, details={"user": login}
                    )
            if holder not in account.groups:
                account.groups.append(holder)
        self.essential_accounts[login] = role
