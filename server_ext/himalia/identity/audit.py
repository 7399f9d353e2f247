"""The append-only, hash-chained audit trail.

Every entry carries an HMAC of its content and of the previous entry's HMAC. The key lives
outside the database (like the secret keys), so that someone who can write to the database
cannot recompute a consistent chain after editing, deleting or inserting an entry.
``AuditChainHead`` holds the last link: appenders lock it, which serializes them. It is sealed
with the key and copied to a file outside the database (``audit_head``), so that ``verify``
catches a deleted tail even when the head row was moved back with it.

Entries are dated by the database's clock, read once the head is locked: one clock for every
process, in the order of the chain, so that ``verify`` can flag time running backwards.
"""

import csv
import hashlib
import hmac
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, event, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from himalia.core.errors import InvalidInput
from himalia.core.permissions import GlobalPermission
from himalia.identity.audit_head import ROW_LABEL, HeadFile, HeadFileUnreadable, SealedHead, head_seal
from himalia.identity.caller import Caller
from himalia.store.db import Database
from himalia.store.orm import AuditChainHead, AuditEntry, ScenarioRun, UTCDateTime
from himalia.wire.audit import AuditFacet, AuditFacets
from himalia.wire.common import Page
from himalia.wire.identity import AuditVerification, DescribeAuditEntry

GENESIS = "0" * 64
#: The most values of each facet (actors, actions...) offered to filter by.
FACET_LIMIT = 200
#: The entry recording that the head disagreed with its seal or the head file, and who writes it.
HEAD_MISMATCH = "audit.head_mismatch"
AUDIT_ACTOR = Caller.system("audit")
#: What a session keeps until its transaction ends: the head it appended, a disagreement it recorded.
_PENDING_HEAD = "himalia.identity.audit.pending_head"
_PENDING_FINDING = "himalia.identity.audit.pending_finding"
_HEAD_CHECKED = "himalia.identity.audit.head_checked"
_LISTENING = "himalia.identity.audit.listening"
REDACTED = "[redacted]"
_SECRET_KEY_NAME = re.compile(
    r"(^|[_-])(pass(word|wd)?|secrets?|token|api[_-]?key|private[_-]?key|credentials?)$", re.I
)


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys (``password``, ``db_token``...), however deeply nested."""
    if isinstance(value, dict):
        return {key: REDACTED if _SECRET_KEY_NAME.search(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _canonical_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class database_clock(FunctionElement[datetime]):
    """The database server's current UTC time when the statement runs (not the transaction's start)."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(database_clock)
def _clock_default(_element: database_clock, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(database_clock, "postgresql")
def _clock_postgresql(_element: database_clock, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "clock_timestamp()"


@compiles(database_clock, "sqlite")
def _clock_sqlite(_element: database_clock, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"  # UTC, to the millisecond


@dataclass(frozen=True)
class AuditProblem:
    """One thing ``verify`` found: about entry ``seq``, or about the chain's head when ``seq`` is None."""

    seq: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason if self.seq is None else f"entry {self.seq}: {self.reason}"


def _missing_tail(chain_end: int, claimed_end: int, witness: str) -> AuditProblem:
    """The entries after ``chain_end`` that ``witness`` says were written."""
    reason = "missing (deleted)"
    if claimed_end > chain_end + 1:
        reason += f", as are the entries up to {claimed_end}"
    return AuditProblem(chain_end + 1, f"{reason}: {witness} says the chain ended at entry {claimed_end}")


@dataclass(frozen=True)
class AuditRecord:
    """One entry to append with ``AuditTrail.record_many``: what ``record`` takes after the caller."""

    action: str
    object_type: str
    object_id: str
    project_key: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    project: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.actor:
            query = query.where(AuditEntry.actor == self.actor)
        if self.action:
            # "project" matches project.create, project.grant...; "project.create" only itself.
            prefix = AuditEntry.action.startswith(self.action + ".", autoescape=True)  # '%' and '_' are literal
            query = query.where((AuditEntry.action == self.action) | prefix)
        if self.project:
            query = query.where(AuditEntry.project_key == self.project)
        if self.object_type:
            query = query.where(AuditEntry.object_type == self.object_type)
        if self.object_id:
            query = query.where(AuditEntry.object_id == self.object_id)
        if self.since:
            query = query.where(AuditEntry.created_at >= self.since)
        if self.until:
            query = query.where(AuditEntry.created_at < self.until)
        return query


EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_FIELDS = (
    "seq",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "project_key",
    "client_address",
    "details",
    "hash",
)


def entry_as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "created_at": _canonical_time(entry.created_at),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "project_key": entry.project_key,
        "client_address": entry.client_address,
        "details": entry.details,
        "hash": entry.hash,
    }


class AuditTrail:
    """Appends to the chain and verifies it; ``head_file`` is the head's copy outside the database."""

    def __init__(self, key: bytes, head_file: Path | None = None, log: logging.Logger | None = None) -> None:
        self._key = key
        self._log = log or logging.getLogger(__name__)
        self.head_file = HeadFile(head_file, key) if head_file is not None else None
        #: Disagreements already appended by this process: one entry each, even if the file stays wrong.
        self._recorded_findings: set[str] = set()

    def _digest(self, prev_hash: str, entry: AuditEntry) -> str:
        content = json.dumps(
            [
                entry.seq,
                _canonical_time(entry.created_at),
                entry.actor,
                entry.action,
                entry.object_type,
                entry.object_id,
                entry.project_key,
                entry.client_address,
                entry.details,
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hmac.new(self._key, (prev_hash + content).encode(), hashlib.sha256).hexdigest()

    def record(
        self,
        session: Session,
        caller: Caller,
        action: str,
        object_type: str,
        object_id: str,
        *,
        project_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry in the caller's transaction: it lands if and only if the change does.

        What a scenario run does (its engine, its kernels with the run's token) is recorded as the
        run-as user, with ``run_context`` naming the run and who requested it.
        """
        [entry] = self.record_many(session, caller, [AuditRecord(action, object_type, object_id, project_key, details)])
        return entry

    def record_many(self, session: Session, caller: Caller, records: Sequence["AuditRecord"]) -> list[AuditEntry]:
        """Append ``records`` in order, as ``record`` appends one, with the head locked and read and
        the clock read once for all of them (they share a date): a batch of 250 fires costs the
        statements of one entry, and the chain is the one appending them one by one would make."""
        if not records:
            return []
        head = self._checked_head(session)
        run_context = self._run_context(session, caller)
        created_at = session.scalar(select(database_clock()))  # after the lock: in the chain's order
        entries = []
        for item in records:
            recorded = redact(item.details or {})
            if run_context is not None:
                recorded = {**recorded, "run_context": run_context}
            entries.append(
                self._append(
                    session,
                    head,
                    caller,
                    item.action,
                    item.object_type,
                    item.object_id,
                    item.project_key,
                    recorded,
                    created_at,
                )
            )
        return entries

    def _append(
        self,
        session: Session,
        head: AuditChainHead,
        caller: Caller,
        action: str,
        object_type: str,
        object_id: str,
        project_key: str | None,
        details: dict[str, Any],
        created_at: datetime | None = None,
    ) -> AuditEntry:
        """Chain an entry to ``head`` and move the head on; dated ``created_at``, else by the clock now."""
        entry = AuditEntry(
            seq=head.seq + 1,
            # after the lock: in the chain's order
            created_at=created_at if created_at is not None else session.scalar(select(database_clock())),
            actor=caller.login,
            action=action,
            object_type=object_type,
            object_id=object_id,
            project_key=project_key,
            client_address=caller.client_address,
            details=details,
            prev_hash=head.hash,
        )
        entry.hash = self._digest(head.hash, entry)
        session.add(entry)
        head.seq, head.hash = entry.seq, entry.hash
        head.seal = head_seal(self._key, ROW_LABEL, entry.seq, entry.hash)
        session.info[_PENDING_HEAD] = (entry.seq, entry.hash)
        return entry

    @staticmethod
    def _run_context(session: Session, caller: Caller) -> dict[str, Any] | None:
        """The run ``caller`` acts for: its engine's caller names it, its kernels hold its token."""
        query = select(ScenarioRun.id, ScenarioRun.requested_by)
        if caller.run_id is not None:
            query = query.where(ScenarioRun.id == caller.run_id)
        elif caller.token_id is not None and caller.project_scope is not None:  # run tokens are project-scoped
            query = query.where(ScenarioRun.token_id == caller.token_id)
        else:
            return None
        row = session.execute(query).first()
        return {"run": row.id, "requested_by": row.requested_by} if row is not None else None

    # -- the head's witnesses ---------------------------------------------------------------------

    def open_head(self, session: Session) -> None:
        """At start: seal a head written before seals existed, check it, bring the head file up to it.

        Every start seals an unsealed head (a new store, or one written before seals existed)
        unless there is a head file: with one, the file is what tells whether the head was moved
        back, and the missing seal is appended to the chain as a disagreement.
        """
        head = session.get(AuditChainHead, 1, with_for_update=True)
        if head is None:
            return
        if head.seal is None and (self.head_file is None or not self.head_file.path.exists()):
            head.seal = head_seal(self._key, ROW_LABEL, head.seq, head.hash)
        self._checked_head(session)
        if self._head_row_problem(head) is None:
            session.info.setdefault(_PENDING_HEAD, (head.seq, head.hash))

    def _checked_head(self, session: Session) -> AuditChainHead:
        """The locked head row, checked against its seal and the head file once per transaction.

        A disagreement (the tail was deleted and the head moved back) is appended to the chain
        as a ``HEAD_MISMATCH`` entry before anything else: appending would otherwise re-seal the
        head and move the file on, and the evidence would be gone. ``verify`` reports these
        entries for ever; the head file is then rewritten to the new head.
        """
        head = session.get(AuditChainHead, 1, with_for_update=True)
        assert head is not None, "the initial migration seeds the chain head"
        if session.info.get(_HEAD_CHECKED):
            return head
        session.info[_HEAD_CHECKED] = True
        if not session.info.get(_LISTENING):
            session.info[_LISTENING] = True
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_soft_rollback", _forget_pending_head)
        finding = self._head_row_problem(head) or self._head_file_disagreement(session, head)
        if finding is not None and finding not in self._recorded_findings:
            self._log.error("The audit chain's head disagrees with its witnesses: %s", finding)
            self._append(session, head, AUDIT_ACTOR, HEAD_MISMATCH, "audit", "head", None, {"found": finding})
            session.info[_PENDING_FINDING] = finding
        return head

    def _head_row_problem(self, head: AuditChainHead) -> str | None:
        if head.seal is None:
            return f"the chain head row (at entry {head.seq}) was not sealed"
        if not SealedHead(head.seq, head.hash, head.seal).is_sealed_by(self._key, ROW_LABEL):
            return f"the chain head row (at entry {head.seq}) had a seal that did not match it"
        return None

    def _head_file_disagreement(self, session: Session, head: AuditChainHead) -> str | None:
        """Why the head file does not name an entry of the chain in the database, if it does not."""
        if self.head_file is None:
            return None
        where = f"the head file {self.head_file.path}"
        try:
            external = self.head_file.read()
        except (HeadFileUnreadable, OSError) as error:
            return f"{where} was unreadable ({error})"
        if external is None:
            return None
        if not self.head_file.is_valid(external):
            return f"{where} (at entry {external.seq}) had a seal that did not match it"
        if external.seq > head.seq:
            return f"{where} said the chain ended at entry {external.seq}, after the database's head"
        there = head.hash if external.seq == head.seq else GENESIS
        if 0 < external.seq < head.seq:
            there = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == external.seq)) or ""
        if there != external.hash:
            return f"entry {external.seq} was not the one {where} recorded"
        return None

    def _after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint was released; the transaction goes on
        session.info.pop(_HEAD_CHECKED, None)
        finding = session.info.pop(_PENDING_FINDING, None)
        pending = session.info.pop(_PENDING_HEAD, None)
        if finding is not None:
            self._recorded_findings.add(finding)
        if pending is None or self.head_file is None:
            return
        try:
            self.head_file.advance(*pending, replace_disagreeing=finding is not None)
        except OSError as error:
            # The change is committed: failing now would report a write that happened as failed.
            # The file stays behind the chain, which verify accepts, until the next commit.
            self._log.error("Cannot write the audit head file %s: %s", self.head_file.path, error)

    def verify(self, session: Session) -> tuple[int, list[AuditProblem]]:
        """Walk the whole chain; return how many entries were read and every problem found.

        The chain, the head row and the head file must agree; each problem names the witness
        that disagrees, so that a reader can tell a deleted tail from a rewritten head.
        """
        if session.get_bind().dialect.name == "postgresql":
            # One snapshot for the entries and the head row, however many commits land meanwhile.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        problems: list[AuditProblem] = []
        external, external_problem = self._read_head_file()  # before the snapshot: never ahead of it
        hash_at_external: str | None = GENESIS if external is not None and external.seq == 0 else None
        expected_seq, prev_hash, count = 1, GENESIS, 0
        previous_time: datetime | None = None
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000))
        for entry in entries:
            count += 1
            if previous_time is not None and entry.created_at < previous_time:
                problems.append(
                    AuditProblem(
                        entry.seq,
                        f"dated {_canonical_time(entry.created_at)}, before the entry preceding it "
                        f"({_canonical_time(previous_time)}): time ran backwards (back-dated or inserted)",
                    )
                )
            previous_time = entry.created_at
            if external is not None and entry.seq == external.seq:
                hash_at_external = entry.hash
            if entry.action == HEAD_MISMATCH and entry.actor == AUDIT_ACTOR.login:
                found = entry.details.get("found", "")
                problems.append(AuditProblem(entry.seq, f"records that when it was appended {found}"))
            if entry.seq > expected_seq:
                reason = "missing (deleted)"
                if entry.seq > expected_seq + 1:
                    reason += f", as are the entries up to {entry.seq - 1}"
                problems.append(AuditProblem(expected_seq, reason))
            if entry.prev_hash != prev_hash:
                problems.append(
                    AuditProblem(
                        entry.seq,
                        "does not follow its predecessor (inserted, or a neighbour was deleted)",
                    )
                )
            if not hmac.compare_digest(self._digest(entry.prev_hash, entry), entry.hash):
                problems.append(AuditProblem(entry.seq, "content does not match its hash (edited or forged)"))
            expected_seq, prev_hash = entry.seq + 1, entry.hash
        chain_end = expected_seq - 1
        now = session.scalar(select(database_clock()))
        if previous_time is not None and now is not None and previous_time > now:
            problems.append(
                AuditProblem(
                    chain_end,
                    f"dated {_canonical_time(previous_time)}, after the database's current time "
                    f"({_canonical_time(now)}): time ran backwards",
                )
            )
        problems += self._check_head_row(session.get(AuditChainHead, 1), chain_end, prev_hash)
        if self.head_file is not None:
            problems += self._check_head_file(external, external_problem, chain_end, hash_at_external)
        return count, problems

    def _check_head_row(self, head: AuditChainHead | None, chain_end: int, last_hash: str) -> list[AuditProblem]:
        if head is None:
            return [AuditProblem(None, "the chain head row is missing (deleted)")]
        problems = []
        if head.seal is None:
            problems.append(AuditProblem(None, "the chain head row is not sealed (its seal was removed)"))
        elif not SealedHead(head.seq, head.hash, head.seal).is_sealed_by(self._key, ROW_LABEL):
            problems.append(
                AuditProblem(None, "the chain head row's seal does not match it (rewritten without the audit key)")
            )
        if head.seq > chain_end:
            problems.append(_missing_tail(chain_end, head.seq, "the chain head row"))
        elif head.seq < chain_end:
            problems.append(AuditProblem(chain_end, "is not in the recorded chain (inserted after its end)"))
        elif head.hash != last_hash:
            problems.append(AuditProblem(chain_end, "is not the entry the chain head row recorded (replaced)"))
        return problems

    def _read_head_file(self) -> tuple[SealedHead | None, str | None]:
        """The head file's head, or why there is none to compare with."""
        if self.head_file is None:
            return None, None
        where = f"the head file {self.head_file.path}"
        try:
            external = self.head_file.read()
        except HeadFileUnreadable as error:
            return None, f"{where} is unreadable ({error})"
        except OSError as error:
            return None, f"{where} cannot be read ({error.strerror})"
        if external is None:
            return None, None
        if not self.head_file.is_valid(external):
            return None, f"{where} has a seal that does not match it (rewritten without the audit key)"
        return external, None

    def _check_head_file(
        self, external: SealedHead | None, unusable: str | None, chain_end: int, hash_at_external: str | None
    ) -> list[AuditProblem]:
        assert self.head_file is not None
        where = f"the head file {self.head_file.path}"
        if unusable is not None:
            return [AuditProblem(None, unusable)]
        if external is None:
            # Every start writes the file, and every commit: gone, it was removed since.
            missing = f"{where} is missing (removed): a deleted tail cannot be ruled out"
            return [AuditProblem(None, missing)] if chain_end > 0 else []
        if external.seq > chain_end:
            return [_missing_tail(chain_end, external.seq, where)]
        if hash_at_external != external.hash:
            # Behind the chain is fine (a crash between a commit and the file write), elsewhere not.
            return [AuditProblem(external.seq, f"is not the entry {where} recorded (the chain was rewritten)")]
        return []

    @staticmethod
    def page(session: Session, audit_filter: AuditFilter, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        total = session.scalar(audit_filter.apply(select(func.count()).select_from(AuditEntry)))
        rows = session.scalars(
            audit_filter.apply(select(AuditEntry)).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
        ).all()
        return list(rows), total or 0

    @staticmethod
    def facet(session: Session, column: Any) -> AuditFacet:
        """The distinct non-empty values of ``column``, sorted, at most ``FACET_LIMIT`` of them."""
        query = select(column).where(column.is_not(None), column != "").distinct().order_by(column)
        values = list(session.scalars(query.limit(FACET_LIMIT + 1)))
        return AuditFacet(values=values[:FACET_LIMIT], complete=len(values) <= FACET_LIMIT)

    @staticmethod
    def iterate(session: Session, audit_filter: AuditFilter) -> Iterator[AuditEntry]:
        yield from session.scalars(
            audit_filter.apply(select(AuditEntry)).order_by(AuditEntry.seq).execution_options(yield_per=1000)
        )


def _forget_pending_head(session: Session, previous: SessionTransaction) -> None:
    """A rolled-back transaction's entries never were: its head must not reach the head file."""
    if previous.parent is None:
        for name in (_PENDING_HEAD, _PENDING_FINDING, _HEAD_CHECKED):
            session.info.pop(name, None)


def export_lines(entries: Iterable[AuditEntry], fmt: str) -> Iterator[str]:
    """Serialize entries as JSON lines or CSV (details as a JSON cell), one line at a time."""
    if fmt == "jsonl":
        for entry in entries:
            yield json.dumps(entry_as_dict(entry), sort_keys=True) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for entry in entries:
        row = entry_as_dict(entry)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        writer.writerow([row[name] if row[name] is not None else "" for name in EXPORT_FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


class AuditService:
    """The audit trail as people read it: filtered pages, exports and verification.

    Not a ``Service``: it reads the whole trail, where services only append to it.
    """

    def __init__(self, db: Database, trail: AuditTrail, log: logging.Logger) -> None:
        self.db = db
        self.trail = trail
        self.log = log

    def _check(self, caller: Caller) -> None:
        caller.require(GlobalPermission.VIEW_AUDIT)

    def list_entries(
        self, caller: Caller, audit_filter: AuditFilter, limit: int, offset: int
    ) -> Page[DescribeAuditEntry]:
        self._check(caller)
        with self.db.read() as session:
            entries, total = self.trail.page(session, audit_filter, limit, offset)
            items = [DescribeAuditEntry.model_validate(e, from_attributes=True) for e in entries]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def facets(self, caller: Caller) -> AuditFacets:
        """What the trail holds to filter by, so that a reader picks a value rather than guesses one."""
        self._check(caller)
        with self.db.read() as session:
            return AuditFacets(
                actors=self.trail.facet(session, AuditEntry.actor),
                actions=self.trail.facet(session, AuditEntry.action),
                object_types=self.trail.facet(session, AuditEntry.object_type),
                projects=self.trail.facet(session, AuditEntry.project_key),
            )

    def export(self, caller: Caller, audit_filter: AuditFilter, fmt: str) -> Iterator[str]:
        """Lines of the export, produced while the store is read (constant memory)."""
        self._check(caller)
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(f"Export as one of {', '.join(EXPORT_FORMATS)}.", field="format")
        with self.db.read() as session:
            yield from export_lines(self.trail.iterate(session, audit_filter), fmt)

    def verify(self, caller: Caller) -> AuditVerification:
        self._check(caller)
        with self.db.read() as session:
            count, problems = self.trail.verify(session)
        return AuditVerification(entries=count, ok=not problems, problems=[str(p) for p in problems])
