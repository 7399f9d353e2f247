"""The scheduler with 10,000 active time-triggered scenarios: loading, firing a burst, idling.

One run, on a fresh temporary data folder (SQLite, or the empty database given by ``--db-url``):

1. creates a user ``bench`` (administrator), ``--projects`` projects and ``--scenarios`` active
   scenarios of one cheap step (``set_variables`` with values: no code, no dataset). Each has one
   time trigger in one of a dozen time zones: the first ``--burst`` fire every minute (``every 1
   minutes`` or ``* * * * *``), the others hourly, daily, on weekdays or weekly, as simple forms or
   cron expressions, drawn so that none fires from 5 minutes before the start to 30 minutes after
   (they only weigh on the heap). All were last saved 30 days ago, so that loading them looks for
   fires they missed (the catch-up policy is the default, ``skip``).
   ``--saved`` of them are saved through ``ScenarioService.save_scenario`` (timed); the rest are
   bulk-inserted as ``Scenario`` rows through SQLAlchemy: each definition is validated with
   ``ScenarioDefinition`` and stored as ``save_scenario`` stores it, but without its checks,
   snapshots or audit entries (saving 10,000 one audited transaction at a time takes minutes);
2. (a) times ``Scheduler.load()`` and counts its SQL statements;
3. starts the scheduler's thread with an injected clock (the real clock shifted so that the next
   minute boundary, where the ``--burst`` scenarios fire together, is ``--idle-seconds`` + 2 s
   away), then
   (c) measures the CPU time this process uses over ``--idle-seconds`` while nothing is due
   (``time.process_time()``: the scheduler thread is the only one awake), and
   (b) measures, for every run of the burst, the delay from its fire time to the moment the run
   is committed (``RunQueued`` events are published right after the commit);
4. measures a naive scheduler's cost: scanning every scenario each second, computing the next
   fire of its cron expression in its time zone with croniter, and prints the CPU ratio;
5. runs APScheduler 3 (memory job store, thread pool executor) on the same triggers in a virtual
   environment of its own (``~/.cache/himalia-bench/apscheduler``, created on the first run): the
   time to add the 10,000 cron jobs and start, and for the burst (the same 1,000 jobs, firing at
   a second a few seconds ahead) the delay from each fire time to the job's submission to the
   executor (``EVENT_JOB_SUBMITTED``), and prints Himalia / APScheduler ratios. ``--no-apscheduler``
   skips it.

No run engine runs: the runs are created and stay queued (``max_queued_runs`` is raised above the
burst, so that they are queued rather than recorded as skipped). It prints figures and ratios and
never asserts timings.

    .venv/bin/python benchmarks/bench_scheduler.py                  # about 1-2 minutes
    .venv/bin/python benchmarks/bench_scheduler.py --scenarios 50000 --burst 5000
    .venv/bin/python benchmarks/bench_scheduler.py --db-url postgresql+psycopg://user@host/emptydb
"""

import argparse
import json
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from cryptography.fernet import Fernet
from sqlalchemy import Engine, MetaData, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url

from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission
from himalia.identity.caller import Caller
from himalia.scenarios.scheduler import Scheduler
from himalia.store.db import Database
from himalia.store.events import RunQueued
from himalia.store.orm import Project, Scenario, ScenarioRun, User, utcnow
from himalia.wire.definitions import WEEKDAYS, ScenarioDefinition, TimeTrigger
from himalia.wire.identity import CreateGroup, CreateProject, CreateUser
from himalia.wire.scenarios import SaveScenario

USER = "bench"
ZONES = (
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Africa/Nairobi",
)
#: The other scenarios are drawn again until they fire neither this far back (a scheduler starting
#: fires what came due within its misfire grace) nor this far ahead.
QUIET_BEFORE = timedelta(minutes=5)
QUIET_AFTER = timedelta(minutes=30)
#: When the scenarios were last saved: long ago, so that loading them checks what they missed.
SAVED_AGO = timedelta(days=30)


def burst_trigger(rng: random.Random, index: int) -> dict[str, Any]:
    form = {"schedule": "every 1 minutes"} if index % 2 == 0 else {"cron": "* * * * *"}
    return {"type": "time", **form, "timezone": rng.choice(ZONES)}


def quiet_trigger(rng: random.Random, now: datetime) -> dict[str, Any]:
    """An hourly, daily, weekday or weekly trigger that does not fire around ``now``."""
    while True:
        hour, minute = rng.randrange(24), rng.randrange(60)
        form = rng.choice(
            [
                {"schedule": f"hourly at :{minute:02d}"},
                {"schedule": f"daily at {hour:02d}:{minute:02d}"},
                {"schedule": f"weekdays at {hour}:{minute:02d}"},
                {"schedule": f"weekly on {rng.choice(WEEKDAYS)} at {hour:02d}:{minute:02d}"},
                {"cron": f"{minute} {hour} * * *"},
                {"cron": f"{minute} {hour} * * 1-5"},
                {"cron": f"{minute} {hour},{(hour + 12) % 24} * * *"},
                {"cron": f"{minute} */6 * * *"},
                {"cron": f"{minute} {hour} 1,15 * *"},
            ]
        )
        trigger = {"type": "time", **form, "timezone": rng.choice(ZONES)}
        if TimeTrigger.model_validate(trigger).next_fire(now - QUIET_BEFORE) - now >= QUIET_AFTER:
            return trigger


def definition(index: int, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"s{index:06d}",
        "name": f"Scenario {index}",
        "steps": [{"name": "mark", "type": "set_variables", "values": {"index": index}}],
        "triggers": [trigger],
    }


def project_key(index: int) -> str:
    return f"P{index:04d}"


# -- seeding --------------------------------------------------------------------------------------


def seed(plane: ControlPlane, args: argparse.Namespace) -> tuple[list[dict[str, Any]], float, float]:
    """Users, projects and scenarios; the definitions, ms per service save, s of validation + insert."""
    operator = Caller.operator("bench", client_address="bench")
    plane.users.create_group(operator, CreateGroup(name="bench-admins", permissions=[GlobalPermission.ADMIN]))
    plane.users.create_user(operator, CreateUser(login=USER, groups=["bench-admins"]))
    caller = plane.users.caller_for(USER)
    for p in range(args.projects):
        plane.projects.create_project(caller, CreateProject(key=project_key(p), name=f"Project {p}"))

    rng = random.Random(args.seed)
    now = utcnow()
    definitions = [
        definition(i, burst_trigger(rng, i) if i < args.burst else quiet_trigger(rng, now))
        for i in range(args.scenarios)
    ]
    # The service saves: spread over the population (a few fire in the burst, most do not).
    saved = set(rng.sample(range(args.scenarios), min(args.saved, args.scenarios)))
    started = time.perf_counter()
    for i in sorted(saved):
        spec = SaveScenario.model_validate({"definition": definitions[i]})
        plane.scenarios.save_scenario(caller, project_key(i % args.projects), spec)
    per_save = (time.perf_counter() - started) / max(len(saved), 1) * 1000

    started = time.perf_counter()
    with plane.db.write() as session:
        user_id = session.scalar(select(User.id).where(User.login == USER))
        project_ids = {key: id_ for key, id_ in session.execute(select(Project.key, Project.id))}
        stamp = utcnow()
        rows = []
        for i, plain in enumerate(definitions):
            if i in saved:
                continue
            validated = ScenarioDefinition.model_validate(plain)
            rows.append(
                {
                    "project_id": project_ids[project_key(i % args.projects)],
                    "slug": validated.id,
                    "name": validated.name,
                    "active": True,
                    "definition": validated.model_dump(mode="json"),
                    "notebooks": {},
                    "owner_id": user_id,
                    "run_as_id": user_id,
                    "updated_by_id": user_id,
                    "revision": 1,
                    "trigger_state": {},
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        for start in range(0, len(rows), 2000):
            session.execute(insert(Scenario), rows[start : start + 2000])
        # All of them saved long ago, the service's saves included.
        session.execute(update(Scenario).values(created_at=stamp - SAVED_AGO, updated_at=stamp - SAVED_AGO))
    return definitions, per_save, time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------------------


@contextmanager
def recording(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


class ShiftedClock:
    """The real clock plus an offset the benchmark sets: the scheduler's injectable ``now``.

    Once the scheduler's ``loaded`` is set, reading it waits for ``shifted``: a scheduler that loads
    with the real clock finds the every-minute triggers due at once (late by less than the grace),
    and would fire them before the benchmark read the boundary and moved the clock back before it.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.loaded: threading.Event | None = None
        self.shifted = threading.Event()

    def __call__(self) -> datetime:
        if self.loaded is not None and self.loaded.is_set():
            self.shifted.wait()
        return utcnow() + self.offset


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def count_runs(plane: ControlPlane) -> int:
    with plane.db.read() as session:
        return session.scalar(select(func.count()).select_from(ScenarioRun)) or 0


def naive_scan_seconds(definitions: list[dict[str, Any]], scans: int) -> float:
    """CPU seconds of one scan of a naive scheduler: every trigger's next fire after the previous
    tick, computed with croniter in the trigger's zone, compared with now. The expressions and zones
    are parsed once up front, which a naive scheduler would also do (it would also have to re-read
    the scenarios from the store to see changes: not counted)."""
    triggers = []
    for plain in definitions:
        for trigger in ScenarioDefinition.model_validate(plain).triggers:
            assert isinstance(trigger, TimeTrigger)
            triggers.append((trigger.expression(), ZoneInfo(trigger.timezone)))
    costs = []
    for _ in range(scans):
        now = utcnow()
        previous_tick = now - timedelta(seconds=1)
        due = 0
        started = time.process_time()
        for expression, zone in triggers:
            fire: datetime = croniter(expression, previous_tick.astimezone(zone)).get_next(datetime)
            if fire <= now:
                due += 1
        costs.append(time.process_time() - started)
    return statistics.median(costs)


# -- APScheduler, the alternative -----------------------------------------------------------------

APSCHEDULER = "apscheduler>=3.10,<4"
APSCHEDULER_VENV = Path.home() / ".cache" / "himalia-bench" / "apscheduler"
#: Run by APScheduler's interpreter: reads the triggers (cron expression, zone) on stdin, prints JSON.
APSCHEDULER_SCRIPT = r"""
import json, math, sys, threading, time
from datetime import datetime, timedelta, timezone
from apscheduler.events import EVENT_JOB_SUBMITTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

spec = json.load(sys.stdin)
burst, triggers = spec["burst"], spec["triggers"]
delays, lock, done = [], threading.Lock(), threading.Event()

def submitted(event):
    moment = datetime.now(timezone.utc)
    with lock:
        delays.append((moment - event.scheduled_run_times[0]).total_seconds())
        if len(delays) >= burst:
            done.set()

def nothing():
    pass

scheduler = BackgroundScheduler(job_defaults={"misfire_grace_time": 60, "coalesce": True})
scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
# The burst jobs fire every minute at one second, a few seconds ahead; the others never soon.
at = datetime.now(timezone.utc) + timedelta(seconds=spec["lead"])
started = time.perf_counter()
for index, (expression, zone) in enumerate(triggers):
    if index < burst:
        trigger = CronTrigger(second=at.second, timezone=zone)
    else:
        trigger = CronTrigger.from_crontab(expression, timezone=zone)
    scheduler.add_job(nothing, trigger, id=str(index))
scheduler.start()
load = time.perf_counter() - started
done.wait(spec["lead"] + 70)
scheduler.shutdown(wait=False)
print(json.dumps({"load": load, "delays": delays}))
"""


def apscheduler_python() -> Path:
    """APScheduler's interpreter, in a virtual environment of its own, made on the first run."""
    python = APSCHEDULER_VENV / "bin" / "python"
    if not python.exists():
        print(f"  installing {APSCHEDULER} into {APSCHEDULER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(APSCHEDULER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", APSCHEDULER], check=True)
    return python


def run_apscheduler(definitions: list[dict[str, Any]], burst: int) -> tuple[float, list[float], str]:
    """APScheduler's load of the same triggers and its burst delays; and its version."""
    triggers = []
    for plain in definitions:
        trigger = ScenarioDefinition.model_validate(plain).triggers[0]
        assert isinstance(trigger, TimeTrigger)
        triggers.append((trigger.expression(), trigger.timezone))
    python = apscheduler_python()
    version = subprocess.run(
        [str(python), "-c", "import apscheduler; print(apscheduler.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    spec = json.dumps({"burst": burst, "triggers": triggers, "lead": 6})
    done = subprocess.run(
        [str(python), "-c", APSCHEDULER_SCRIPT],
        input=spec,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    result = json.loads(done.stdout)
    return result["load"], result["delays"], version


# -- main -----------------------------------------------------------------------------------------


def drop_everything(url: str) -> None:
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=10_000, help="active scenarios (default 10,000)")
    parser.add_argument("--burst", type=int, default=1000, help="of which fire every minute (default 1,000)")
    parser.add_argument("--projects", type=int, default=20, help="projects they are spread over (default 20)")
    parser.add_argument("--saved", type=int, default=20, help="of which saved through the service (default 20)")
    parser.add_argument("--load-runs", type=int, default=3, help="timed load() calls (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window (default 10 s)")
    parser.add_argument("--naive-scans", type=int, default=3, help="timed scans of the naive scheduler (default 3)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--no-apscheduler", action="store_true", help="skip the APScheduler comparison")
    parser.add_argument(
        "--db-url", help="SQLAlchemy URL of an EMPTY database to use instead of a temporary SQLite file"
    )
    parser.add_argument("--keep-db", action="store_true", help="with --db-url: leave the seeded tables in place")
    args = parser.parse_args()
    if not 1 <= args.burst <= args.scenarios or args.projects < 1:
        parser.error("--burst must be between 1 and --scenarios, --projects at least 1")

    with tempfile.TemporaryDirectory(prefix="himalia-bench-scheduler-") as folder:
        db_url = args.db_url or f"sqlite:///{Path(folder) / 'himalia.sqlite'}"
        if args.db_url:
            probe = Database(db_url)
            try:
                if not probe.is_empty():
                    print(f"Refusing to seed {probe.engine.url!r}: it already holds tables.", file=sys.stderr)
                    return 2
            finally:
                probe.dispose()
        try:
            return run(args, Path(folder), db_url)
        finally:
            if args.db_url and not args.keep_db:
                drop_everything(db_url)


def run(args: argparse.Namespace, home: Path, db_url: str) -> int:
    overall = time.perf_counter()
    plane = ControlPlane(
        home=str(home),
        db_url=db_url,
        secret_keys=[Fernet.generate_key().decode()],
        audit_key=secrets.token_hex(32),
        max_queued_runs=args.burst * 2 + 100,
        run_scenarios=False,
    )
    plane.start()
    scheduler: Scheduler | None = None
    try:
        started = time.perf_counter()
        definitions, per_save, bulk = seed(plane, args)
        seeding = time.perf_counter() - started
        shown = db_url if plane.db.dialect == "sqlite" else repr(make_url(db_url))
        print(f"Himalia scheduler benchmark on {plane.db.dialect} ({shown})")
        print(
            f"Seeded in {seeding:.1f} s: {args.scenarios:,} active scenarios over {args.projects} projects, "
            f"{args.burst:,} firing every minute, the rest hourly to weekly in {len(ZONES)} time zones.\n"
            f"  {min(args.saved, args.scenarios)} saved through ScenarioService: {per_save:.1f} ms each "
            f"(10,000 would take {per_save * 10:.0f} s); the rest validated and bulk-inserted in {bulk:.1f} s."
        )

        # (a) load()
        loads, statements, begins = [], 0, 0
        for _ in range(max(args.load_runs, 1)):
            probe = plane.new_scheduler()
            with recording(plane.db.engine) as executed:
                started = time.perf_counter()
                probe.load()
                loads.append(time.perf_counter() - started)
            begins = sum(1 for statement in executed if statement.lstrip().upper().startswith("BEGIN"))
            statements = len(executed) - begins
        print(
            f"\n(a) Scheduler.load() of {args.scenarios:,} scenarios: median {statistics.median(loads):.2f} s "
            f"over {len(loads)} calls ({' '.join(f'{t:.2f}' for t in loads)}); "
            f"{statements:,} SQL statements each" + (f" (+{begins:,} BEGIN)" if begins else "")
        )

        # The scheduler under test: started (its thread loads: start() returns at once), then its clock
        # is shifted so that the burst is idle + 2 s away.
        clock = ShiftedClock()
        scheduler = plane.new_scheduler(clock)
        clock.loaded = scheduler.loaded
        started = time.perf_counter()
        scheduler.start()
        start_returned = time.perf_counter() - started
        scheduler.loaded.wait()
        live_load = time.perf_counter() - started
        due = scheduler.next_due()
        assert due is not None, "the burst scenarios are scheduled"
        created: dict[int, datetime] = {}
        lock = threading.Lock()

        def on_queued(event: RunQueued) -> None:
            moment = utcnow()
            with lock:
                created[event.run_id] = moment

        plane.events.subscribe(RunQueued, on_queued)
        lead = args.idle_seconds + 2.0
        clock.offset = due - timedelta(seconds=lead) - utcnow()
        clock.shifted.set()
        scheduler.wake()

        # (c) idle CPU
        time.sleep(0.5)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        time.sleep(args.idle_seconds)
        idle_cpu = time.process_time() - cpu_before
        idle_wall = time.perf_counter() - wall_before
        fired_early = count_runs(plane)

        # (b) the burst
        # Until every burst run exists, or none came for 10 s (fires later than the grace are not run).
        last_count, last_progress = 0, time.monotonic() + 2.0
        while time.monotonic() - last_progress < 10.0:
            with lock:
                done = len(created)
            if done >= args.burst:
                break
            if done != last_count:
                last_count, last_progress = done, time.monotonic()
            time.sleep(0.2)
        time.sleep(0.5)
        scheduler.stop()
        with plane.db.read() as session:
            rows = session.execute(select(ScenarioRun.id, ScenarioRun.state, ScenarioRun.trigger_detail)).all()
        delays = []
        for run_id, _state, detail in rows:
            if run_id in created and "fire_time" in detail:
                fire_time = datetime.fromisoformat(detail["fire_time"])
                delays.append((created[run_id] + clock.offset - fire_time).total_seconds())
        states = sorted({state for _, state, _ in rows})
    finally:
        if scheduler is not None:
            scheduler.stop()
        plane.stop()

    print(
        f"\n(b) Burst: {args.burst:,} scenarios due at the same minute boundary; {len(rows):,} runs created "
        f"({', '.join(states) or 'none'}), {fired_early} before the boundary."
    )
    if delays:
        spread = max(delays) - min(delays)
        print(
            f"  delay from fire time to committed run: first {min(delays) * 1000:.0f} ms, "
            f"median {statistics.median(delays) * 1000:.0f} ms, p99 {percentile(delays, 0.99) * 1000:.0f} ms, "
            f"last {max(delays) * 1000:.0f} ms"
        )
        rate = (len(delays) - 1) / spread if spread > 0 and len(delays) > 1 else float("nan")
        print(
            f"  dispatch rate: {rate:.0f} runs/s ({1000 / rate:.1f} ms per run). A fire later than the 60 s misfire "
            f"grace is left to the catch-up policy (default: skip), so at this rate one process fires on time "
            f"about {rate * 60:,.0f} runs due in the same minute"
        )
    if len(delays) < args.burst:
        print(
            f"  ONLY {len(delays):,} of {args.burst:,} burst runs were created: the others were due more than the "
            "misfire grace before the scheduler reached them"
        )

    idle_share = idle_cpu / idle_wall * 100
    naive = naive_scan_seconds(definitions, args.naive_scans)
    naive_share = naive * 100  # one scan per second
    print(
        f"\n(c) Idle: {idle_cpu * 1e6:.0f} µs of CPU over {idle_wall:.1f} s with the scheduler thread waiting "
        f"for the burst = {idle_share:.4f}% of one core (the whole process's CPU time)."
    )
    verdict = ": it cannot keep up" if naive_share > 100 else ""
    print(
        f"  naive scheduler (croniter next fire of every scenario, each second): {naive * 1000:.0f} ms per scan = "
        f"{naive_share:.1f}% of one core{verdict}"
    )
    if idle_cpu > 0:
        print(f"  naive / scheduler CPU: {naive_share / idle_share:,.0f}x")
    else:
        print("  naive / scheduler CPU: the scheduler used no measurable CPU")
    print(
        f"\n(the live scheduler: start() returned after {start_returned * 1000:.1f} ms, its thread had loaded "
        f"{live_load:.2f} s after)"
    )
    if not args.no_apscheduler:
        aps_load, aps_delays, version = run_apscheduler(definitions, args.burst)
        ours = statistics.median(loads)
        print(
            f"\n(d) APScheduler {version} (memory job store) on the same {args.scenarios:,} triggers: adding them "
            f"and starting {aps_load:.2f} s; Himalia's load() / APScheduler's: {ours / aps_load:.2f}x"
        )
        if aps_delays and delays:
            aps_p99, our_p99 = percentile(aps_delays, 0.99), percentile(delays, 0.99)
            print(
                f"  burst of {len(aps_delays):,}: fire time to submission median "
                f"{statistics.median(aps_delays) * 1000:.0f} ms, p99 {aps_p99 * 1000:.0f} ms; Himalia's p99 (to a "
                f"committed, audited run) / APScheduler's (to a job handed to its thread pool): "
                f"{our_p99 / aps_p99:.2f}x"
            )
    print(f"\ntotal {time.perf_counter() - overall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
