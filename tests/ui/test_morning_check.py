"""The README's morning check: `make lab` in the evening, stopped overnight, started the next morning,
then the Operations board and `himalia ops status` say what happened while it was down.

The night passes on libfaketime's clock: each `make lab` (and everything it starts) runs with its
clock moved to 21:00 and then to 08:00 Europe/Paris, a real two days ahead, so the scheduler sees
the hours between as a real outage: the hourly checks' fires are missed (grey, the control plane
down), the daily scoring is caught up after its 07:00 deadline (late, and its reporter told).
"""

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import Lab, MakeLab, open_himalia, palette, shoot

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(shutil.which("faketime") is None, reason="needs libfaketime (scripts/install-system-deps.sh)"),
]

PARIS = ZoneInfo("Europe/Paris")
MORNING_DAY = (datetime.now(UTC) + timedelta(days=2)).astimezone(PARIS).date()
EVENING = datetime.combine(MORNING_DAY - timedelta(days=1), wall(21, 0), PARIS)
MORNING = datetime.combine(MORNING_DAY, wall(8, 0), PARIS)


def clock(moment: datetime) -> list[str]:
    """A command prefix whose processes see the time as ``moment`` now, moving on from there."""
    return ["faketime", "-f", f"+{int((moment - datetime.now(UTC)).total_seconds())}s"]


def runs_of(lab: Lab, scenario: str) -> list[dict[str, Any]]:
    reply = lab.api("GET", f"projects/FRAUD/scenarios/{scenario}/runs")
    assert reply.status_code == 200, reply.text
    return list(reply.json()["items"])


def wait_for_run(lab: Lab, scenario: str, matches: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = [r for r in runs_of(lab, scenario) if matches(r) and r["state"] not in ("queued", "running")]
        if ended:
            return ended[0]
        time.sleep(1)
    raise AssertionError(f"no finished run of {scenario}: {runs_of(lab, scenario)}\n{lab.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def morning() -> Iterator[tuple[Lab, MakeLab]]:
    launcher = MakeLab("morning-check")
    try:
        evening = launcher.start(*clock(EVENING), log_name="morning-check-evening")
        # 21:00's hourly checks fire as the lab starts (a fire late by less than a minute is on time).
        wait_for_run(evening, "hourly_merchant_checks", lambda run: True, 120)
        launcher.stop()
        lab = launcher.start(*clock(MORNING), log_name="morning-check-morning")
        yield lab, launcher
    finally:
        launcher.remove()


def test_the_morning_after_a_night_down(page, morning: tuple[Lab, MakeLab]) -> None:  # type: ignore[no-untyped-def]
    lab, launcher = morning
    caught_up = wait_for_run(lab, "daily_fraud_scoring", lambda run: run["trigger_detail"].get("catch_up"), 300)
    assert caught_up["state"] == "succeeded", caught_up

    sidebar = open_himalia(page, lab)
    assert sidebar.is_visible()
    palette(page, "Himalia: Open Operations")
    board = page.locator(".hml-ops-page")
    hourly = board.locator("tr[data-scenario='hourly_merchant_checks']")
    hourly.locator(".hml-ops-missed").first.wait_for()
    assert hourly.locator(".hml-ops-missed").count() == 10, hourly.inner_html()  # 22:00 to 07:00
    assert "control plane was down" in (hourly.locator(".hml-ops-missed").first.get_attribute("title") or "")
    assert hourly.locator(".hml-ops-succeeded").count() >= 1  # 21:00 (and 08:00 once it has run)
    daily = board.locator("tr[data-scenario='daily_fraud_scoring']")
    late = daily.locator(f".hml-ops-late[data-run='{caught_up['id']}']")
    late.wait_for()
    assert "07:00" in (late.get_attribute("title") or "")
    shoot(page, "morning-check-board")

    env = {**launcher.env, "HIMALIA_HOME": str(launcher.clone / launcher.home), "NO_COLOR": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    status = subprocess.run(
        [*clock(MORNING + timedelta(minutes=5)), "himalia", "ops", "status", "--project", "FRAUD"],
        cwd=launcher.clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 1, status.stdout + status.stderr  # needs attention, the platform is well
    assert "control plane was down" in status.stdout, status.stdout
    as_json = subprocess.run(
        [*clock(MORNING + timedelta(minutes=5)), "himalia", "--json", "ops", "status", "--project", "FRAUD"],
        cwd=launcher.clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(as_json.stdout)
    board_json = report["board"]
    (entry,) = [s for s in board_json["scenarios"] if s["scenario"] == "hourly_merchant_checks"]
    reasons = {fire["missed_reason"] for fire in entry["fires"] if fire["status"] == "missed"}
    assert reasons == {"control_plane_down"}, entry["fires"]

    mail = launcher.clone / launcher.home / "mail"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("LATE" in m.read_text(errors="replace") for m in mail.glob("*.eml")):
        time.sleep(0.5)
    assert any("LATE" in m.read_text(errors="replace") for m in mail.glob("*.eml")), sorted(mail.glob("*.eml"))
