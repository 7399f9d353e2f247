"""API tokens for people, service accounts, CI systems and (later) scheduled runs.

A token is shown once; the store keeps its SHA-256 digest (tokens are 256 random bits, so an
unsalted digest is as good as a password hash and allows an indexed lookup) and an 8-character
prefix to recognise it in lists. A token may expire and may be scoped to one project.
"""

import hashlib
import logging
import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from himalia.core.errors import Forbidden, NotFound, Unauthenticated
from himalia.core.permissions import GlobalPermission
from himalia.identity.caller import Caller, load_caller
from himalia.identity.projects import require_project
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import describe_token, find_user, is_run_token, mark_seen, stale
from himalia.store.db import Database, paginate
from himalia.store.orm import ApiToken, User, utcnow
from himalia.wire.common import Page
from himalia.wire.identity import CreatedToken, CreateToken, DescribeToken

TOKEN_PREFIX = "hml_"
#: The most token callers kept between requests (beyond, the oldest half is dropped).
MAX_RECENT_TOKENS = 4096


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token(
    session: Session, user_id: int, name: str, project_id: int | None, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """A new token row and its value, the only time the value exists: the store keeps its digest."""
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user_id,
        name=name,
        prefix=value[: len(TOKEN_PREFIX) + 4],
        digest=digest(value),
        project_id=project_id,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, value


def delete_token(session: Session, token_id: int | None) -> None:
    """Remove a token (a run's, when the run ends); ``None`` is no token."""
    if token_id is not None:
        session.execute(delete(ApiToken).where(ApiToken.id == token_id))


class TokenService(Service):
    """Tokens, and the caller each stands for. A caller found is reused for ``recent_seconds``
    without reading the store: until this process commits any write (a revocation, a deactivation,
    a group change here ends every reuse at once) and, for what another process changes in the
    same store, at most that long (JupyterHub's HubAuth keeps its answers for minutes)."""

    def __init__(self, db: Database, audit: AuditRecorder, log: logging.Logger, recent_seconds: float) -> None:
        super().__init__(db, audit, log)
        self.recent_seconds = recent_seconds
        #: Token digest -> (monotonic deadline, ``db.commits`` when read, caller).
        self._recent: dict[str, tuple[float, int, Caller]] = {}

    def create_token(self, caller: Caller, spec: CreateToken) -> CreatedToken:
        if caller.project_scope is not None:
            # Else a run's short-lived token could mint a lasting one.
            raise Forbidden("A project-scoped token cannot create tokens.")
        with self.db.write() as session:
            if spec.user is None or spec.user == caller.login:
                if caller.user_id is None:
                    raise Forbidden("The operator has no account: name the user the token is for.")
                user = session.get_one(User, caller.user_id)
            else:
                caller.require(GlobalPermission.ADMIN)
                user = find_user(session, spec.user)
            if not user.active:
                raise Forbidden(f"'{user.login}' is deactivated.")
            project = None
            if spec.project is not None:
                # The token's owner must see the project; so must whoever asks for the token.
                require_project(session, caller, spec.project)
                project, _ = require_project(session, load_caller(session, user), spec.project)
            expires_at = utcnow() + timedelta(days=spec.expires_in_days) if spec.expires_in_days else None
            token, value = mint_token(session, user.id, spec.name, project.id if project else None, expires_at)
            self.audit.record(
                session,
                caller,
                "token.create",
                "token",
                str(token.id),
                project_key=spec.project,
                details={
                    "user": user.login,
                    "name": spec.name,
                    "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                },
            )
            return CreatedToken(**describe_token(token).model_dump(), token=value)

    def list_tokens(self, caller: Caller, limit: int, offset: int, user: str | None = None) -> Page[DescribeToken]:
        with self.db.read() as session:
            query = (
                select(ApiToken).options(joinedload(ApiToken.user), joinedload(ApiToken.project)).order_by(ApiToken.id)
            )
            if user is not None and user != caller.login:
                caller.require(GlobalPermission.ADMIN)
                query = query.where(ApiToken.user_id == find_user(session, user).id)
            elif user is not None or not caller.is_admin:
                query = query.where(ApiToken.user_id == caller.user_id)
            tokens, total = paginate(session, query, limit, offset)
            return Page(items=[describe_token(t) for t in tokens], total=total, limit=limit, offset=offset)

    def revoke_token(self, caller: Caller, token_id: int) -> None:
        with self.db.write() as session:
            token = session.get(ApiToken, token_id, options=[joinedload(ApiToken.user)])
            mine = token is not None and token.user_id == caller.user_id
            # A project-scoped token reaches only the tokens of its own project.
            in_scope = token is not None and caller.project_scope in (None, token.project_id)
            if token is None or not in_scope or not (mine or caller.is_admin):
                raise NotFound(f"There is no token {token_id}.")
            session.delete(token)
            self.audit.record(
                session,
                caller,
                "token.revoke",
                "token",
                str(token_id),
                details={"user": token.user.login},
            )

    def reused(self, value: str, client_address: str) -> Caller | None:
        """The caller ``authenticate`` found for this token, while it may be reused; no I/O, so
        that a host may ask on its event loop before handing ``authenticate`` to a thread."""
        recent = self._recent.get(digest(value))
        if recent is None or recent[0] <= time.monotonic() or recent[1] != self.db.commits:
            return None
        return replace(recent[2], client_address=client_address)

    def authenticate(self, value: str, client_address: str) -> Caller:
        """The caller a token stands for, or ``Unauthenticated`` with a reason that leaks nothing.

        The token's ``last_used_at`` and its person's ``last_seen_at`` are kept to the minute (a
        run's token is the run's use, not the person's), so most requests cost no write.
        """
        reused = self.reused(value, client_address)
        if reused is not None:
            return reused
        key, now = digest(value), time.monotonic()
        commits = self.db.commits  # before reading: a write committed meanwhile voids what is read
        with self.db.read() as session:
            token = self._lookup(session, key)
            caller = load_caller(
                session, token.user, client_address=client_address, token_id=token.id, project_scope=token.project_id
            )
            used_long_ago = stale(token.last_used_at)
            seen_long_ago = stale(token.user.last_seen_at) and not is_run_token(session, token.id)
        if used_long_ago or seen_long_ago:
            with self.db.write() as session:
                row = session.get(ApiToken, token.id)
                if row is not None and used_long_ago:
                    row.last_used_at = utcnow()
                if seen_long_ago:
                    mark_seen(session, token.user_id)
            return caller
        deadline = now + self.recent_seconds
        if token.expires_at is not None:
            deadline = min(deadline, now + (token.expires_at - utcnow()).total_seconds())
        if len(self._recent) >= MAX_RECENT_TOKENS:
            for old in list(self._recent)[: MAX_RECENT_TOKENS // 2]:
                self._recent.pop(old, None)
        self._recent[key] = (deadline, commits, caller)
        return caller

    @staticmethod
    def _lookup(session: Session, key: str) -> ApiToken:
        token = session.scalar(select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.digest == key))
        if token is None:
            raise Unauthenticated("Invalid token.")
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthenticated("This token has expired.")
        return token
