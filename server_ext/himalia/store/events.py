"""What happened in the store that other parts of the same process react to.

The run engine wakes when a run is queued and stops a run whose abort was requested; whoever follows
a run (the API's waiting GET, ``himalia scenario run --wait``) learns when its steps move; the scheduler
reschedules a scenario that changed and fires the scenarios waiting for a run that finished. The
services that write those rows publish the events after their transaction committed; subscribers
run in the publisher's thread, one after another, and a subscriber's failure is logged, never the
publisher's. Other processes sharing the database learn the same facts by polling it.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar


@dataclass(frozen=True)
class RunQueued:
    """A run is waiting for a slot."""

    run_id: int


@dataclass(frozen=True)
class AbortRequested:
    """Someone asked to abort a run that may be running in this process."""

    run_id: int


@dataclass(frozen=True)
class RunProgressed:
    """One of a running run's steps started, was skipped or ended (what a client following it shows)."""

    run_id: int


@dataclass(frozen=True)
class RunFinished:
    """A run ended (succeeded, warning, failed or aborted) after it had started."""

    run_id: int


@dataclass(frozen=True)
class ScenarioChanged:
    """A scenario was saved, activated, deactivated or deleted (``row_id`` is its row)."""

    row_id: int


Event = RunQueued | AbortRequested | RunProgressed | RunFinished | ScenarioChanged
E = TypeVar("E", RunQueued, AbortRequested, RunProgressed, RunFinished, ScenarioChanged)


class Events:
    """A typed, thread-safe publish/subscribe of one control plane's events."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.log = log or logging.getLogger("himalia")
        self._lock = threading.Lock()
        self._subscribers: dict[type, list[Callable[[Any], object]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], object]) -> Callable[[], None]:
        """Call ``handler`` with every ``kind`` event from now on; return what unsubscribes it."""
        with self._lock:
            self._subscribers.setdefault(kind, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._subscribers.get(kind, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            handlers = list(self._subscribers.get(type(event), []))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                self.log.exception("A subscriber to %s failed", event)
