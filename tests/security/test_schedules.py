"""Class 7: schedules that run away, and schedules that are 500s.

Before: a 7-field cron (``* * * * * * *``) was accepted and fired every second, ``every 0 minutes``
and crons that never fire (``0 0 30 2 *``) were 500s. Now: five-field crons only, every schedule
must fire, no trigger may fire or poll more often than ``ControlPlane.min_schedule_interval``
(one minute by default), each refusal a 400 naming the trigger's field (and its line, in YAML);
a definition stored before these rules stays readable and the scheduler still fires it at most
once per minimum interval.
"""

import calendar
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from himalia.controlplane import ControlPlane
from himalia.store.orm import Scenario, ScenarioRun
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "7 runaway schedules"
SCENARIOS = "/projects/ALPHA/scenarios"
STEPS = [{"name": "checks", "type": "run_checks", "dataset": "transactions"}]
_ids = itertools.count()


def post_trigger(api: LiveAPI, trigger: dict[str, Any]) -> requests.Response:
    """Save a one-step scenario with ``trigger`` as a contributor, as JSON."""
    definition = {"id": f"sched-{next(_ids)}", "name": "Scheduled", "steps": STEPS, "triggers": [trigger]}
    return api.request("POST", SCENARIOS, "contributor", json={"definition": definition})


def refused_naming(response: requests.Response, attribute: str) -> bool:
    """Whether ``response`` is a 400 naming the first trigger's ``attribute``."""
    if response.status_code != 400:
        return False
    field = response.json()["field"]
    return bool(field.startswith("definition.triggers.0.") and field.endswith(attribute))


def cron(expression: str) -> dict[str, Any]:
    return {"type": "time", "cron": expression}


def schedule(text: str) -> dict[str, Any]:
    return {"type": "time", "schedule": text}


def poll(kind: str, interval: str) -> dict[str, Any]:
    if kind == "dataset_change":
        return {"type": kind, "dataset": "transactions", "interval": interval}
    return {"type": kind, "connection": "wh", "query": "SELECT count(*) FROM transactions_2018", "interval": interval}


def malformed_crons() -> Iterator[str]:
    """Six fields (croniter reads the sixth as seconds), seven (and years), other counts, and
    ranges that start and end at once."""
    for seconds in ("*", "*/1", "0", "30", "0-59/5"):
        yield f"* * * * * {seconds}"
        yield f"0 0 * * * {seconds}"
        for year in ("*", "2026", "2026-2099"):
            yield f"* * * * * {seconds} {year}"
    yield from ("*", "* *", "* * *", "* * * *", "* * * * * * * *", "@every_second", "@reboot")
    # Equal ranges: croniter reads "31-31" as every day, cron as the 31st; refused as ambiguous.
    yield from ("0 0 31-31 4 *", "5-5 * * * *", "0 12-12 * * *", "0 0 * jan-JAN *", "0 0 * * sun-sun")


def never_firing_dates() -> Iterator[str]:
    """Every day past the end of each month (February has 29 in leap years), alone and in lists."""
    for month in range(1, 13):
        longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
        for day in range(longest + 1, 32):
            yield f"0 0 {day} {month} *"
            yield f"30 6 {day} {calendar.month_abbr[month].lower()} *"
        if longest < 30:
            yield f"0 0 {longest + 1}-31 {month} *"
    yield "0 0 30,31 2 *"
    yield "0 0 31 4,6,9,11 *"
    yield "*/5 * 31 2,4 *"


def zero_intervals() -> Iterator[dict[str, Any]]:
    for text in ("every 0 minutes", "every 0 hours", "every 00 minutes", "every 0 minute", "Every  0  Hours"):
        yield schedule(text)
    for kind in ("dataset_change", "sql_condition"):
        for text in ("0s", "0m", "0h", "0d", "0w", "00s"):
            yield poll(kind, text)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_crons_have_five_fields_and_no_seconds(api: LiveAPI, ledger: Ledger) -> None:
    for expression in malformed_crons():
        response = post_trigger(api, cron(expression))
        assert ledger.tried(ATTACK, f"cron '{expression}'", refused_naming(response, "cron")), response.text
        reason = "five fields" if len(expression.split()) != 5 else "starts and ends at once"
        assert reason in response.json()["message"], response.text
    for expression in ("* * * * *", "0 2 * * 1-5", "@hourly", "@daily", "0 0 L * *", "0 9 * * mon#1"):
        assert post_trigger(api, cron(expression)).status_code == 201, expression


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_crons_that_never_fire_are_refused_and_the_last_days_are_not(api: LiveAPI, ledger: Ledger) -> None:
    for expression in never_firing_dates():
        response = post_trigger(api, cron(expression))
        assert ledger.tried(ATTACK, f"never-firing '{expression}'", refused_naming(response, "cron")), response.text
        assert "never fires" in response.json()["message"]
    for month in range(1, 13):
        longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
        assert post_trigger(api, cron(f"0 0 {longest} {month} *")).status_code == 201, month
    # A weekday as well as a day means either (cron's rule): February 30 or any Monday.
    assert post_trigger(api, cron("0 0 30 2 1")).status_code == 201


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_zero_intervals_are_refused_naming_the_field(api: LiveAPI, ledger: Ledger) -> None:
    for trigger in zero_intervals():
        attribute = "schedule" if trigger["type"] == "time" else "interval"
        response = post_trigger(api, trigger)
        assert ledger.tried(ATTACK, f"zero interval {trigger}", refused_naming(response, attribute)), response.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_nothing_fires_or_polls_closer_than_the_minimum_interval(api: LiveAPI, ledger: Ledger) -> None:
    # One minute by default: every five-field cron passes; polls must wait a minute.
    assert post_trigger(api, cron("* * * * *")).status_code == 201
    for kind, interval in itertools.product(("dataset_change", "sql_condition"), ("1s", "30s", "59s")):
        response = post_trigger(api, poll(kind, interval))
        assert ledger.tried(ATTACK, f"{kind} every {interval}", refused_naming(response, "interval")), response.text
    assert post_trigger(api, poll("sql_condition", "1m")).status_code == 201

    api.plane.min_schedule_interval = 5 * 60
    too_often = [cron(e) for e in ("* * * * *", "*/2 * * * *", "*/4 * * * *", "0,1 3 * * *", "0,59 0,23 * * *")]
    too_often += [schedule(s) for s in ("every 1 minute", "every 2 minutes", "every 4 minutes")]
    too_often += [poll(kind, "4m") for kind in ("dataset_change", "sql_condition")]
    for trigger in too_often:
        attribute = "interval" if "interval" in trigger else next(iter(set(trigger) - {"type"}))
        response = post_trigger(api, trigger)
        assert ledger.tried(ATTACK, f"{trigger} under a 5-minute minimum", refused_naming(response, attribute))
        assert "minimum interval of 5 minutes" in response.json()["message"], response.text
    for trigger in (
        cron("*/5 * * * *"),
        schedule("every 5 minutes"),
        schedule("hourly at :30"),
        poll("sql_condition", "5m"),
    ):
        assert post_trigger(api, trigger).status_code == 201, trigger


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_yaml_refusals_name_the_line_and_the_field(api: LiveAPI, ledger: Ledger) -> None:
    head = "id: yaml-sched\nname: Y\nsteps:\n  - name: c\n    type: run_checks\n    dataset: transactions\ntriggers:\n"
    for trigger, line, field in [
        ('  - type: time\n    cron: "* * * * * * *"\n', 9, "triggers[0].cron"),
        ('  - type: time\n    cron: "0 0 30 2 *"\n', 9, "triggers[0].cron"),
        ("  - type: time\n    schedule: every 0 minutes\n", 9, "triggers[0].schedule"),
        (
            "  - type: sql_condition\n    connection: wh\n    query: SELECT 1\n    interval: 0s\n",
            11,
            "triggers[0].interval",
        ),
    ]:
        response = api.request("POST", SCENARIOS, "contributor", json={"yaml": head + trigger})
        refused = response.status_code == 400 and response.json()["field"] == field
        assert ledger.tried(ATTACK, f"YAML {trigger.strip()}", refused), response.text
        assert response.json()["message"].startswith(f"yaml:{line}: {field}: "), response.text


# -- what the store already holds ----------------------------------------------------------------


def store_definition_as_is(plane: ControlPlane, slug: str, trigger: dict[str, Any]) -> int:
    """A scenario saved before the rules: saved valid, then its trigger rewritten in the store."""
    definition = ScenarioDefinition.model_validate({"id": slug, "name": slug, "steps": STEPS})
    plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", SaveScenario(definition=definition))
    with plane.db.write() as session:
        scenario = session.scalars(select(Scenario).where(Scenario.slug == slug)).one()
        scenario.definition = {**scenario.definition, "triggers": [trigger]}
        return scenario.id


#: Far from the seeded scenario's daily 02:00 fire.
NOON = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)


def test_a_stored_seven_field_cron_stays_readable_and_fires_once_a_minute(api: LiveAPI, ledger: Ledger) -> None:
    row = store_definition_as_is(api.plane, "legacy", cron("* * * * * * *"))
    assert api.request("GET", f"{SCENARIOS}/legacy").status_code == 200
    assert "legacy" in {s["id"] for s in api.request("GET", SCENARIOS).json()["items"]}
    clock = [NOON]
    scheduler = api.plane.new_scheduler(lambda: clock[0])
    scheduler.load()
    while clock[0] <= NOON + timedelta(minutes=5):
        scheduler.fire_due(clock[0])
        clock[0] += timedelta(seconds=1)
    with api.plane.db.read() as session:
        fired = session.scalars(select(ScenarioRun.trigger_detail).where(ScenarioRun.scenario_id == row)).all()
    times = sorted(datetime.fromisoformat(detail["fire_time"]) for detail in fired)
    # Every second for five minutes would be 300 runs and more; the minimum allows one a minute.
    assert ledger.tried(ATTACK, "stored 7-field cron, fired for 5 minutes", 5 <= len(times) <= 6), times
    assert all(later - earlier >= timedelta(minutes=1) for earlier, later in itertools.pairwise(times)), times


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("interval", ["0s", "1s", "30s"])
def test_a_stored_fast_poll_waits_the_minimum_between_polls(api: LiveAPI, ledger: Ledger, interval: str) -> None:
    store_definition_as_is(api.plane, "legacy-poll", poll("sql_condition", interval))
    scheduler = api.plane.new_scheduler(lambda: NOON)
    scheduler.load()
    assert scheduler.next_due() == NOON  # a polling trigger polls on start
    scheduler.fire_due(NOON)
    waited = scheduler.next_due()
    assert waited is not None
    assert ledger.tried(ATTACK, f"stored {interval} poll", waited - NOON == timedelta(minutes=1)), waited


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_run_of_a_scenario_saved_before_the_rules_still_runs(api: LiveAPI) -> None:
    """The run engine reads a run's definition as stored: a legacy schedule does not break its runs."""
    store_definition_as_is(api.plane, "legacy-run", cron("* * * * * * *"))
    api.plane.api_url, api.plane.config.LocalExecutor.warm_workers = api.base, 0
    api.plane.start_engine(schedule=False)
    run = api.request("POST", f"{SCENARIOS}/legacy-run/run", json={})
    assert run.status_code == 201, run.text
    deadline = time.monotonic() + 60
    while (state := api.request("GET", f"{SCENARIOS}/legacy-run/runs/{run.json()['id']}").json()["state"]) in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state == "succeeded"
