"""Scenario definitions: the YAML format, its validation with lines and fields, and time triggers."""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from croniter import CroniterError, croniter

from himalia.cli import main
from himalia.core.documents import DocumentError
from himalia.wire.definitions import (
    TimeTrigger,
    _instants,
    _plain_fields,
    json_schema,
    load_scenario,
    next_fire_time,
    previous_fire_time,
    schedule_to_cron,
    wall_schedule,
)

DEMO = Path(__file__).parents[2] / "scenarios" / "daily-fraud-scoring.yaml"
MINIMAL = """\
id: nightly
name: Nightly
steps:
  - name: Build
    type: notebook
    notebook: notebooks/build.ipynb
    timeout: 30m
triggers:
  - type: time
    cron: "0 2 * * *"
"""


def test_the_demo_scenario_is_valid() -> None:
    scenario = load_scenario(DEMO.read_text(), str(DEMO))
    assert [step.type for step in scenario.steps] == [
        "run_checks",
        "run_checks",
        "set_variables",
        "notebook",
        "run_checks",
        "notebook",
    ]
    assert scenario.triggers[0].type == "time" and scenario.reporters[0].type == "email"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("timeout: 30m", "timeout: soon"), "f.yaml:7: steps[0].timeout: Value error, 'soon' is not a duration"),
        (
            ("type: notebook", "type: notebok"),
            "f.yaml:4: steps[0]: Input tag 'notebok' found using 'type' does not match",
        ),
        (
            ("notebook: notebooks/build.ipynb", "notebook: /abs/build.py"),
            "f.yaml:6: steps[0].notebook: String should match",
        ),
        (
            ('cron: "0 2 * * *"', 'cron: "0 25 * * *"'),
            "f.yaml:10: triggers[0].cron: Value error, '0 25 * * *' is not a cron",
        ),
        (
            ('cron: "0 2 * * *"', "schedule: at two"),
            "f.yaml:10: triggers[0].schedule: Value error, 'at two' is not a schedule",
        ),
        (
            ("name: Nightly", "name: Nightly\nconcurrency: sometimes"),
            "f.yaml:3: concurrency: Input should be 'skip', 'queue' or 'parallel'",
        ),
        (("id: nightly", "id: Nightly Job"), "f.yaml:1: id: String should match pattern"),
        (
            ("    timeout: 30m\n", "    timeout: 30m\n    colour: red\n"),
            "f.yaml:8: steps[0].colour: Extra inputs are not permitted",
        ),
    ],
)
def test_mistakes_are_named_by_line_and_field(change: tuple[str, str], message: str) -> None:
    with pytest.raises(DocumentError) as error:
        load_scenario(MINIMAL.replace(*change), "f.yaml")
    assert error.value.message.startswith(message), error.value.message


def test_cross_field_rules() -> None:
    duplicated = MINIMAL + "  - type: time\n    schedule: daily at 03:00\n"
    assert len(load_scenario(duplicated).triggers) == 2
    twice = MINIMAL.replace(
        "triggers:", "  - name: Build\n    type: sql\n    connection: wh\n    statement: SELECT 1\ntriggers:"
    )
    with pytest.raises(DocumentError, match="two steps are named 'Build'"):
        load_scenario(twice)
    both = MINIMAL.replace('    cron: "0 2 * * *"', '    cron: "0 2 * * *"\n    schedule: daily at 02:00')
    with pytest.raises(DocumentError, match="exactly one of 'cron' or 'schedule'"):
        load_scenario(both)
    itself = MINIMAL + "  - type: after_scenario\n    scenario: nightly\n"
    with pytest.raises(DocumentError, match="triggered by its own end"):
        load_scenario(itself)


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        ("every 15 minutes", "*/15 * * * *"),
        ("Every 2 hours", "0 */2 * * *"),
        ("hourly at :30", "30 * * * *"),
        ("daily at 02:00", "0 2 * * *"),
        ("weekdays at 7:30", "30 7 * * 1-5"),
        ("weekly on monday at 06:00", "0 6 * * 1"),
    ],
)
def test_simple_schedules(schedule: str, cron: str) -> None:
    assert schedule_to_cron(schedule) == cron


@pytest.mark.parametrize("schedule", ["every 7 minutes", "daily at 25:00", "hourly at :75", "sometimes"])
def test_impossible_schedules(schedule: str) -> None:
    with pytest.raises(ValueError, match="is not a schedule"):
        schedule_to_cron(schedule)


def test_fire_times_follow_the_time_zone_across_dst() -> None:
    paris = TimeTrigger(type="time", schedule="daily at 02:30", timezone="Europe/Paris")
    # 2026-03-29: clocks go from 02:00 to 03:00 in Paris; 02:30 does not exist that night.
    before = paris.next_fire(datetime(2026, 3, 28, 1, 0, tzinfo=UTC))
    assert before.isoformat() == "2026-03-28T02:30:00+01:00"
    summer = paris.next_fire(datetime(2026, 3, 30, 0, 0, tzinfo=UTC))
    assert summer.isoformat() == "2026-03-30T02:30:00+02:00" and summer.astimezone(UTC).hour == 0
    utc = TimeTrigger(type="time", cron="*/15 * * * *")
    assert utc.next_fire(datetime(2026, 1, 1, 10, 7, tzinfo=UTC)) == datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time zone"):
        TimeTrigger(type="time", cron="0 2 * * *", timezone="Mars/Olympus")


def test_cli_validate_and_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    valid = runner.invoke(main, ["scenario", "validate", str(DEMO)])
    assert valid.exit_code == 0 and "is valid: 6 steps, 1 triggers, 1 reporters" in valid.output
    assert "next time trigger:" in valid.output and "Europe/Paris" in valid.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(MINIMAL.replace("timeout: 30m", "timeout: soon"))
    refused = runner.invoke(main, ["scenario", "validate", str(broken)])
    assert refused.exit_code == 1
    assert refused.output.startswith(f"error: {broken}:7: steps[0].timeout:")
    schema = json_schema()
    assert schema["title"] == "Himalia scenario" and "steps" in schema["required"]
    assert '"discriminator"' in runner.invoke(main, ["scenario", "schema"]).output


def _random_field(rng: random.Random, low: int, high: int) -> str:
    shape = rng.randrange(7)
    first = rng.randint(low, high)
    last = rng.randint(first, high)
    if shape == 0:
        return "*"
    if shape == 1:
        return f"*/{rng.randint(1, (high - low) // 2 + 1)}"
    if shape == 2 and first != last:
        return f"{first}-{last}" + (f"/{rng.randint(2, 3)}" if rng.random() < 0.5 else "")
    if shape == 3:
        return f"{first}/{rng.randint(1, 20)}"
    if shape == 4:
        return f"{low}-{high}"  # every value: croniter reads it as '*' or not, by the other day field
    return ",".join(str(value) for value in sorted(rng.sample(range(low, high + 1), rng.randint(1, 3))))


def test_the_walked_fire_times_are_croniters() -> None:
    """Fire times found by walking the expanded fields (croniter is too slow for a scheduler's
    start) are croniter's, after and at or before any moment, the day-or rule included."""
    rng = random.Random(17)
    compared = read_plainly = 0
    while compared < 1000:
        fields = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
        expression = " ".join(_random_field(rng, low, high) for low, high in fields)
        try:
            croniter(expression, datetime(2024, 1, 1)).get_next(datetime)
        except (CroniterError, ValueError):
            continue  # never fires (the 31st of February, say)
        fields, _ = croniter.expand(expression)
        plain = _plain_fields(expression)  # None: croniter's expansion is used (a weekday 7/5, say)
        assert plain is None or plain == [None if f == ["*"] else f for f in fields], expression
        read_plainly += plain is not None
        fires = wall_schedule(expression)
        moment = datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(10 * 365 * 86400))
        assert fires.after(moment) == croniter(expression, moment).get_next(datetime), expression
        following_second = moment.replace(second=0, microsecond=0) + timedelta(seconds=1)
        assert fires.at_or_before(moment) == croniter(expression, following_second).get_prev(datetime), expression
        compared += 1
    assert read_plainly > 900
    # What the walk does not cover goes to croniter: the last day of the month, the second Monday.
    assert wall_schedule("0 6 L * *").after(datetime(2024, 2, 3)) == datetime(2024, 2, 29, 6, 0)
    assert wall_schedule("0 6 * * 1#2").at_or_before(datetime(2024, 3, 1)) == datetime(2024, 2, 12, 6, 0)


@pytest.mark.parametrize(
    ("expression", "zone", "around"),
    [
        ("30 2 * * *", "Europe/Paris", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # the skipped hour
        ("30 2 * * *", "Europe/Paris", datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),  # the repeated hour
        ("*/20 * * * *", "Europe/Paris", datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),
        ("*/20 1-3 * * *", "America/New_York", datetime(2026, 3, 8, 6, 0, tzinfo=UTC)),
        ("15 * * * *", "Australia/Adelaide", datetime(2026, 4, 4, 16, 0, tzinfo=UTC)),
    ],
)
def test_fire_times_across_dst_are_every_instant_the_wall_clock_shows(
    expression: str, zone: str, around: datetime
) -> None:
    """Next and previous fires around a clock change, against every minute of the hours around it:
    each wall-clock minute the expression matches is placed on the time line as cron does."""
    trigger = TimeTrigger(type="time", cron=expression, timezone=zone)
    local = ZoneInfo(zone)
    fixed = not (expression.startswith("*") or expression.split()[1].startswith("*"))
    instants = set()
    start_wall = (around - timedelta(hours=36)).astimezone(local).replace(tzinfo=None)
    for minute in range(72 * 60):
        wall = start_wall + timedelta(minutes=minute)
        if croniter.match(expression, wall):
            instants.update(_instants(wall, local, fixed))
    ordered = sorted(instants)
    for offset in range(-120, 240, 7):
        moment = around + timedelta(minutes=offset)
        assert next_fire_time(trigger, moment) == min(i for i in ordered if i > moment), moment
        assert previous_fire_time(trigger, moment) == max(i for i in ordered if i <= moment), moment
