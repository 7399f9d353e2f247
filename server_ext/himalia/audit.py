"""The append-only, hash-chained audit trail.

Every entry carries an HMAC of its content and of the previous entry's HMAC. The key lives
outside the database (like the secret keys), so that someone who can write to the database
cannot recompute a consistent chain after editing, deleting or inserting an entry.
``AuditChainHead`` holds the last link: appenders lock it, which serializes them, and
``verify`` compares it to the last entry, which catches a deleted tail.
"""

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from .caller import Caller
from .errors import InvalidInput
from .models import AuditVerification, DescribeAuditEntry, Page
from .orm import AuditChainHead, AuditEntry, utcnow
from .permissions import GlobalPermission
from .service import Service

GENESIS = "0" * 64
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


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


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
            query = query.where((AuditEntry.action == self.action) | AuditEntry.action.startswith(self.action + "."))
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
    def __init__(self, key: bytes) -> None:
        self._key = key

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
        """Append an entry in the caller's transaction: it lands if and only if the change does."""
        head = session.get(AuditChainHead, 1, with_for_update=True)
        assert head is not None, "the initial migration seeds the chain head"
        entry = AuditEntry(
            seq=head.seq + 1,
            created_at=utcnow(),
            actor=caller.login,
            action=action,
            object_type=object_type,
            object_id=object_id,
            project_key=project_key,
            client_address=caller.client_address,
            details=redact(details or {}),
            prev_hash=head.hash,
        )
        entry.hash = self._digest(head.hash, entry)
        session.add(entry)
        head.seq, head.hash = entry.seq, entry.hash
        return entry

    def verify(self, session: Session) -> tuple[int, list[AuditProblem]]:
        """Walk the whole chain; return how many entries were read and every problem found."""
        problems: list[AuditProblem] = []
        expected_seq, prev_hash, count = 1, GENESIS, 0
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000))
        for entry in entries:
            count += 1
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
        head = session.get(AuditChainHead, 1)
        head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
        if head_seq != expected_seq - 1 or head_hash != prev_hash:
            if head_seq > expected_seq - 1:
                problems.append(AuditProblem(expected_seq, f"missing (deleted): the chain ended at entry {head_seq}"))
            else:
                problems.append(AuditProblem(expected_seq - 1, "is not in the recorded chain (inserted after its end)"))
        return count, problems

    @staticmethod
    def page(session: Session, audit_filter: AuditFilter, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
        total = session.scalar(audit_filter.apply(select(func.count()).select_from(AuditEntry)))
        rows = session.scalars(
            audit_filter.apply(select(AuditEntry)).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
        ).all()
        return list(rows), total or 0

    @staticmethod
    def iterate(session: Session, audit_filter: AuditFilter) -> Iterator[AuditEntry]:
        yield from session.scalars(
            audit_filter.apply(select(AuditEntry)).order_by(AuditEntry.seq).execution_options(yield_per=1000)
        )


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


class AuditService(Service):
    """The audit trail as people read it: filtered pages, exports and verification."""

    def _check(self, caller: Caller) -> None:
        caller.require(GlobalPermission.VIEW_AUDIT)

    def list_entries(
        self, caller: Caller, audit_filter: AuditFilter, limit: int, offset: int
    ) -> Page[DescribeAuditEntry]:
        self._check(caller)
        with self.db.read() as session:
            entries, total = self.audit.page(session, audit_filter, limit, offset)
            items = [DescribeAuditEntry.model_validate(entry_as_dict(e)) for e in entries]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def export(self, caller: Caller, audit_filter: AuditFilter, fmt: str) -> Iterator[str]:
        """Lines of the export, produced while the store is read (constant memory)."""
        self._check(caller)
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(f"Export as one of {', '.join(EXPORT_FORMATS)}.", field="format")
        with self.db.read() as session:
            yield from export_lines(self.audit.iterate(session, audit_filter), fmt)

    def verify(self, caller: Caller) -> AuditVerification:
        self._check(caller)
        with self.db.read() as session:
            count, problems = self.audit.verify(session)
        return AuditVerification(entries=count, ok=not problems, problems=[str(p) for p in problems])
