"""What every service shares: the store, the audit trail and a logger."""

import logging
from typing import TYPE_CHECKING

from himalia.store.db import Database

if TYPE_CHECKING:
    from himalia.identity.audit import AuditTrail


class Service:
    def __init__(self, db: Database, audit: "AuditTrail", log: logging.Logger) -> None:
        self.db = db
        self.audit = audit
        self.log = log
