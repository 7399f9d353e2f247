"""``himalia ops guide``: the project's operations guide, generated from the platform, without secrets."""

import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection, FreshnessSpec, UpdateDataset
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import SetGrant
from himalia.wire.scenarios import RunRequest, SaveScenario

from ..conftest import AUDIT_KEY, SECRET_KEY

DB_PASSWORD = "pw-Zq81-never-printed"
WEBHOOK_TOKEN = "XOXB-webhook-token-77"
WEBHOOK_PATH = "T0001/B0002/pathsecret9"


@pytest.fixture
def operated(plane: ControlPlane) -> ControlPlane:
    """The seeded world plus what a production project has: a deadline in Paris, a webhook with a
    token, a warehouse with a password, soft bounds and a freshness declaration."""
    admin = plane.users.caller_for("admin")
    plane.connections.create_connection(
        admin,
        CreateConnection(
            name="reporting",
            type="sql",
            params={"url": "postgresql://reporting@db.example.org/sales"},
            secrets={"password": DB_PASSWORD},
            usable_by=AccessSpec(mode="everyone"),
        ),
    )
    plane.checks.save_check(
        admin,
        "ALPHA",
        "transactions",
        CheckSpec(name="Enough rows", type="range", metric="record_count", min=100, soft_min=250, max=1_000_000),
    )
    plane.datasets.update_dataset(
        admin, "ALPHA", "transactions", UpdateDataset(freshness=FreshnessSpec(column="purchase_date", max_age="26h"))
    )
    plane.checks.save_check(
        admin,
        "ALPHA",
        "transactions",
        CheckSpec(name="Fresh data", type="freshness", warn_after="20h"),
    )
    scoring = ScenarioDefinition.model_validate(
        {
            "id": "morning_scoring",
            "name": "Morning scoring",
            "concurrency": "queue",
            "catch_up": "run_once",
            "steps": [
                {"name": "Check", "type": "run_checks", "dataset": "transactions"},
                {"name": "Publish", "type": "sql", "connection": "reporting", "statement": "SELECT 1"},
            ],
            "triggers": [{"type": "time", "cron": "30 5 * * 1-5", "timezone": "Europe/Paris"}],
            "sla": {"ready_by": "07:00", "max_duration": "45m"},
            "reporters": [
                {
                    "type": "webhook",
                    "format": "slack",
                    "url": f"https://hooks.slack.example.com/services/{WEBHOOK_PATH}?token={WEBHOOK_TOKEN}",
                    "when": "failure",
                    "on_late": True,
                },
                {"type": "email", "to": ["ops@example.org"], "when": "warning_or_failure"},
            ],
        }
    )
    plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario(definition=scoring))
    plane.projects.set_grant(admin, "ALPHA", SetGrant(user="target", preset="launcher"))
    plane.public_url = "https://himalia.example.org/"
    return plane


def himalia(plane: ControlPlane, *arguments: str) -> Result:
    environment = {
        "HIMALIA_SECRET_KEYS": SECRET_KEY,
        "HIMALIA_AUDIT_KEY": AUDIT_KEY,
        "HIMALIA_PUBLIC_URL": plane.public_url,
    }
    return CliRunner().invoke(main, ["--home", plane.home, "--db-url", plane.db.url, *arguments], env=environment)


def test_the_guide_says_what_operators_need(operated: ControlPlane) -> None:
    result = himalia(operated, "--as", "reader", "ops", "guide", "ALPHA")
    assert result.exit_code == 0, result.output
    guide = result.output
    assert guide.startswith("# Alpha confidential (ALPHA): operations guide")
    assert "**Owner**: projadmin" in guide
    # every scenario, its schedule in words and in cron, its zone, its deadline and run-as user
    assert "Nightly checks (`nightly`)" in guide and "Morning scoring (`morning_scoring`)" in guide
    assert "daily at 02:00 (UTC; cron `0 2 * * *`)" in guide
    assert "on weekdays at 05:30 (Europe/Paris; cron `30 5 * * 1-5`)" in guide
    assert "| 07:00 Europe/Paris; at most 45m a run |" in guide
    assert "**Run as**: admin" in guide
    assert "| 07:00 Europe/Paris; at most 45m a run | no successful run yet | admin |" in guide
    assert "**Concurrency**: queue" in guide and "**Catch-up**: run_once" in guide
    assert "slack webhook to hooks.slack.example.com (when a run fails; also on late results" in guide
    assert "email to ops@example.org (when a run warns or fails)" in guide
    # what each check's outcomes mean, with the thresholds; the freshness declaration
    assert "| Enough rows | range | record_count is below 100 or above 1 000 000 |" in guide
    assert "record_count is below 250 (but within the hard bounds)" in guide
    assert "| Columns 13 | in_set | column_count is not one of 13 | never |" in guide
    assert "| Fresh data | freshness | the newest data is older than 26h | the newest data is older than 20h |" in guide
    assert "**Freshness**: the newest `purchase_date` must be at most 26h old." in guide
    # the connections used, by name and type
    assert "| reporting | sql | shared | read-only |" in guide
    assert "| wh | sql | shared | read-only |" in guide
    # the morning check and the exact re-run commands; links into the lab
    assert "himalia ops status --project ALPHA" in guide
    assert "himalia scenario run ALPHA morning_scoring --wait" in guide
    assert "himalia scenario run ALPHA nightly --wait" in guide
    assert "/projects/ALPHA/scenarios/nightly/runs/RUN/rerun" in guide
    assert "https://himalia.example.org/lab?himalia-run=ALPHA/nightly/1" in guide
    # access: who grants it and how to troubleshoot
    assert "the project's administrators (projadmin)" in guide
    assert "himalia project explain ALPHA LOGIN PERMISSION" in guide


def test_no_secret_appears(operated: ControlPlane, tmp_path: Path) -> None:
    markdown = himalia(operated, "ops", "guide", "ALPHA").output
    html = himalia(operated, "ops", "guide", "ALPHA", "--html").output
    for text in (markdown, html):
        for secret in (DB_PASSWORD, WEBHOOK_TOKEN, WEBHOOK_PATH, "hunter2-shared-Q7xZ", "db.example.org", "s3://"):
            assert secret not in text


def test_html_is_one_valid_self_contained_page(operated: ControlPlane, tmp_path: Path) -> None:
    target = tmp_path / "guide.html"
    result = himalia(operated, "ops", "guide", "ALPHA", "--html", "-o", str(target))
    assert result.exit_code == 0, result.output
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")

    class Checker(HTMLParser):
        VOID = {"meta", "br", "hr", "img", "input", "link"}

        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []
            self.tags: set[str] = set()

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.tags.add(tag)
            assert tag not in {"script", "link", "img"}
            if tag not in self.VOID:
                self.open.append(tag)

        def handle_startendtag(self, tag: str, attrs: Any) -> None:
            assert tag in self.VOID, tag

        def handle_endtag(self, tag: str) -> None:
            assert self.open and self.open.pop() == tag, (tag, self.open)

    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.open == []
    assert {"html", "head", "title", "body", "h1", "h2", "table", "td", "pre", "code"} <= checker.tags
    assert "<td>Enough rows</td>" in page


def test_unknown_project_and_refusals_are_one_line(operated: ControlPlane) -> None:
    unknown = himalia(operated, "ops", "guide", "NOPE")
    assert unknown.exit_code == 1
    assert unknown.output == "error: There is no project 'NOPE'.\n"
    outsider = himalia(operated, "--as", "nogrant", "ops", "guide", "ALPHA")
    assert outsider.exit_code == 1 and outsider.output == "error: There is no project 'ALPHA'.\n"
    launcher = himalia(operated, "--as", "target", "ops", "guide", "ALPHA")
    assert launcher.exit_code == 1
    assert launcher.output.count("\n") == 1
    assert "does not hold 'read_content' on ALPHA" in launcher.output
    assert "ask projadmin (ALPHA administrators)" in launcher.output


def test_the_typical_duration_is_that_of_recent_successful_runs(plane: ControlPlane) -> None:
    admin = plane.users.caller_for("admin")
    quick = ScenarioDefinition.model_validate(
        {"id": "quick", "name": "Quick", "steps": [{"name": "Set", "type": "set_variables", "values": {"a": 1}}]}
    )
    plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario(definition=quick))
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=False)
    run = plane.runs.request_run(admin, "ALPHA", "quick", RunRequest())
    deadline = time.monotonic() + 30
    while plane.runs.get_run(admin, "ALPHA", "quick", run.id).state != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    guide = himalia(plane, "ops", "guide", "ALPHA").output
    assert re.search(r"\| Quick \(`quick`\) \| by hand only \| UTC \| - \| - \| \d+ s \| admin \|", guide), guide
