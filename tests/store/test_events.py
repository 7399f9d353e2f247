"""The control plane's events: typed subscriptions, a failing subscriber stops no other."""

import logging

import pytest

from himalia.store.events import Events, RunFinished, RunQueued


def test_subscribers_get_their_kind_of_event_until_they_unsubscribe() -> None:
    events = Events()
    queued: list[int] = []
    finished: list[int] = []
    unsubscribe = events.subscribe(RunQueued, lambda event: queued.append(event.run_id))
    events.subscribe(RunFinished, lambda event: finished.append(event.run_id))
    events.publish(RunQueued(1))
    events.publish(RunFinished(2))
    unsubscribe()
    events.publish(RunQueued(3))
    assert queued == [1]
    assert finished == [2]


def test_a_failing_subscriber_is_logged_and_the_next_one_still_called(caplog: pytest.LogCaptureFixture) -> None:
    events = Events(logging.getLogger("test-events"))
    heard: list[int] = []

    def broken(event: RunQueued) -> None:
        raise RuntimeError("boom")

    events.subscribe(RunQueued, broken)
    events.subscribe(RunQueued, lambda event: heard.append(event.run_id))
    with caplog.at_level(logging.ERROR, logger="test-events"):
        events.publish(RunQueued(7))
    assert heard == [7]
    assert "RunQueued(run_id=7)" in caplog.text
