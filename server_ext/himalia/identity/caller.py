"""Who is calling: the identity every service verb receives and checks.

A caller is resolved once per request (from a token, or from the Jupyter server's own user in
standalone mode) and carries everything the permission checks need, so that no check has to
query the store again for the caller's groups.
"""

from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from himalia.core.errors import Forbidden, Unauthenticated, ask_for
from himalia.core.permissions import GlobalPermission
from himalia.store.orm import GroupMember, GroupPermission, User


@dataclass(frozen=True)
class Caller:
    login: str
    user_id: int | None
    global_permissions: frozenset[str] = frozenset()
    group_ids: frozenset[int] = frozenset()
    #: A project-scoped token sees only this project and holds no global permission there.
    project_scope: int | None = None
    client_address: str = ""
    kind: str = "user"
    token_id: int | None = field(default=None, compare=False)
    #: The scenario run this caller acts for (its engine); a run's kernels are known by ``token_id``.
    run_id: int | None = field(default=None, compare=False)

    @classmethod
    def operator(cls, name: str = "operator", client_address: str = "cli") -> "Caller":
        """Whoever runs the CLI on the control plane's own machine: full rights, no user row."""
        return cls(
            login=name,
            user_id=None,
            global_permissions=frozenset({GlobalPermission.ADMIN}),
            client_address=client_address,
            kind="operator",
        )

    @classmethod
    def system(cls, component: str) -> "Caller":
        """The control plane acting on its own (a firing, a recovery), as the audit trail names it.

        ``system:<component>`` cannot be a person's login (logins have no colon) and holds no rights.
        """
        return cls(login=f"system:{component}", user_id=None, client_address=component, kind="system")

    @property
    def effective_global_permissions(self) -> frozenset[str]:
        if self.project_scope is not None:
            return frozenset()
        if GlobalPermission.ADMIN in self.global_permissions:
            return frozenset(GlobalPermission)
        return self.global_permissions

    @property
    def is_admin(self) -> bool:
        return GlobalPermission.ADMIN in self.effective_global_permissions

    @property
    def sees_every_project(self) -> bool:
        """An administrator's project-scoped token still holds everything on its one project."""
        return GlobalPermission.ADMIN in self.global_permissions

    def has(self, permission: GlobalPermission) -> bool:
        return permission in self.effective_global_permissions

    def require(self, permission: GlobalPermission) -> None:
        if not self.has(permission):
            raise Forbidden(
                f"{self.login} does not hold the global permission '{permission}': {ask_for('it', [], '')}."
            )

    def at(self, client_address: str) -> "Caller":
        return replace(self, client_address=client_address)


def load_caller(session: Session, user: User, **extra: object) -> Caller:
    """The caller for ``user``: its groups and the global permissions they grant."""
    if not user.active:
        raise Unauthenticated("This account is deactivated.")
    rows = session.execute(
        select(GroupMember.group_id, GroupPermission.permission)
        .outerjoin(GroupPermission, GroupPermission.group_id == GroupMember.group_id)
        .where(GroupMember.user_id == user.id)
    ).all()
    caller = Caller(
        login=user.login,
        user_id=user.id,
        global_permissions=frozenset(p for _, p in rows if p is not None),
        group_ids=frozenset(g for g, _ in rows),
        kind=user.kind,
    )
    return replace(caller, **extra) if extra else caller  # type: ignore[arg-type]
