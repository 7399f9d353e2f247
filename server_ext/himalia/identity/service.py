"""What every service shares: the store, the audit trail it records its changes in, and a logger."""

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from himalia.identity.audit import AuditRecord
from himalia.identity.caller import Caller
from himalia.store.db import Database
from himalia.store.orm import AuditEntry


class AuditRecorder(Protocol):
    """The one thing services need of the audit trail (``himalia.identity.audit.AuditTrail``): appending."""

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
    ) -> AuditEntry: ...

    def record_many(self, session: Session, caller: Caller, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append several entries as ``caller``, in order, reading the chain's head once."""
        ...


class Service:
    def __init__(self, db: Database, audit: AuditRecorder, log: logging.Logger) -> None:
        self.db = db
        self.audit = audit
        self.log = log
