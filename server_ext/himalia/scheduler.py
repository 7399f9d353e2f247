"""The scheduler: fires scenarios' triggers, whether or not anyone is logged in.

Due times live in one heap (the next fire of each time trigger, the next poll of each polling
trigger), so an idle scheduler sleeps until the earliest one instead of scanning scenarios. A
firing creates a run carrying a ``fire_key`` unique in the database: one fire time, one seen
change, one upstream run yield at most one run across restarts and across control planes
sharing a PostgreSQL. Fire times missed while no scheduler ran follow the scenario's catch-up
policy (``skip`` or ``run_once``); fires late by less than ``MISFIRE_GRACE`` are simply on time.
"""

import hashlib
import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select

from .caller import load_caller
from .checks import parse_duration
from .errors import HimaliaError
from .orm import Project, Scenario, ScenarioRun, User, utcnow
from .scenario_definitions import (
    AfterScenarioTrigger,
    DatasetChangeTrigger,
    ScenarioDefinition,
    SqlConditionTrigger,
    TimeTrigger,
    Trigger,
)

if TYPE_CHECKING:
    from .controlplane import ControlPlane

MISFIRE_GRACE = timedelta(seconds=60)


@dataclass
class _Entry:
    """What the scheduler knows of one scenario between saves."""

    version: int
    project_id: int
    slug: str
    definition: ScenarioDefinition


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


class Scheduler:
    def __init__(self, plane: "ControlPlane", now: Callable[[], datetime] = utcnow) -> None:
        self.plane = plane
        self.now = now
        self._heap: list[tuple[datetime, int, int, int]] = []  # (due, scenario row, trigger index, version)
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.load()
        self.plane.scenarios.listeners.append(self.scenario_changed)
        self._thread = threading.Thread(target=self._loop, name="himalia-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.fire_due(self.now())
            except Exception:
                self.plane.log.exception("The scheduler failed; retrying")
            with self._changed:
                due = self._heap[0][0] if self._heap else None
                wait = 60.0 if due is None else (due - self.now()).total_seconds()
                if wait > 0:
                    self._changed.wait(timeout=min(wait, 60.0))

    # -- the heap -----------------------------------------------------------------------------

    def load(self) -> None:
        """Read every active scenario with triggers, apply catch-up, and schedule the next fires."""
        with self.plane.db.read() as session:
            rows = session.execute(
                select(Scenario.id, Scenario.project_id, Scenario.slug, Scenario.definition).where(Scenario.active)
            ).all()
        now = self.now()
        for row_id, project_id, slug, definition in rows:
            if definition.get("triggers"):
                self._schedule(row_id, project_id, slug, ScenarioDefinition.model_validate(definition), now, True)

    def scenario_changed(self, row_id: int) -> None:
        with self.plane.db.read() as session:
            scenario = session.get(Scenario, row_id)
            found = (
                (scenario.project_id, scenario.slug, ScenarioDefinition.model_validate(scenario.definition))
                if scenario is not None and scenario.active
                else None
            )
        with self._lock:
            self._entries.pop(row_id, None)  # entries of the old version become stale in the heap
        if found is not None:
            self._schedule(row_id, *found, self.now(), False)
        with self._changed:
            self._changed.notify_all()

    def _schedule(
        self, row_id: int, project_id: int, slug: str, definition: ScenarioDefinition, now: datetime, catch_up: bool
    ) -> None:
        with self._lock:
            self._version += 1
            entry = _Entry(self._version, project_id, slug, definition)
            self._entries[row_id] = entry
            for index, trigger in enumerate(definition.triggers):
                if isinstance(trigger, TimeTrigger):
                    heapq.heappush(self._heap, (trigger.next_fire(now), row_id, index, entry.version))
                elif isinstance(trigger, DatasetChangeTrigger | SqlConditionTrigger):
                    heapq.heappush(self._heap, (now, row_id, index, entry.version))
        if catch_up:
            self._catch_up(row_id, entry, now)

    def next_due(self) -> datetime | None:
        with self._lock:
            while self._heap and not self._valid(self._heap[0]):
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def _valid(self, item: tuple[datetime, int, int, int]) -> bool:
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
                due, row_id, index, _ = item
                entry = self._entries[row_id]
            trigger = entry.definition.triggers[index]
            try:
                if isinstance(trigger, TimeTrigger):
                    created += self._fire_time(row_id, index, trigger, due, now)
                    following = trigger.next_fire(max(due, now - MISFIRE_GRACE))
                else:
                    created += self._poll(row_id, index, trigger, now)
                    following = now + parse_duration(trigger.interval)  # type: ignore[union-attr]
            except Exception:
                self.plane.log.exception("Trigger %d of scenario %s failed", index, entry.slug)
                following = now + timedelta(minutes=1)
            with self._lock:
                if self._valid(item):
                    heapq.heappush(self._heap, (following, row_id, index, item[3]))
        return created

    # -- firing -------------------------------------------------------------------------------

    def _fire_time(self, row_id: int, index: int, trigger: TimeTrigger, due: datetime, now: datetime) -> list[int]:
        if now - due > MISFIRE_GRACE:
            return []  # missed while the process was busy or asleep: catch-up decides, not us
        return self._enqueue(
            row_id, "cron", {"fire_time": _iso(due, trigger), "trigger": index}, f"time:{row_id}:{due.isoformat()}"
        )

    def _catch_up(self, row_id: int, entry: _Entry, now: datetime) -> None:
        """Fire once for the latest time missed while no scheduler ran, if the scenario asks for it."""
        with self.plane.db.read() as session:
            last = session.scalar(
                select(ScenarioRun.trigger_detail)
                .where(ScenarioRun.scenario_id == row_id, ScenarioRun.trigger == "cron")
                .order_by(ScenarioRun.id.desc())
                .limit(1)
            )
            scenario = session.get(Scenario, row_id)
            saved_at = scenario.updated_at if scenario else now
        cursor = datetime.fromisoformat(last["fire_time"]) if last else saved_at
        missed: list[tuple[datetime, TimeTrigger]] = []
        for trigger in entry.definition.triggers:
            if isinstance(trigger, TimeTrigger):
                latest: datetime = croniter(trigger.expression(), now.astimezone(ZoneInfo(trigger.timezone))).get_prev(
                    datetime
                )
                if latest > cursor and now - latest > MISFIRE_GRACE:
                    missed.append((latest, trigger))
        if not missed:
            return
        latest, trigger = max(missed, key=lambda pair: pair[0])
        if entry.definition.catch_up == "skip":
            self.plane.log.info("Scenario %s missed its run of %s; catch-up policy is 'skip'", entry.slug, latest)
            return
        detail = {"fire_time": _iso(latest, trigger), "catch_up": True}
        self._enqueue(row_id, "cron", detail, f"time:{row_id}:{latest.astimezone(ZoneInfo('UTC')).isoformat()}")

    def _enqueue(self, row_id: int, trigger: str, detail: dict[str, Any], fire_key: str) -> list[int]:
        with self.plane.db.write() as session:
            scenario = session.get(Scenario, row_id)
            if scenario is None or not scenario.active:
                return []
            run = self.plane.runs.enqueue(
                session, scenario, trigger=trigger, detail=detail, requested_by="scheduler", fire_key=fire_key
            )
            if run is None:
                return []
            run_id, state = run.id, run.state
        self.plane.log.info("Scenario %s fired by %s: run #%d (%s)", row_id, trigger, run_id, state)
        if state == "queued":
            for listener in self.plane.runs.on_queued:
                listener(run_id)
        return [run_id]

    def _poll(self, row_id: int, index: int, trigger: Trigger, now: datetime) -> list[int]:
        """Observe a dataset's fingerprint or a query's value; fire on a change that has settled."""
        with self.plane.db.read() as session:
            scenario = session.get(Scenario, row_id)
            if scenario is None:
                return []
            project_key = session.get_one(Project, scenario.project_id).key
            actor = load_caller(
                session,
                session.get_one(User, scenario.run_as_id),
                client_address="scheduler",
                project_scope=scenario.project_id,
            )
            state = dict(scenario.trigger_state.get(str(index), {}))
        try:
            if isinstance(trigger, DatasetChangeTrigger):
                value = self.plane.datasets.fingerprint(
                    actor, project_key, trigger.dataset, trigger.column, trigger.query
                )
                grace = parse_duration(trigger.grace)
            else:
                assert isinstance(trigger, SqlConditionTrigger)
                value = self.plane.connections.query_value(actor, trigger.connection, trigger.query)
                grace = timedelta(0)
        except HimaliaError as error:
            self.plane.log.warning("Trigger %d of scenario %s cannot poll: %s", index, row_id, error.message)
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
        with self.plane.db.write() as session:
            scenario = session.get(Scenario, row_id)
            if scenario is not None:
                scenario.trigger_state = {**scenario.trigger_state, str(index): state}
        return created

    def run_finished(self, run_id: int) -> list[int]:
        """Fire the scenarios of the project that wait for this one to end."""
        with self.plane.db.read() as session:
            run = session.get(ScenarioRun, run_id)
            if run is None or run.state == "skipped":
                return []
            slug = session.get_one(Scenario, run.scenario_id).slug
            state, project_id = run.state, run.project_id
        with self._lock:
            waiting = [
                (row_id, index)
                for row_id, entry in self._entries.items()
                if entry.project_id == project_id
                for index, trigger in enumerate(entry.definition.triggers)
                if isinstance(trigger, AfterScenarioTrigger)
                and trigger.scenario == slug
                and (trigger.on == "any" or state in ("succeeded", "warning"))
            ]
        created: list[int] = []
        for row_id, index in waiting:
            detail = {"run": run_id, "scenario": slug, "outcome": state, "trigger": index}
            created += self._enqueue(row_id, "after_scenario", detail, f"after:{row_id}:{run_id}")
        return created


def _iso(moment: datetime, trigger: TimeTrigger) -> str:
    return moment.astimezone(ZoneInfo(trigger.timezone)).isoformat()
