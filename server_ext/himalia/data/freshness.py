"""Freshness of the data itself: what a dataset declares, the probe that measures it, its metrics.

A dataset declares ``freshness: {column: event_time, max_age: 26h}``. Computing its metrics then
also asks the source for the newest value of ``column`` (``newest:column``, one more aggregate in
the probes' single statement) or, for a files dataset without a column, the newest modification
time of its files (``last_modified``), and keeps two metrics: ``freshness.newest`` (an ISO
timestamp in UTC, ``None`` when the table has no value) and ``freshness.age_seconds`` (its age
when computed). The ``freshness`` check judges the age at check time against ``max_age``.
"""

from datetime import datetime
from typing import Any

from himalia.core.errors import InvalidInput
from himalia.data.probes import Probe
from himalia.wire.data import FreshnessSpec

#: The newest value, as an ISO timestamp in UTC.
NEWEST = "freshness.newest"
#: Its age in seconds when it was computed.
AGE_SECONDS = "freshness.age_seconds"
METRICS = (NEWEST, AGE_SECONDS)


def check_declaration(
    freshness: FreshnessSpec, kind: str, columns: list[dict[str, str]] | None, *, field: str = "freshness"
) -> None:
    """Refuse a declaration the dataset cannot answer: no column for a table or query, or one it lacks."""
    if freshness.column is None:
        if kind != "files":
            raise InvalidInput(
                f"{field}.column: a {kind} dataset names the timestamp column whose newest value tells its age.",
                field=f"{field}.column",
            )
        return
    if columns is not None and freshness.column not in {c["name"] for c in columns}:
        known = ", ".join(c["name"] for c in columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise InvalidInput(
            f"{field}.column: the dataset has no column '{freshness.column}' (its columns: {known}).",
            field=f"{field}.column",
        )


def probe_of(freshness: dict[str, Any]) -> Probe:
    """The probe that measures a stored declaration."""
    column = freshness.get("column")
    return Probe("newest", column) if column else Probe("last_modified")


def metrics_of(newest: str | None, computed_at: datetime) -> dict[str, Any]:
    """The two freshness metrics from the probe's answer."""
    age = None if newest is None else (computed_at - datetime.fromisoformat(newest)).total_seconds()
    return {NEWEST: newest, AGE_SECONDS: age}
