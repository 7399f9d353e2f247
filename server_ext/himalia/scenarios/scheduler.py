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

import gc
import hashlib
import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from logging import Logger, LoggerAdapter
from typing import Any, Protocol

from croniter import CroniterError

from himalia.core.errors import HimaliaError
from himalia.core.units import parse_duration
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.scenarios.records import ChildRun, Fire
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
    time_zone,
)
from himalia.wire.scenarios import RunState

MISFIRE_GRACE = timedelta(seconds=60)
#: The most missed fire times an outage's count goes up to (beyond, "at least" this many).
MAX_COUNTED_MISSES = 100
#: How soon a fire that failed (the store unreachable, say) is tried again, for the same fire time.
RETRY_DELAY = timedelta(seconds=10)
#: Fires per transaction: a burst of 1,000 due at once pays a few commits, not 1,000.
FIRE_BATCH = 250


class Watcher(Protocol):
    """Something the scheduler's thread looks after besides triggers (deadlines, say)."""

    def watch(self, now: datetime) -> datetime | None:
        """Do what is due at ``now``; return when to be called next (``None``: only on the next wake)."""

    def close(self) -> None:
        """The scheduler stopped: finish what is under way (alerts being sent) and release it."""


class MissedFireListener(Protocol):
    """Told of fires that did not become runs that ran (the deadline alerts' ``missed``)."""

    def outages(self, outages: "list[tuple[int, ScheduledScenario, MissedFires]]") -> None:
        """Fire times passed while no scheduler fired them (down, asleep or failing), by scenario row:
        all those a start found, at once."""

    def skipped(self, skips: "list[Skip]") -> None:
        """Fires recorded as skipped runs (concurrency policy, full queue): a burst's, at once."""


@dataclass(frozen=True)
class Skip:
    """A fire that became a skipped run, as the missed-fire listener is told of it."""

    row_id: int
    entry: "ScheduledScenario"
    fire_key: str
    run_id: int


@dataclass(frozen=True, eq=False)
class MissedFires:
    """The fire times of one outage, as ``_missed`` noticed them: those of ``times`` after ``after``
    up to ``last``. They are counted only when asked: a restart finds most outages told already."""

    times: tuple[TimeTrigger, ...]
    after: datetime
    last: datetime
    #: ``skip`` or ``run_once``, and the run catch-up created for the last one (if it did).
    policy: str
    caught_up: ChildRun | None = None

    @cached_property
    def _first(self) -> tuple[datetime, str]:
        return min((next_fire_time(trigger, self.after), trigger.timezone) for trigger in self.times)

    @property
    def first(self) -> datetime:
        return self._first[0]

    @property
    def timezone(self) -> str:
        """The time zone of the trigger of the first one, to show the times as people wrote them."""
        return self._first[1]

    @cached_property
    def _counted(self) -> tuple[int, bool]:
        found = 0
        for trigger in self.times:
            moment = self.after
            for _ in range(MAX_COUNTED_MISSES + 1 - found):
                moment = next_fire_time(trigger, moment)
                if moment > self.last:
                    break
                found += 1
        return min(found, MAX_COUNTED_MISSES), found > MAX_COUNTED_MISSES

    @property
    def count(self) -> int:
        """How many, up to ``MAX_COUNTED_MISSES`` (``bounded``: there may be more)."""
        return self._counted[0]

    @property
    def bounded(self) -> bool:
        return self._counted[1]


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
        #: Set while the thread loads: saves and finished runs heard meanwhile wait in ``_deferred``.
        self._loading = False
        self._deferred: list[Callable[[], object]] = []
        #: Set once a load finished: every active scenario is on the heap, its catch-up fired.
        self.loaded = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread, which loads the scenarios first: the server answers meanwhile."""
        if self.uptime is not None:
            self.uptime.begin(self.now())
        with self._lock:
            self._loading = True
        self._unsubscribe = [
            self.events.subscribe(ScenarioChanged, lambda event: self.scenario_changed(event.row_id)),
            self.events.subscribe(RunFinished, lambda event: self.run_finished(event.run_id)),
        ]
        self._thread = threading.Thread(target=self._load_then_loop, name="himalia-scheduler", daemon=True)
        self._thread.start()

    def _load_then_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.load()
                break
            except Exception:  # the store unreachable at start, say
                self.log.exception("The scheduler could not load the scenarios; retrying")
                self._stopping.wait(RETRY_DELAY.total_seconds())
        # The load leaves a large graph of young objects (10,000 scenarios' definitions and heap
        # entries): the full collection they are due would otherwise come during the first burst of
        # fires and stall it (measured at 0.6-1.6 s of a 1,000-run burst). Collect them now, idle.
        gc.collect()
        self._loop()

    def wake(self) -> None:
        """Look at the heap again now: the clock it reads moved (tests and benchmarks move it)."""
        with self._changed:
            self._changed.notify_all()

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
        """Read every active scenario (one statement), schedule the next fires of those with triggers, then
        fire the catch-ups their policies ask for, many per transaction, and tell the missed fires."""
        now = self.now()
        missed: list[tuple[int, ScheduledScenario, MissedFires, Fire | None]] = []
        for row in self.runs.scheduled_scenarios():
            try:
                definition = stored_definition(row.definition)
                if not definition.triggers:
                    continue
                entry, upcoming = self._schedule(row.row_id, row.project_id, row.slug, definition, now, catch_up=True)
                found = self._missed(row.row_id, entry, now, row.saved_at, row.last_fire, upcoming)
            except Exception:  # one unreadable scenario must not keep the others from firing
                self.log.exception("Scenario %s cannot be scheduled", row.slug)
                continue
            if found is not None:
                missed.append((row.row_id, entry, *found))
        try:
            self._catch_up(missed)
        finally:
            with self._lock:
                self._loading, deferred, self._deferred = False, self._deferred, []
            for action in deferred:
                action()
            self.loaded.set()

    def _deferred_while_loading(self, action: Callable[[], object]) -> bool:
        """Keep ``action`` for the end of the load, if the thread is loading: a save heard before the
        load read its scenario would otherwise be overwritten by the older row."""
        with self._lock:
            if self._loading:
                self._deferred.append(action)
            return self._loading

    def scenario_changed(self, row_id: int) -> None:
        if self._deferred_while_loading(lambda: self.scenario_changed(row_id)):
            return
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
    ) -> tuple[ScheduledScenario, list[datetime]]:
        """Put the scenario's triggers on the heap; return its entry and its time triggers' next fires."""
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
        return entry, upcoming

    def next_due(self) -> datetime | None:
        with self._lock:
            while self._heap and not self._valid(self._heap[0]):
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def _valid(self, item: tuple[datetime, int, int, int, datetime]) -> bool:
        entry = self._entries.get(item[1])
        return entry is not None and entry.version == item[3]

    def fire_due(self, now: datetime) -> list[int]:
        """Fire every trigger due at ``now``, time triggers first and many per transaction; return the
        runs created."""
        due: list[tuple[tuple[datetime, int, int, int, datetime], ScheduledScenario]] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                item = heapq.heappop(self._heap)
                if self._valid(item):
                    due.append((item, self._entries[item[1]]))
        timed = [(item, entry) for item, entry in due if isinstance(entry.definition.triggers[item[2]], TimeTrigger)]
        created = self._fire_times(timed, now)
        for item, entry in due:
            _, row_id, index, _version, _due = item
            trigger = entry.definition.triggers[index]
            if isinstance(trigger, TimeTrigger):
                continue
            try:
                created += self._poll(row_id, index, trigger, now)
                every = parse_duration(trigger.interval)  # type: ignore[union-attr]
                wake = now + max(every, self.min_interval)
            except Exception:
                self.log.exception("Trigger %d of scenario %s failed", index, entry.slug)
                wake = now + timedelta(minutes=1)
            self._push(item, wake, wake)
        return created

    def _fire_times(
        self, timed: list[tuple[tuple[datetime, int, int, int, datetime], ScheduledScenario]], now: datetime
    ) -> list[int]:
        """Fire the time triggers due: those on time in batches, those missed by their catch-up policy;
        put each back on the heap at its next fire, or at a retry of the same fire time if it failed."""
        created: list[int] = []
        on_time = []
        for item, entry in timed:
            _, row_id, index, _version, due = item
            trigger = entry.definition.triggers[index]
            assert isinstance(trigger, TimeTrigger)
            if now - due <= MISFIRE_GRACE:
                detail = {"fire_time": _iso(due, trigger), "trigger": index}
                on_time.append((item, entry, Fire(row_id, "cron", detail, fire_time_key(row_id, due))))
                continue
            # Missed while the process was busy, asleep or failing: the catch-up policy decides.
            try:
                last_saved, last_fire = self.runs.last_time_fire(row_id)
                found = self._missed(row_id, entry, now, last_saved, last_fire)
                created += self._catch_up([(row_id, entry, *found)] if found is not None else [])
            except Exception:
                self.log.exception("Trigger %d of scenario %s failed", index, entry.slug)
                self._push(item, now + RETRY_DELAY, due)
                continue
            self._push_following(item, entry, now)
        try:
            created += [fired.run_id for fired in self._fire([fire for _, _, fire in on_time]) if fired]
        except Exception:
            self.log.exception("Firing %d time triggers failed; retrying them", len(on_time))
            # The same fire times again (same fire keys: those that fired, here or in another process,
            # do not fire twice); once later than the grace, the catch-up policy decides.
            for item, _, _ in on_time:
                self._push(item, now + RETRY_DELAY, item[4])
            return created
        for item, entry, _ in on_time:
            self._push_following(item, entry, now)
        return created

    def _push_following(
        self, item: tuple[datetime, int, int, int, datetime], entry: ScheduledScenario, now: datetime
    ) -> None:
        """Schedule the time trigger's next fire, at least min_interval after this one."""
        trigger = entry.definition.triggers[item[2]]
        assert isinstance(trigger, TimeTrigger)
        earliest = item[4] + self.min_interval - timedelta(microseconds=1)  # strictly after ``earliest``
        try:
            following = next_fire_time(trigger, max(earliest, now - MISFIRE_GRACE))
        except Exception:
            self.log.exception("Trigger %d of scenario %s has no next fire time", item[2], entry.slug)
            return
        self._push(item, following, following)

    def _push(self, item: tuple[datetime, int, int, int, datetime], wake: datetime, fire_time: datetime) -> None:
        with self._lock:
            if self._valid(item):
                heapq.heappush(self._heap, (wake, item[1], item[2], item[3], fire_time))

    # -- firing -------------------------------------------------------------------------------

    def _missed(
        self,
        row_id: int,
        entry: ScheduledScenario,
        now: datetime,
        saved_at: datetime | None,
        last_fire: str | None,
        upcoming: list[datetime] | None = None,
    ) -> tuple[MissedFires, Fire | None] | None:
        """The fires missed (later than the grace) and the one catch-up fire the policy asks for.

        Missed means after both the scenario's last save (or activation) and its last time-triggered
        run (``last_fire``): a time at which the scenario was inactive, or did not have this
        schedule, was not missed. A fire late by less than the grace, about to fire anyway, is the
        one run that catches up. ``upcoming`` (the next fires from the grace on) spares work when known.
        """
        horizon = now - MISFIRE_GRACE
        times = [(i, t) for i, t in enumerate(entry.definition.triggers) if isinstance(t, TimeTrigger)]
        if upcoming is None:
            upcoming = [next_fire_time(t, horizon) for _, t in times]
        if not times or saved_at is None or any(due <= now for due in upcoming):
            return None
        latest, index, trigger = max(((previous_fire_time(t, horizon), i, t) for i, t in times), key=lambda m: m[0])
        cursor = max(saved_at, datetime.fromisoformat(last_fire)) if last_fire else saved_at
        if latest <= cursor:
            return None
        missed = MissedFires(tuple(t for _, t in times), cursor, latest, entry.definition.catch_up)
        if entry.definition.catch_up == "skip":
            self.log.info("Scenario %s missed its run of %s; catch-up policy is 'skip'", entry.slug, latest)
            return missed, None
        detail = {"fire_time": _iso(latest, trigger), "trigger": index, "catch_up": True}
        return missed, Fire(row_id, "cron", detail, fire_time_key(row_id, latest))

    def _catch_up(self, missed: list[tuple[int, ScheduledScenario, MissedFires, Fire | None]]) -> list[int]:
        """Fire the catch-ups, then tell the listener of each outage with the run that caught up on it
        (the catch-up run being part of it, skipped or not)."""
        fired = self._fire([fire for *_, fire in missed if fire is not None], outage=True)
        results = iter(fired)
        outages = [
            (row_id, entry, replace(outage, caught_up=next(results) if fire is not None else None))
            for row_id, entry, outage, fire in missed
        ]
        if outages:
            self._tell_missed(partial(_tell_outages, outages=outages))
        return [run.run_id for run in fired if run is not None]

    def _fire(self, fires: list[Fire], outage: bool = False) -> list[ChildRun | None]:
        """Fire through ``runs``, ``FIRE_BATCH`` per transaction; tell the listener of each fire that
        became a skipped run (not of catch-ups, with ``outage``: the outage they end says it)."""
        fired: list[ChildRun | None] = []
        for start in range(0, len(fires), FIRE_BATCH):
            fired += self.runs.fire(fires[start : start + FIRE_BATCH])
        skips = []
        for fire, run in zip(fires, fired, strict=True):
            if run is None:
                continue
            self.log.info("Scenario %s fired by %s: run #%d (%s)", fire.row_id, fire.trigger, run.run_id, run.state)
            if run.state == RunState.SKIPPED and not outage:
                with self._lock:
                    found = self._entries.get(fire.row_id)
                if found is not None:
                    skips.append(Skip(fire.row_id, found, fire.fire_key, run.run_id))
        if skips:
            self._tell_missed(partial(_tell_skipped, skips=skips))
        return fired

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
            fire = Fire(row_id, kind, {"trigger": index, "changed_since": state["since"]}, key)
            created = [run.run_id for run in self._fire([fire]) if run is not None]
            state = {"seen": value}
        self.runs.record_trigger_state(row_id, index, state)
        return created

    def run_finished(self, run_id: int) -> list[int]:
        """Fire the scenarios of the project that wait for this one to end."""
        if self._deferred_while_loading(lambda: self.run_finished(run_id)):
            return []
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
        fires = [
            Fire(
                row_id,
                "after_scenario",
                {"run": run_id, "scenario": ended.scenario_slug, "outcome": ended.state, "trigger": index},
                f"after:{row_id}:{run_id}",
            )
            for row_id, index in waiting
        ]
        return [run.run_id for run in self._fire(fires) if run is not None]


def _tell_outages(listener: MissedFireListener, outages: list[tuple[int, ScheduledScenario, MissedFires]]) -> None:
    listener.outages(outages)


def _tell_skipped(listener: MissedFireListener, skips: list[Skip]) -> None:
    listener.skipped(skips)


def _iso(moment: datetime, trigger: TimeTrigger) -> str:
    return moment.astimezone(time_zone(trigger.timezone)).isoformat()


def fire_time_key(row_id: int, fire_time: datetime) -> str:
    """The fire key of a fire time: in UTC, so that a fire and a catch-up of one instant collide."""
    return f"time:{row_id}:{fire_time.astimezone(UTC).isoformat()}"
