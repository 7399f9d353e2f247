"""The scheduler: fires scenarios' triggers, whether or not anyone is logged in.

Due times live in one heap (the next fire of each time trigger, the next poll of each polling
trigger), so an idle scheduler sleeps until the earliest one instead of scanning scenarios. A
firing creates a run carrying a ``fire_key`` unique in the database: one fire time, one seen
change, one upstream run yield at most one run across restarts and across control planes
sharing a PostgreSQL. Fire times missed while no scheduler ran (or while it was asleep or failing)
follow the scenario's catch-up policy (``skip`` or ``run_once``); fires late by less than
``MISFIRE_GRACE`` are simply on time, also when they fall just before a restart.

Fire times are computed on the wall clock of the trigger's time zone and kept in UTC. Around
daylight-saving changes they follow cron (Vixie) practice: a time skipped when clocks go forward
fires once, when the skipped hour ends (02:30 on a spring-forward night fires at 03:00); in the
hour repeated when clocks go back, a fixed-time expression (``30 1 * * *``) fires once, at the
first occurrence, while one whose minute or hour field starts with ``*`` fires in both.

No trigger fires or polls more often than the control plane's ``min_schedule_interval``: saving
refuses schedules that would, and the scheduler holds back any that still do (a definition saved
before the rule, or a daylight-saving change bringing two fires together).
"""

import hashlib
import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from logging import Logger, LoggerAdapter
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterError

from himalia.core.errors import HimaliaError
from himalia.core.units import parse_duration
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.scenarios.records import ChildRun
from himalia.scenarios.runs import RunService
from himalia.scenarios.uptime import BEAT_INTERVAL, UptimeLog
from himalia.store.events import Events, RunFinished, ScenarioChanged
from himalia.store.orm import utcnow
from himalia.wire.definitions import (
    AfterScenarioTrigger,
    DatasetChangeTrigger,
    ScenarioDefinition,
    SqlConditionTrigger,
    TimeTrigger,
    Trigger,
    next_fire_time,
    previous_fire_time,
    stored_definition,
)
from himalia.wire.scenarios import RunState

MISFIRE_GRACE = timedelta(seconds=60)
#: The most missed fire times an outage's count goes up to (beyond, "at least" this many).
MAX_COUNTED_MISSES = 100
#: How soon a fire that failed (the store unreachable, say) is tried again, for the same fire time.
RETRY_DELAY = timedelta(seconds=10)


class Watcher(Protocol):
    """Something the scheduler's thread looks after besides triggers (deadlines, say)."""

    def watch(self, now: datetime) -> datetime | None:
        """Do what is due at ``now``; return when to be called next (``None``: only on the next wake)."""

    def close(self) -> None:
        """The scheduler stopped: finish what is under way (alerts being sent) and release it."""


class MissedFireListener(Protocol):
    """Told of fires that did not become runs that ran (the deadline alerts' ``missed``)."""

    def outage(self, row_id: int, entry: "ScheduledScenario", missed: "MissedFires") -> None:
        """Fire times passed while no scheduler fired them (down, asleep or failing)."""

    def skipped(self, row_id: int, entry: "ScheduledScenario", fire_key: str, run_id: int) -> None:
        """A fire recorded as a skipped run (concurrency policy, full queue)."""


@dataclass(frozen=True)
class MissedFires:
    """The fire times of one outage, as ``_catch_up`` noticed them."""

    first: datetime
    last: datetime
    #: How many, up to ``MAX_COUNTED_MISSES`` (``bounded``: there may be more).
    count: int
    bounded: bool
    #: The time zone of the trigger of the first one, to show the times as people wrote them.
    timezone: str
    #: ``skip`` or ``run_once``, and the run catch-up created for the last one (if it did).
    policy: str
    caught_up: ChildRun | None = None


@dataclass
class ScheduledScenario:
    """What the scheduler knows of one scenario between saves."""

    version: int
    project_id: int
    slug: str
    definition: ScenarioDefinition


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


class Scheduler:
    """Fires triggers through ``runs``; polls datasets and connections for the polling triggers."""

    def __init__(
        self,
        runs: RunService,
        events: Events,
        datasets: DatasetService,
        connections: ConnectionService,
        *,
        min_interval: timedelta,
        log: Logger | LoggerAdapter[Any],
        now: Callable[[], datetime] = utcnow,
        uptime: UptimeLog | None = None,
    ) -> None:
        self.runs = runs
        self.events = events
        self.datasets = datasets
        self.connections = connections
        self.log = log
        self.now = now
        #: Where this scheduler records that it is alive (the board's "the control plane was down").
        self.uptime = uptime
        #: Called at each wake, after the triggers.
        self.watchers: list[Watcher] = []
        #: Told of missed fires, when one cares (the deadline watcher).
        self.missed: MissedFireListener | None = None
        #: The least time between two fires or polls of one trigger.
        self.min_interval = min_interval
        #: (wake at, scenario row, trigger index, version, fire time), all in UTC. The fire time is the
        #: cron time a time trigger fires for; it differs from the wake time only on a retry.
        self._heap: list[tuple[datetime, int, int, int, datetime]] = []
        self._entries: dict[int, ScheduledScenario] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = 0
        self._unsubscribe: list[Callable[[], None]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.uptime is not None:
            self.uptime.begin(self.now())
        self.load()
        self._unsubscribe = [
            self.events.subscribe(ScenarioChanged, lambda event: self.scenario_changed(event.row_id)),
            self.events.subscribe(RunFinished, lambda event: self.run_finished(event.run_id)),
        ]
        self._thread = threading.Thread(target=self._loop, name="himalia-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for watcher in self.watchers:
            watcher.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wakes = [self.now() + BEAT_INTERVAL]
            try:
                self.fire_due(self.now())
                wakes += [wake for wake in self.watch(self.now()) if wake is not None]
                if self.uptime is not None:
                    self.uptime.beat(self.now())
            except Exception:
                self.log.exception("The scheduler failed; retrying")
            with self._changed:
                if self._heap:
                    wakes.append(self._heap[0][0])
                wait = (min(wakes) - self.now()).total_seconds()
                # stop() sets the event before it takes the lock to notify: seen here, or woken.
                if wait > 0 and not self._stopping.is_set():
                    self._changed.wait(timeout=wait)

    def scheduled(self) -> dict[int, ScheduledScenario]:
        """What the scheduler holds, by scenario row, as of now (watchers read it: it follows saves)."""
        with self._lock:
            return dict(self._entries)

    def watch(self, now: datetime) -> list[datetime | None]:
        """Run the watchers; one failing does not keep the others (or the triggers) from their work."""
        wakes: list[datetime | None] = []
        for watcher in self.watchers:
            try:
                wakes.append(watcher.watch(now))
            except Exception:
                self.log.exception("The scheduler's %s failed; retrying", type(watcher).__name__)
        return wakes

    # -- the heap -----------------------------------------------------------------------------

    def load(self) -> None:
        """Read every active scenario with triggers, apply catch-up, and schedule the next fires."""
        now = self.now()
        for row_id, project_id, slug, definition, saved_at in self.runs.scheduled_scenarios():
            try:
                parsed = stored_definition(definition)
                self._schedule(row_id, project_id, slug, parsed, now, catch_up=True, saved_at=saved_at)
            except Exception:  # one unreadable scenario must not keep the others from firing
                self.log.exception("Scenario %s cannot be scheduled", slug)

    def scenario_changed(self, row_id: int) -> None:
        found = self.runs.scheduled_scenario(row_id)
        with self._lock:
            self._entries.pop(row_id, None)  # entries of the old version become stale in the heap
        if found is not None:
            self._schedule(row_id, *found, self.now(), False)
        with self._changed:
            self._changed.notify_all()

    def _schedule(
        self,
        row_id: int,
        project_id: int,
        slug: str,
        definition: ScenarioDefinition,
        now: datetime,
        catch_up: bool,
        saved_at: datetime | None = None,
    ) -> None:
        # On start, fires late by less than the grace are still ahead: a restart right after a fire
        # time must not lose it (its fire key keeps it from firing twice if it already did).
        start = now - MISFIRE_GRACE if catch_up else now
        upcoming = []
        with self._lock:
            self._version += 1
            entry = ScheduledScenario(self._version, project_id, slug, definition)
            self._entries[row_id] = entry
            for index, trigger in enumerate(definition.triggers):
                if isinstance(trigger, TimeTrigger):
                    try:
                        due = next_fire_time(trigger, start)
                    except CroniterError as error:  # valid syntax that never matches, such as Feb 30
                        self.log.warning("Trigger %d of scenario %s never fires: %s", index, slug, error)
                        continue
                    heapq.heappush(self._heap, (due, row_id, index, entry.version, due))
                    upcoming.append(due)
                elif isinstance(trigger, DatasetChangeTrigger | SqlConditionTrigger):
                    heapq.heappush(self._heap, (now, row_id, index, entry.version, now))
        if catch_up:
            self._catch_up(row_id, entry, now, saved_at, upcoming)

    def next_due(self) -> datetime | None:
        with self._lock:
            while self._heap and not self._valid(self._heap[0]):
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def _valid(self, item: tuple[datetime, int, int, int, datetime]) -> bool:
        entry = self._entries.get(item[1])
        return entry is not None and entry.version == item[3]

    def fire_due(self, now: datetime) -> list[int]:
        """Fire every trigger due at ``now``; return the runs created."""
        created: list[int] = []
        while True:
            with self._lock:
                if not self._heap or self._heap[0][0] > now:
                    break
                item = heapq.heappop(self._heap)
                if not self._valid(item):
                    continue
                _, row_id, index, version, due = item
                entry = self._entries[row_id]
            trigger = entry.definition.triggers[index]
            try:
                if isinstance(trigger, TimeTrigger):
                    created += self._fire_time(row_id, entry, index, trigger, due, now)
                    # The next fire at least min_interval after this one (strictly after ``earliest``).
                    earliest = due + self.min_interval - timedelta(microseconds=1)
                    wake = following = next_fire_time(trigger, max(earliest, now - MISFIRE_GRACE))
                else:
                    created += self._poll(row_id, index, trigger, now)
                    every = parse_duration(trigger.interval)  # type: ignore[union-attr]
                    wake = following = now + max(every, self.min_interval)
            except Exception:
                self.log.exception("Trigger %d of scenario %s failed", index, entry.slug)
                if isinstance(trigger, TimeTrigger):
                    # Try the same fire time again (same fire key: another process may have fired it);
                    # once it is later than the grace, the catch-up policy decides.
                    wake, following = now + RETRY_DELAY, due
                else:
                    wake = following = now + timedelta(minutes=1)
            with self._lock:
                if self._valid(item):
                    heapq.heappush(self._heap, (wake, row_id, index, version, following))
        return created

    # -- firing -------------------------------------------------------------------------------

    def _fire_time(
        self, row_id: int, entry: ScheduledScenario, index: int, trigger: TimeTrigger, due: datetime, now: datetime
    ) -> list[int]:
        if now - due > MISFIRE_GRACE:
            # Missed while the process was busy, asleep or failing: the catch-up policy decides.
            return self._catch_up(row_id, entry, now)
        return self._enqueue(
            row_id, "cron", {"fire_time": _iso(due, trigger), "trigger": index}, fire_time_key(row_id, due)
        )

    def _catch_up(
        self,
        row_id: int,
        entry: ScheduledScenario,
        now: datetime,
        saved_at: datetime | None = None,
        upcoming: list[datetime] | None = None,
    ) -> list[int]:
        """Fire once for the latest time missed (later than the grace), if the scenario asks for it.

        Missed means after both the scenario's last save (or activation) and its last time-triggered
        run: a time at which the scenario was inactive, or did not have this schedule, was not missed.
        A fire late by less than the grace, about to fire anyway, is the one run that catches up.
        ``saved_at`` and ``upcoming`` (the next fires from the grace on) spare work when known.
        """
        horizon = now - MISFIRE_GRACE
        times = [(i, t) for i, t in enumerate(entry.definition.triggers) if isinstance(t, TimeTrigger)]
        if upcoming is None:
            upcoming = [next_fire_time(t, horizon) for _, t in times]
        if not times or any(due <= now for due in upcoming):
            return []
        latest, index, trigger = max(((previous_fire_time(t, horizon), i, t) for i, t in times), key=lambda m: m[0])
        if saved_at is not None and latest <= saved_at:
            return []
        last_saved, last_fire = self.runs.last_time_fire(row_id)
        saved_at = saved_at or last_saved
        if saved_at is None:
            return []
        cursor = max(saved_at, datetime.fromisoformat(last_fire)) if last_fire else saved_at
        if latest <= cursor:
            return []
        missed = missed_fires(times, cursor, horizon, latest, entry.definition.catch_up)
        if entry.definition.catch_up == "skip":
            self.log.info("Scenario %s missed its run of %s; catch-up policy is 'skip'", entry.slug, latest)
            self._tell_missed(lambda listener: listener.outage(row_id, entry, missed))
            return []
        detail = {"fire_time": _iso(latest, trigger), "trigger": index, "catch_up": True}
        return self._enqueue(row_id, "cron", detail, fire_time_key(row_id, latest), outage=(entry, missed))

    def _enqueue(
        self,
        row_id: int,
        trigger: str,
        detail: dict[str, Any],
        fire_key: str,
        outage: tuple[ScheduledScenario, MissedFires] | None = None,
    ) -> list[int]:
        """Fire through ``runs``; tell the listener of a fire that became a skipped run, or of the
        ``outage`` this fire catches up on (the catch-up run being part of it, skipped or not)."""
        fired = self.runs.fire(row_id, trigger, detail, fire_key)
        if outage is not None:
            entry, missed = outage
            self._tell_missed(lambda listener: listener.outage(row_id, entry, replace(missed, caught_up=fired)))
        if fired is None:
            return []
        self.log.info("Scenario %s fired by %s: run #%d (%s)", row_id, trigger, fired.run_id, fired.state)
        if fired.state == RunState.SKIPPED and outage is None:
            with self._lock:
                found = self._entries.get(row_id)
            if found is not None:
                self._tell_missed(lambda listener: listener.skipped(row_id, found, fire_key, fired.run_id))
        return [fired.run_id]

    def _tell_missed(self, tell: Callable[[MissedFireListener], None]) -> None:
        """Tell the listener; its failure (the store, a bug) must not keep the trigger from firing."""
        if self.missed is None:
            return
        try:
            tell(self.missed)
        except Exception:
            self.log.exception("The scheduler could not record a missed fire")

    def _poll(self, row_id: int, index: int, trigger: Trigger, now: datetime) -> list[int]:
        """Observe a dataset's fingerprint or a query's value; fire on a change that has settled."""
        target = self.runs.poll_target(row_id, index)
        if target is None:
            return []
        state = target.state
        try:
            if isinstance(trigger, DatasetChangeTrigger):
                value = self.datasets.fingerprint(
                    target.actor, target.project_key, trigger.dataset, trigger.column, trigger.query
                )
                grace = parse_duration(trigger.grace)
            else:
                assert isinstance(trigger, SqlConditionTrigger)
                value = self.connections.query_value(target.actor, trigger.connection, trigger.query)
                grace = timedelta(0)
        except HimaliaError as error:
            self.log.warning("Trigger %d of scenario %s cannot poll: %s", index, row_id, error.message)
            return []
        created: list[int] = []
        if "seen" not in state:
            state = {"seen": value}
        elif value == state["seen"]:
            state.pop("pending", None)
        elif state.get("pending") != value:
            state.update(pending=value, since=now.isoformat())
        if state.get("pending") == value and now - datetime.fromisoformat(state["since"]) >= grace:
            kind = "dataset_change" if isinstance(trigger, DatasetChangeTrigger) else "sql_condition"
            key = f"{kind}:{row_id}:{index}:{_digest(state['seen'], value, state['since'])}"
            created = self._enqueue(row_id, kind, {"trigger": index, "changed_since": state["since"]}, key)
            state = {"seen": value}
        self.runs.record_trigger_state(row_id, index, state)
        return created

    def run_finished(self, run_id: int) -> list[int]:
        """Fire the scenarios of the project that wait for this one to end."""
        ended = self.runs.ended_run(run_id)
        if ended is None:
            return []
        with self._lock:
            waiting = [
                (row_id, index)
                for row_id, entry in self._entries.items()
                if entry.project_id == ended.project_id
                for index, trigger in enumerate(entry.definition.triggers)
                if isinstance(trigger, AfterScenarioTrigger)
                and trigger.scenario == ended.scenario_slug
                and (trigger.on == "any" or ended.state in (RunState.SUCCEEDED, RunState.WARNING))
            ]
        created: list[int] = []
        for row_id, index in waiting:
            detail = {"run": run_id, "scenario": ended.scenario_slug, "outcome": ended.state, "trigger": index}
            created += self._enqueue(row_id, "after_scenario", detail, f"after:{row_id}:{run_id}")
        return created


def missed_fires(
    times: list[tuple[int, TimeTrigger]], cursor: datetime, horizon: datetime, latest: datetime, policy: str
) -> MissedFires:
    """The fire times after ``cursor`` up to ``horizon`` (``latest`` being the last), counted up to a bound."""
    found: list[tuple[datetime, str]] = []
    bounded = False
    for _, trigger in times:
        moment = cursor
        for counted_so_far in range(MAX_COUNTED_MISSES + 1):
            moment = next_fire_time(trigger, moment)
            if moment > horizon:
                break
            if counted_so_far == MAX_COUNTED_MISSES:
                bounded = True
                break
            found.append((moment, trigger.timezone))
    found.sort()
    (first, zone), counted = found[0], min(len(found), MAX_COUNTED_MISSES)
    return MissedFires(first, latest, counted, bounded or len(found) > MAX_COUNTED_MISSES, zone, policy)


def _iso(moment: datetime, trigger: TimeTrigger) -> str:
    return moment.astimezone(ZoneInfo(trigger.timezone)).isoformat()


def fire_time_key(row_id: int, fire_time: datetime) -> str:
    """The fire key of a fire time: in UTC, so that a fire and a catch-up of one instant collide."""
    return f"time:{row_id}:{fire_time.astimezone(UTC).isoformat()}"
