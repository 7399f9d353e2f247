"""Retention: finished runs past their scenario's (or the instance's) bounds lose their artifacts
and logs, pinned and unfinished ones never; snapshots nobody references go; the audit trail and
the runs' records stay; the space per project says what is left."""

from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.core.errors import Forbidden
from himalia.identity.caller import Caller
from himalia.scenarios.records import Artifact
from himalia.scenarios.retention import RetentionWatcher
from himalia.store.orm import NotebookSnapshot, RunArtifact, RunLogChunk, utcnow
from himalia.wire.scenarios import ArtifactKind, RunRequest

from ..conftest import LiveAPI
from .conftest import BASE, notebook, saved, start, wait

REPORT = b"<html>" + b"x" * 10_000 + b"</html>"


def definition(retention: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "kept",
        "name": "Kept",
        "steps": [{"name": "Set", "type": "set_variables", "values": {"a": 1}}],
        "triggers": [],
    }
    if retention is not None:
        body["retention"] = retention
    return body


def finished_runs(light: LiveAPI, count: int) -> list[int]:
    """``count`` finished runs, each with a log and an HTML report of 10 kB."""
    runs = []
    for _ in range(count):
        run = wait(light, "kept", start(light, "kept"))
        assert run["state"] == "succeeded", run
        light.plane.runs.add_artifacts(run["id"], 0, [Artifact(ArtifactKind.HTML, "text/html", REPORT)])
        runs.append(run["id"])
    return runs


def kept_artifacts(light: LiveAPI) -> dict[int, tuple[int, int]]:
    """Run id -> (artifacts, log chunks) still in the store."""
    with light.plane.db.read() as session:
        artifacts = [row.run_id for row in session.query(RunArtifact)]
        logs = [row.run_id for row in session.query(RunLogChunk)]
    return {run: (artifacts.count(run), logs.count(run)) for run in {*artifacts, *logs}}


def test_the_last_runs_keep_their_artifacts_pinned_ones_too_and_the_rest_are_purged(light: LiveAPI) -> None:
    saved(light, definition({"keep_runs": 2}))
    runs = finished_runs(light, 5)
    pinned = light.request("PUT", f"{BASE}/kept/runs/{runs[0]}/pin", role="contributor", json={"pinned": True})
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True, pinned.text
    before = light.request("GET", "/projects/ALPHA/storage", role="reader").json()
    assert before["artifact_bytes"] >= 5 * len(REPORT) and before["log_bytes"] > 0 and before["pinned_runs"] == 1

    dry = light.request("POST", "/retention/purge", json={"dry_run": True}).json()
    assert dry["dry_run"] and dry["runs"] == 2 and dry["artifact_bytes"] == 2 * len(REPORT)
    assert all(kept_artifacts(light)[run][0] == 1 for run in runs)  # a dry run purges nothing

    report = light.request("POST", "/retention/purge", json={}).json()
    assert (report["runs"], report["artifact_bytes"]) == (2, 2 * len(REPORT)) and report["log_bytes"] > 0
    kept = kept_artifacts(light)
    assert runs[1] not in kept and runs[2] not in kept  # past the last two, not pinned
    assert all(kept[run][0] == 1 and kept[run][1] > 0 for run in (runs[0], runs[3], runs[4]))
    purged = light.request("GET", f"{BASE}/kept/runs/{runs[1]}").json()
    assert purged["purged_at"] and purged["state"] == "succeeded" and purged["steps"][0]["outputs"]  # the record stays
    assert light.request("GET", f"{BASE}/kept/runs/{runs[1]}/report").status_code == 404
    refused = light.request("POST", f"{BASE}/kept/runs/{runs[1]}/rerun", json={})
    assert refused.status_code == 409 and "retention purged" in refused.json()["message"]
    after = light.request("GET", "/projects/ALPHA/storage", role="reader").json()
    assert after["artifact_bytes"] == before["artifact_bytes"] - 2 * len(REPORT) and after["purged_runs"] == 2

    audit = light.plane.audit.verify(Caller.operator())
    assert audit.ok, audit  # the trail is never purged, and its chain holds
    assert light.request("POST", "/retention/purge", json={}).json()["runs"] == 0  # nothing twice


def test_age_and_count_keep_a_run_while_either_does(light: LiveAPI) -> None:
    saved(light, definition({"keep_runs": 1, "keep_days": 7}))
    runs = finished_runs(light, 3)
    service = light.plane.retention
    assert service.purge_expired(Caller.system("test")).runs == 0  # all younger than 7 days
    later = utcnow() + timedelta(days=8)
    assert service.purge_expired(Caller.system("test"), now=later).runs == 2
    assert set(kept_artifacts(light)) == {runs[2]}  # the last one, whatever its age


def test_the_instance_bounds_apply_where_a_scenario_says_nothing(light: LiveAPI) -> None:
    saved(light, definition())
    runs = finished_runs(light, 3)
    service = light.plane.retention
    assert service.purge_expired(Caller.system("test")).runs == 0  # no bound anywhere: kept
    service.settings.keep_runs = 2
    try:
        watcher = RetentionWatcher(service)
        now = utcnow()
        assert watcher.watch(now) == now + timedelta(seconds=service.settings.interval_seconds)
        assert set(kept_artifacts(light)) == set(runs[1:])
        saved(light, definition({"keep_runs": 10}))  # the scenario's own bound wins
        assert service.purge_expired(Caller.system("test")).runs == 0
    finally:
        service.settings.keep_runs = 0


def test_snapshots_nobody_references_are_purged_after_their_grace(api: LiveAPI) -> None:
    first = {**definition({"keep_runs": 1}), "steps": [{"name": "Nb", "type": "notebook", "notebook": "a.ipynb"}]}
    saved(api, first, {"a.ipynb": notebook("print('version 1')")})
    admin, runs = api.plane.users.caller_for("admin"), api.plane.runs
    old = runs.request_run(admin, "ALPHA", "kept", RunRequest())
    runs.abort(admin, "ALPHA", "kept", old.id)  # no engine here: a queued run aborts at once, finished
    second = saved(api, first, {"a.ipynb": notebook("print('version 2')")})
    newer = runs.request_run(admin, "ALPHA", "kept", RunRequest())
    runs.abort(admin, "ALPHA", "kept", newer.id)
    service = api.plane.retention
    with api.plane.db.read() as session:
        digests = {row.digest for row in session.query(NotebookSnapshot)}
    version_1 = (digests - set(second["notebooks"].values())).pop()

    kept_young = service.purge_expired(Caller.system("test"))
    assert kept_young.runs == 1 and kept_young.snapshots == 0  # within the grace of a day
    service.settings.snapshot_grace_seconds = 0
    try:
        report = service.purge_expired(Caller.system("test"), now=utcnow() + timedelta(seconds=1))
    finally:
        service.settings.snapshot_grace_seconds = 86400
    assert report.snapshots == 1 and report.snapshot_bytes > 0
    with api.plane.db.read() as session:
        left = {row.digest for row in session.query(NotebookSnapshot)}
    assert version_1 not in left and set(second["notebooks"].values()) <= left  # the scenario's own stays


def test_who_may_pin_see_the_space_and_purge(light: LiveAPI) -> None:
    saved(light, definition({"keep_runs": 1}))
    (run,) = finished_runs(light, 1)
    pin = f"{BASE}/kept/runs/{run}/pin"
    assert light.request("PUT", pin, role="reader", json={"pinned": True}).status_code == 403
    assert light.request("PUT", pin, role="nogrant", json={"pinned": True}).status_code == 404
    assert light.request("PUT", f"{BASE}/kept/runs/999/pin", json={"pinned": True}).status_code == 404
    assert light.request("PUT", pin, json={"pinned": "yes please"}).status_code == 400
    assert light.request("GET", "/projects/ALPHA/storage", role="nogrant").status_code == 404
    assert light.request("POST", "/retention/purge", role="projadmin", json={}).status_code == 403
    with pytest.raises(Forbidden):
        light.plane.retention.purge(light.plane.users.caller_for("contributor"))


def test_the_command_line_purges_and_shows_the_space(light: LiveAPI) -> None:
    saved(light, definition({"keep_runs": 1}))
    finished_runs(light, 2)
    runner = CliRunner()
    store = ["--home", light.plane.home, "--db-url", light.plane.db_url]
    dry = runner.invoke(main, [*store, "retention", "purge", "--dry-run"])
    assert dry.exit_code == 0 and dry.output.startswith("would purge the artifacts and logs of 1 runs"), dry.output
    space = runner.invoke(main, [*store, "retention", "space", "ALPHA"])
    assert space.exit_code == 0 and "run artifacts" in space.output and "20.0 kB" in space.output, space.output
    done = runner.invoke(main, [*store, "retention", "purge"])
    assert done.exit_code == 0 and done.output.startswith("purged the artifacts and logs of 1 runs"), done.output
    assert "10.0 kB" in runner.invoke(main, [*store, "retention", "space", "ALPHA"]).output
