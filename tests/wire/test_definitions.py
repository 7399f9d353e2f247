"""Scenario definitions: the YAML format, its validation with lines and fields, and time triggers."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.core.documents import DocumentError
from himalia.wire.definitions import TimeTrigger, json_schema, load_scenario, schedule_to_cron

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
