"""The store's side of runs: claiming and recovering them (both backends), typed variables."""

import os
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from himalia.controlplane import ControlPlane
from himalia.scenarios.steps.notebook import typed_expand
from himalia.scenarios.workers import this_worker
from himalia.store.orm import ApiToken, RunStep, ScenarioRun, utcnow
from himalia.wire.scenarios import RunRequest, SaveScenario

from .conftest import values_step


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_claims_and_crash_recovery(plane: ControlPlane, backend: str) -> None:
    admin = plane.users.caller_for("admin")
    for scenario, policy in (("one", "queue"), ("two", "queue"), ("three", "parallel")):
        definition = {
            "id": scenario,
            "name": scenario,
            "concurrency": policy,
            "steps": [values_step("First"), values_step("Second")],
        }
        plane.scenarios.save_scenario(admin, "ALPHA", SaveScenario.model_validate({"definition": definition}))

    def request(scenario: str) -> int:
        return plane.runs.request_run(admin, "ALPHA", scenario, RunRequest()).id

    plane.max_concurrent_runs_per_user = 2
    one_a, one_b, two, three_a, three_b = (request(s) for s in ("one", "one", "two", "three", "three"))
    claimed = [plane.runs.claim_next("elsewhere:1:x", 0) for _ in range(3)]
    assert claimed == [one_a, two, None]  # one_b waits for one_a (queue); then the per-user limit
    plane.max_concurrent_runs_per_user = 10
    assert plane.runs.claim_next("elsewhere:1:x", 4) is None  # this engine's own limit (4)
    assert [plane.runs.claim_next("elsewhere:1:x", 0) for _ in range(3)] == [three_a, three_b, None]
    ours = request("three")
    assert plane.runs.claim_next(this_worker(), 0) == ours

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    workers = {
        one_a: f"{host}:{dead.pid}:cafe0001",  # a dead process on this host
        two: f"{host}:{os.getpid()}:cafe0002",  # this pid, an earlier incarnation
        three_a: "elsewhere:1:x",  # another host, silent for ten minutes
        three_b: "elsewhere:2:y",  # another host, alive
    }
    with plane.db.write() as session:
        for run_id, worker in workers.items():
            heartbeat = utcnow() - timedelta(minutes=10 if run_id == three_a else 0)
            session.execute(
                update(ScenarioRun).where(ScenarioRun.id == run_id).values(worker=worker, heartbeat_at=heartbeat)
            )
        session.get_one(RunStep, (one_a, 0)).state = "running"
        token = ApiToken(user_id=admin.user_id, name="run", prefix="x", digest="d" * 64, project_id=None)
        session.add(token)
        session.flush()
        session.get_one(ScenarioRun, one_a).token_id = token.id
        token_id = token.id
    mine = request("one")  # queued behind one_b

    recovered = plane.runs.recover(timedelta(minutes=5))
    assert sorted(recovered) == sorted([one_a, two, three_a])
    with plane.db.read() as session:
        runs = {r.id: r for r in session.scalars(select(ScenarioRun))}
        crashed = runs[one_a]
        assert crashed.state == "failed" and crashed.ended_at is not None
        assert crashed.message.startswith(f"The control plane running this run ({workers[one_a]}) stopped; last heard")
        assert [(s.state, s.message) for s in sorted(crashed.steps, key=lambda s: s.position)] == [
            ("failed", "interrupted: the control plane stopped"),
            ("skipped", ""),
        ]
        assert session.get(ApiToken, token_id) is None
        assert runs[two].state == "failed" and runs[three_a].state == "failed"
        assert runs[three_b].state == "running" and runs[ours].state == "running"
        assert runs[one_b].state == "queued" and runs[mine].state == "queued"
    assert plane.runs.recover(timedelta(minutes=5)) == []

    # An abort asked of a run held elsewhere reaches its engine with the next heartbeat.
    plane.runs.abort(admin, "ALPHA", "three", three_b)
    assert plane.runs.heartbeat("elsewhere:2:y") == [three_b]
    # Starting an engine marks failed what a stopped control plane left running.
    with plane.db.write() as session:
        session.execute(
            update(ScenarioRun)
            .where(ScenarioRun.id == three_b)
            .values(worker=f"{host}:{dead.pid}:cafe0003", abort_requested=False)
        )
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=False)
    with plane.db.read() as session:
        assert session.get_one(ScenarioRun, three_b).state == "failed"
    # ... and runs what was queued behind the crashed run.
    deadline = time.monotonic() + 20
    while True:
        with plane.db.read() as session:
            states = [session.get_one(ScenarioRun, r).state for r in (one_b, mine)]
        if states == ["succeeded", "succeeded"]:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)


def test_a_lone_reference_keeps_the_variables_type() -> None:
    variables = {"n": 5, "ratio": 0.8, "day": "2018-06-01"}
    expanded = typed_expand({"a": "${n}", "b": "${ratio}", "c": "day ${day}", "d": "$${n}", "e": 3}, variables)
    assert expanded == {"a": 5, "b": 0.8, "c": "day 2018-06-01", "d": "${n}", "e": 3}
