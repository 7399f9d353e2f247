"""When a scheduler was alive: one row per start, its beat moved forward while it runs.

A fire time outside every interval (with a beat's slack) is one no scheduler could fire: the
control plane was down. The board tells those from fires a running scheduler held back.
"""

from datetime import datetime, timedelta

from sqlalchemy import update

from himalia.store.db import Database
from himalia.store.orm import SchedulerUptime

#: How often a running scheduler moves its beat; an interval ends at its last beat plus this.
BEAT_INTERVAL = timedelta(seconds=60)


class UptimeLog:
    """This process's scheduler intervals in the store."""

    def __init__(self, db: Database, process: str) -> None:
        self.db = db
        self.process = process
        self._row: int | None = None
        self._beat_at: datetime | None = None

    def begin(self, now: datetime) -> None:
        with self.db.write() as session:
            row = SchedulerUptime(process=self.process, started_at=now, beat_at=now)
            session.add(row)
            session.flush()
            self._row, self._beat_at = row.id, now

    def beat(self, now: datetime) -> None:
        """Move the beat to ``now`` if the last one is a beat interval old (cheap to call at every wake)."""
        if self._row is None or (self._beat_at is not None and now - self._beat_at < BEAT_INTERVAL):
            return
        with self.db.write() as session:
            session.execute(update(SchedulerUptime).where(SchedulerUptime.id == self._row).values(beat_at=now))
        self._beat_at = now
