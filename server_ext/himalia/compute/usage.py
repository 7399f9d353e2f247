"""Usage totals: hours and cost by month, tier, person and project, summed by the store.

A usage row (``TierUsage``) runs from its start to its end, or until now while it is open. Totals
cover a window (``since``/``until``, at most ``MAX_WINDOW``) cut into calendar months in UTC; a row
spanning a month boundary counts in each month for the part it spent there, and its cost is those
hours times the row's own ``cost_per_hour`` (the tier's price when it started).

The sums are computed in SQL, one ``SELECT … GROUP BY`` per month joined by ``UNION ALL`` in one
statement: the answer's size is that of the groups, never that of the rows, so a year of
minute-by-minute runs costs the store a scan and the control plane nothing. The only expressions
that differ between SQLite and PostgreSQL are the seconds between two instants (``julianday`` and
``EXTRACT(EPOCH …)``), compiled per dialect below; the clipping to a month is a portable ``CASE``.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, FunctionElement, Select, case, func, literal, or_, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.compiler import SQLCompiler

from himalia.core.errors import Forbidden, InvalidInput
from himalia.core.permissions import GlobalPermission
from himalia.identity.caller import Caller
from himalia.identity.projects import ALL_PROJECT_PERMISSIONS, projects_granting
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import find_user
from himalia.store.db import Database
from himalia.store.orm import Project, Tier, TierUsage, User, UTCDateTime
from himalia.wire.usage import UsageDimension, UsageTotal, UsageTotals

#: The longest window totals are asked for: a leap year.
MAX_WINDOW = timedelta(days=366)
#: The earliest and latest instants a window may touch (no usage predates the first, nor
#: follows the second; beyond them month arithmetic would overflow).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
CSV_HEADER = "month,tier,user,project,hours,cost,currency\r\n"
#: How usage on a project hidden from the caller is labelled: its hours and cost still count.
OTHER_PROJECTS = "(other projects)"


class _Seconds(FunctionElement[float]):
    """The seconds from the first argument to the second (both instants of a UTC column)."""

    type = Float()
    inherit_cache = True
    name = "himalia_seconds"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(_Seconds, "postgresql")
def _seconds_postgresql(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


def month_start(moment: datetime) -> datetime:
    """Midnight UTC on the first day of ``moment``'s month."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def period_of(moment: datetime) -> str:
    """The month ``moment`` falls in, as budgets and their alerts name it: ``YYYY-MM`` in UTC."""
    return f"{moment.astimezone(UTC):%Y-%m}"


@dataclass(frozen=True)
class Window:
    """The instants totals cover: from ``since`` to ``until`` (this month by default)."""

    since: datetime
    until: datetime

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None, now: datetime) -> "Window":
        """The window asked for, or a 400 naming ``since`` or ``until``; a time without a zone is UTC."""
        since = _bounded("since", since) if since is not None else month_start(now)
        until = _bounded("until", until) if until is not None else next_month(month_start(since))
        if until <= since:
            raise InvalidInput("until: it must come after since.", field="until")
        if until - since > MAX_WINDOW:
            raise InvalidInput(f"until: a window spans at most {MAX_WINDOW.days} days.", field="until")
        return cls(since, until)

    def months(self, now: datetime) -> list[tuple[str, datetime, datetime]]:
        """Each month of the window as (``YYYY-MM``, start, end), clipped to the window and to ``now``."""
        end_of_all = min(self.until, now)
        months = []
        start = month_start(self.since)
        while start < end_of_all:
            following = next_month(start)
            begin, end = max(start, self.since), min(following, end_of_all)
            if begin < end:
                months.append((period_of(start), begin, end))
            start = following
        return months


def _bounded(name: str, moment: datetime) -> datetime:
    """``moment`` in UTC (a time without a zone is taken as UTC), or a 400 naming ``name``."""
    utc: datetime | None
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise InvalidInput(
            f"{name}: {moment.date().isoformat()} is outside the years {EARLIEST.year} to {LATEST.year - 1}.",
            field=name,
        )
    return utc


def _instant(moment: datetime) -> ColumnElement[datetime]:
    return literal(moment, UTCDateTime())


def usage_sums(
    session: Session,
    window: Window,
    now: datetime,
    keys: Sequence[InstrumentedAttribute[Any]],
    *,
    where: Iterable[ColumnElement[bool]] = (),
    joins: Iterable[tuple[Any, ColumnElement[bool]]] = (),
) -> list[tuple[Any, ...]]:
    """(month, *keys, seconds, cost) for each month of ``window`` and group of ``keys`` that has usage.

    ``joins`` are outer joins the keys need (the tier's name, the project's key); ``where`` narrows
    the rows (one person's, one project's). One statement whatever the rows and the months.
    """
    conditions, outer = list(where), list(joins)
    selects: list[Select[Any]] = []
    for label, begin, end in window.months(now):
        lower, upper = _instant(begin), _instant(end)
        ended = func.coalesce(TierUsage.ended_at, _instant(now))
        start = case((TierUsage.started_at < lower, lower), else_=TierUsage.started_at)
        stop = case((ended > upper, upper), else_=ended)
        seconds = _Seconds(start, stop)
        query = select(
            literal(label).label("month"),
            *keys,
            func.sum(seconds).label("seconds"),
            func.sum(seconds * TierUsage.cost_per_hour / 3600.0).label("cost"),
        ).select_from(TierUsage)
        for target, on in outer:
            query = query.outerjoin(target, on)
        query = query.where(
            TierUsage.started_at < upper,
            or_(TierUsage.ended_at.is_(None), TierUsage.ended_at > lower),
            *conditions,
        )
        selects.append(query.group_by(*keys) if keys else query)
    if not selects:
        return []
    statement = selects[0] if len(selects) == 1 else union_all(*selects)
    return [tuple(row) for row in session.execute(statement) if row[-2] is not None]


#: Each dimension's key column and the join it needs.
_DIMENSIONS: dict[str, tuple[InstrumentedAttribute[Any], tuple[Any, ColumnElement[bool]]]] = {
    "tier": (Tier.name, (Tier, Tier.id == TierUsage.tier_id)),
    "user": (User.login, (User, User.id == TierUsage.user_id)),
    "project": (Project.key, (Project, Project.id == TierUsage.project_id)),
}


def project_labels(session: Session, caller: Caller) -> Callable[[str | None], str | None]:
    """How ``caller`` is shown a usage row's project key: as it is on a project they may see
    (``GET /projects/<key>`` answers), else ``OTHER_PROJECTS``.

    A tier manager totals everyone's usage, but holding ``manage_tiers`` tells nobody the names of
    projects hidden from them; only administrators see every key.
    """
    if caller.sees_every_project and caller.project_scope is None:
        return lambda key: key
    visible = set(projects_granting(session, caller, ALL_PROJECT_PERMISSIONS).values())
    return lambda key: key if key is None or key in visible else OTHER_PROJECTS


class UsageService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, currency: str = "USD") -> None:
        super().__init__(db, audit, log)
        #: The currency of every ``cost_per_hour``, told with each total.
        self.currency = currency

    def _scope(self, session: Session, caller: Caller, user: str | None) -> tuple[bool, list[ColumnElement[bool]]]:
        """Whose usage the caller may total: everyone's for tier managers (or one person's if
        ``user``), else only their own (403 for anyone else's)."""
        if caller.has(GlobalPermission.MANAGE_TIERS):
            if user is None:
                return True, []
            return False, [TierUsage.user_id == find_user(session, user).id]
        if user not in (None, caller.login):
            raise Forbidden("Another user's usage needs the global permission 'manage_tiers'.", field="user")
        return False, [TierUsage.user_id == (caller.user_id if caller.user_id is not None else -1)]

    def totals(
        self,
        caller: Caller,
        by: UsageDimension,
        since: datetime | None = None,
        until: datetime | None = None,
        user: str | None = None,
        now: datetime | None = None,
    ) -> UsageTotals:
        """Hours and cost over the window (this month by default), grouped ``by`` one dimension."""
        now = now or datetime.now(UTC)
        window = Window.of(since, until, now)
        with self.db.read() as session:
            everyone, where = self._scope(session, caller, user)
            if by == "month":
                rows = usage_sums(session, window, now, [], where=where)
                sums = {month: (seconds, cost) for month, seconds, cost in rows}
            else:
                column, join = _DIMENSIONS[by]
                rows = usage_sums(session, window, now, [column], where=where, joins=[join])
                label = project_labels(session, caller) if by == "project" else None
                sums = {}
                for _, key, seconds, cost in rows:
                    key = label(key) if label else key
                    hours_before, cost_before = sums.get(key, (0.0, 0.0))
                    sums[key] = (hours_before + seconds, cost_before + cost)
        totals = [UsageTotal(key=key, hours=_round(s / 3600.0), cost=_round(c)) for key, (s, c) in sums.items()]
        if by != "month":
            totals.sort(key=lambda t: (-t.cost, -t.hours, t.key or ""))
        return UsageTotals(
            by=by,
            since=window.since,
            until=window.until,
            currency=self.currency,
            everyone=everyone,
            totals=totals,
            hours=_round(sum(s for s, _ in sums.values()) / 3600.0),
            cost=_round(sum(c for _, c in sums.values())),
        )

    def export_csv(
        self,
        caller: Caller,
        since: datetime | None = None,
        until: datetime | None = None,
        user: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """The totals by month, tier, person and project together, as CSV (one line per group; the
        projects hidden from the caller merged into one)."""
        now = now or datetime.now(UTC)
        window = Window.of(since, until, now)
        keys = [column for column, _ in _DIMENSIONS.values()]
        joins = [join for _, join in _DIMENSIONS.values()]
        with self.db.read() as session:
            _, where = self._scope(session, caller, user)
            label = project_labels(session, caller)
            sums: dict[tuple[str, str, str, str | None], tuple[float, float]] = {}
            for month, tier, login, key, seconds, cost in usage_sums(
                session, window, now, keys, where=where, joins=joins
            ):
                group = (month, tier, login, label(key))
                seconds_before, cost_before = sums.get(group, (0.0, 0.0))
                sums[group] = (seconds_before + seconds, cost_before + cost)
        lines = [CSV_HEADER]
        for group in sorted(sums, key=_sort_key):
            (month, tier, login, project), (seconds, cost) = group, sums[group]
            cells = [month, tier, login, project or "", f"{seconds / 3600.0:.4f}", f"{cost:.4f}", self.currency]
            lines.append(",".join(_csv_cell(str(cell)) for cell in cells) + "\r\n")
        return "".join(lines)


def _sort_key(group: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple("" if part is None else part for part in group)


def _round(value: float) -> float:
    return round(value, 6)


def _csv_cell(text: str) -> str:
    """A CSV cell that a spreadsheet neither splits nor runs as a formula."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\r\n') else text
