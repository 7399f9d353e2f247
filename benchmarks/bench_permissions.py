"""Permission-heavy reads over HTTP: the project listing and the authorization matrix.

One run, on a fresh temporary data folder (SQLite, or the empty database given by ``--db-url``):

1. seeds 2,000 projects, 200 groups and a user ``bench`` in 20 of them; every group is granted
   a mixed preset on ~1% of the projects and ``bench`` holds a few direct grants;
2. counts, in-process, the SQL statements one listing, one matrix and one token check issue,
   with a tenth of the projects seeded and with all of them (the counts must not grow);
3. starts a real ``jupyter server`` from this interpreter, in which the Himalia extension serves
   the API in-process, and times sequential keep-alive requests of ``bench``'s listing and
   matrix against the Jupyter server's own ``/api/status`` as the baseline;
4. measures each endpoint's throughput at ``--concurrency`` (10) keep-alive connections, driven by
   ``http_load.py`` in a separate process, in rounds whose order rotates.

It prints figures and ratios and never asserts timings.

    .venv/bin/python benchmarks/bench_permissions.py
    .venv/bin/python benchmarks/bench_permissions.py --db-url postgresql+psycopg://user@host/emptydb
"""

import argparse
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from sqlalchemy import Engine, MetaData, create_engine, event, insert, select
from sqlalchemy.engine import make_url

from himalia.controlplane import ControlPlane
from himalia.core.permissions import PROJECT_PRESETS, GlobalPermission, ProjectPermission, expand_project_permissions
from himalia.identity.caller import Caller
from himalia.store.db import Database
from himalia.store.orm import Group, Project, ProjectGrant, User, utcnow
from himalia.wire.identity import CreateGroup, CreateToken, CreateUser, SetGrant

API = "/himalia/api/v1"
USER = "bench"
OWNER = "bench-owner"
#: How often each preset is picked for a group grant: mostly consumers, a few admins.
PRESET_WEIGHTS = {"reader": 45, "launcher": 20, "contributor": 25, "admin": 10}
#: Share of the projects seeded before the first statement count.
SMALL_SHARE = 10


@dataclass(frozen=True)
class Plan:
    """What to seed, decided up front so that it can be inserted in two slices of projects."""

    projects: int
    group_names: list[str]
    user_groups: list[str]
    #: (project index, group index, preset)
    group_grants: list[tuple[int, int, str]]
    #: (project index, preset), granted to ``USER`` directly through the service
    user_grants: list[tuple[int, str]]


def make_plan(projects: int, groups: int, user_groups: int, direct_grants: int, seed: int) -> Plan:
    rng = random.Random(seed)
    names = [f"team-{i:03d}" for i in range(groups)]
    per_group = max(1, round(projects / 100))
    presets, weights = list(PRESET_WEIGHTS), list(PRESET_WEIGHTS.values())
    group_grants = [
        (project, group, rng.choices(presets, weights)[0])
        for group in range(groups)
        for project in rng.sample(range(projects), per_group)
    ]
    user_grants = [(p, rng.choices(presets, weights)[0]) for p in rng.sample(range(projects), direct_grants)]
    return Plan(projects, names, rng.sample(names, user_groups), group_grants, user_grants)


def project_key(index: int) -> str:
    return f"P{index:05d}"


def seed_people(plane: ControlPlane, operator: Caller, plan: Plan) -> None:
    """Groups and users through the services, so that these rows are audited as usual."""
    for position, name in enumerate(plan.group_names):
        # A few groups carry a global permission, so that the caller and the matrix have some.
        permissions = [GlobalPermission.CREATE_PROJECTS] if position % 50 == 0 else []
        plane.users.create_group(operator, CreateGroup(name=name, description=f"Team {name}", permissions=permissions))
    plane.users.create_user(operator, CreateUser(login=OWNER, display_name="Owner of the seeded projects"))
    plane.users.create_user(operator, CreateUser(login=USER, display_name="Benchmark user", groups=plan.user_groups))


def seed_projects(plane: ControlPlane, operator: Caller, plan: Plan, start: int, stop: int) -> None:
    """Projects ``start``..``stop - 1`` and their grants.

    Projects and group grants go in as bulk inserts through SQLAlchemy: creating 2,000 projects
    and 4,000 grants one service call (one audited transaction, ~4-5 ms on SQLite) at a time
    takes ~25 s, twice the rest of the benchmark. Those rows therefore have NO audit entries and bypass the services'
    checks; they are built exactly as ``create_project`` and ``set_grant`` build theirs (the
    owner holds every permission, a preset is stored expanded). The direct grants to ``USER``
    go through ``ProjectService.set_grant`` and are audited.
    """
    with plane.db.write() as session:
        owner_id = session.scalar(select(User.id).where(User.login == OWNER))
        group_ids = {name: id_ for name, id_ in session.execute(select(Group.name, Group.id))}
        now = utcnow()
        session.execute(
            insert(Project),
            [
                {
                    "key": project_key(i),
                    "name": f"Project {i}",
                    "description": f"Seeded project number {i}.",
                    "owner_id": owner_id,
                    "tags": [f"area-{i % 7}"],
                    "status": "active",
                    "variables": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, stop)
            ],
        )
        keys = [project_key(i) for i in range(start, stop)]
        project_ids = {
            key: id_ for key, id_ in session.execute(select(Project.key, Project.id).where(Project.key.in_(keys)))
        }
        rows: list[dict[str, Any]] = [
            {"project_id": project_ids[key], "user_id": owner_id, "permission": p.value}
            for key in keys
            for p in ProjectPermission
        ]
        rows += [
            {"project_id": project_ids[project_key(p)], "group_id": group_ids[plan.group_names[g]], "permission": perm}
            for p, g, preset in plan.group_grants
            if start <= p < stop
            for perm in sorted(expand_project_permissions(PROJECT_PRESETS[preset]))
        ]
        session.execute(insert(ProjectGrant), rows)
    for p, preset in plan.user_grants:
        if start <= p < stop:
            plane.projects.set_grant(operator, project_key(p), SetGrant(user=USER, preset=preset))


# -- statement counts ---------------------------------------------------------------------------


@contextmanager
def recording(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends to the database inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def describe_count(statements: list[str]) -> str:
    """``3`` or ``3 +1 BEGIN``: SQLite's explicit BEGIN is shown apart (PostgreSQL's is implicit)."""
    verbs = Counter(statement.split(None, 1)[0].upper() for statement in statements)
    begins = verbs.pop("BEGIN", 0)
    text = str(sum(verbs.values()))
    if set(verbs) - {"SELECT"}:
        text += " (" + ", ".join(f"{n} {verb}" for verb, n in sorted(verbs.items())) + ")"
    return text + (f" +{begins} BEGIN" if begins else "")


def count_statements(plane: ControlPlane, token: str) -> tuple[dict[str, str], int, int]:
    """Statements per call for the three verbs an HTTP request of the benchmark runs."""
    caller = plane.users.caller_for(USER)
    plane.tokens.authenticate(token, "bench")  # refreshes last_used_at, so the next one only reads
    counts: dict[str, str] = {}
    with recording(plane.db.engine) as statements:
        plane.tokens.authenticate(token, "bench")
    counts["tokens.authenticate (every request)"] = describe_count(statements)
    with recording(plane.db.engine) as statements:
        page = plane.projects.list_projects(caller, 50, 0)
    counts["projects.list_projects(limit=50)"] = describe_count(statements)
    with recording(plane.db.engine) as statements:
        matrix = plane.projects.auth_matrix(caller)
    counts["projects.auth_matrix()"] = describe_count(statements)
    return counts, page.total, len(matrix.projects)


# -- the Jupyter server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_jupyter(
    home: Path, db_url: str, secret_key: str, audit_key: str, jupyter_token: str, port: int
) -> tuple[subprocess.Popen[bytes], Path]:
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={jupyter_token}",
        f"--ServerApp.root_dir={home}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {
        **os.environ,
        "HIMALIA_HOME": str(home),
        # The keys the store was seeded with: the extension appends to the same audit chain.
        "HIMALIA_SECRET_KEYS": secret_key,
        "HIMALIA_AUDIT_KEY": audit_key,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    env.pop("HIMALIA_DB_URL", None)
    if make_url(db_url).password is None:
        command.append(f"--ControlPlane.db_url={db_url}")
    else:
        env["HIMALIA_DB_URL"] = db_url  # keep the password out of the process list
    log_path = home / "jupyter-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home, start_new_session=True
        )
    return process, log_path


def wait_until_up(
    process: subprocess.Popen[bytes], http: requests.Session, base: str, headers: dict[str, str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited with status {process.returncode}")
        try:
            if http.get(base + "/api/status", headers=headers, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"jupyter server did not answer within {timeout:.0f} s")


def stop_jupyter(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    path: str
    headers: dict[str, str]


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def get(http: requests.Session, base: str, target: Target) -> requests.Response:
    response = http.get(base + target.path, headers=target.headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{target.label}: HTTP {response.status_code}: {response.text[:300]}")
    return response


def measure(
    http: requests.Session, base: str, targets: list[Target], requests_each: int, warmup: int
) -> dict[str, list[float]]:
    """Sequential requests on one keep-alive connection, the targets interleaved round by round
    so that drift (other processes, CPU frequency) weighs on all of them alike."""
    for _ in range(warmup):
        for target in targets:
            get(http, base, target)
    samples: dict[str, list[float]] = {t.label: [] for t in targets}
    for _ in range(requests_each):
        for target in targets:
            started = time.perf_counter()
            get(http, base, target)
            samples[target.label].append((time.perf_counter() - started) * 1000)
    return samples


def throughput(port: int, target: Target, concurrency: int, seconds: float) -> float:
    """Requests per second at ``concurrency`` connections, the load generator in its own process."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("http_load.py")),
        f"--port={port}",
        f"--path={target.path}",
        f"--concurrency={concurrency}",
        f"--seconds={seconds}",
    ]
    command += [f"--header={name}: {value}" for name, value in target.headers.items()]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=False).stdout)
    if "error" in result:
        raise RuntimeError(f"{target.label} at c={concurrency}: {result['error']}")
    return float(result["per_second"])


def measure_throughput(
    port: int, targets: list[Target], concurrency: int, seconds: float, rounds: int
) -> dict[str, list[float]]:
    """``rounds`` runs per target, the order rotating each round so that drift weighs on all alike."""
    rates: dict[str, list[float]] = {t.label: [] for t in targets}
    for round_ in range(rounds):
        for target in targets[round_ % len(targets) :] + targets[: round_ % len(targets)]:
            rates[target.label].append(throughput(port, target, concurrency, seconds))
    return rates


# -- main --------------------------------------------------------------------------------------


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
    parser.add_argument(
        "--db-url", help="SQLAlchemy URL of an EMPTY database to use instead of a temporary SQLite file"
    )
    parser.add_argument("--keep-db", action="store_true", help="with --db-url: leave the seeded tables in place")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per endpoint first (default 20)")
    parser.add_argument("--concurrency", type=int, default=10, help="connections of the throughput runs (10)")
    parser.add_argument("--load-seconds", type=float, default=3.0, help="length of one throughput run (3 s)")
    parser.add_argument("--load-rounds", type=int, default=3, help="throughput runs per endpoint (3)")
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--user-groups", type=int, default=20, help="groups the benchmark user belongs to")
    parser.add_argument("--direct-grants", type=int, default=10, help="projects granted to the user directly")
    parser.add_argument("--seed", type=int, default=2024, help="random seed of the grant layout")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="himalia-bench-") as folder:
        home = Path(folder)
        db_url = args.db_url or f"sqlite:///{home / 'himalia.sqlite'}"
        if args.db_url:
            probe = Database(db_url)
            try:
                if not probe.is_empty():
                    print(f"Refusing to seed {probe.engine.url!r}: it already holds tables.", file=sys.stderr)
                    return 2
            finally:
                probe.dispose()
        try:
            return run(args, home, db_url)
        finally:
            if args.db_url and not args.keep_db:
                drop_everything(db_url)


def run(args: argparse.Namespace, home: Path, db_url: str) -> int:
    secret_key = Fernet.generate_key().decode()
    audit_key = secrets.token_hex(32)
    plan = make_plan(args.projects, args.groups, args.user_groups, args.direct_grants, args.seed)
    small = max(1, args.projects // SMALL_SHARE)

    plane = ControlPlane(home=str(home), db_url=db_url, secret_keys=[secret_key], audit_key=audit_key)
    plane.start()
    try:
        backend = plane.db.dialect
        operator = Caller.operator()
        started = time.perf_counter()
        seed_people(plane, operator, plan)
        token = plane.tokens.create_token(operator, CreateToken(user=USER, name="benchmark")).token
        seed_projects(plane, operator, plan, 0, small)
        counts_small, visible_small, _ = count_statements(plane, token)
        seed_projects(plane, operator, plan, small, args.projects)
        seeding = time.perf_counter() - started
        counts_full, visible_in_process, matrix_in_process = count_statements(plane, token)
        with plane.db.read() as session:
            grant_rows = len(session.scalars(select(ProjectGrant.id)).all())
    finally:
        plane.stop()

    print(f"Himalia permission benchmark on {backend} ({db_url if backend == 'sqlite' else make_url(db_url)!r})")
    print(
        f"Seeded in {seeding:.1f} s: {args.projects} projects, {args.groups} groups, {grant_rows} grant rows; "
        f"'{USER}' is in {args.user_groups} groups and holds {args.direct_grants} direct grants."
    )
    print()
    print("SQL statements per call (in-process, counted on plane.db.engine):")
    width = max(len(name) for name in counts_full)
    print(f"  {'':{width}}  {f'{small} projects':>16}  {f'{args.projects} projects':>16}")
    for name in counts_full:
        print(f"  {name:{width}}  {counts_small[name]:>16}  {counts_full[name]:>16}")
    print(f"  {'(projects the user sees)':{width}}  {visible_small:>16}  {visible_in_process:>16}")
    print()

    jupyter_token = secrets.token_hex(24)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    user_headers = {"Authorization": f"token {token}"}
    targets = [
        Target(f"GET {API}/projects?limit=50", f"{API}/projects?limit=50", user_headers),
        Target(f"GET {API}/auth-matrix", f"{API}/auth-matrix", user_headers),
        Target("GET /api/status (Jupyter baseline)", "/api/status", {"Authorization": f"token {jupyter_token}"}),
    ]
    process, log_path = start_jupyter(home, db_url, secret_key, audit_key, jupyter_token, port)
    try:
        with requests.Session() as http:
            started = time.perf_counter()
            wait_until_up(process, http, base, targets[2].headers, timeout=60)
            boot = time.perf_counter() - started
            listing = get(http, base, targets[0]).json()
            matrix = get(http, base, targets[1]).json()
            samples = measure(http, base, targets, args.requests, args.warmup)
            rates = measure_throughput(port, targets, args.concurrency, args.load_seconds, args.load_rounds)
    except Exception:
        print(f"--- tail of {log_path} ---", file=sys.stderr)
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        raise
    finally:
        stop_jupyter(process)

    print(
        f"jupyter server (pid {process.pid}, port {port}) answered after {boot:.1f} s; "
        f"{args.requests} timed requests per endpoint after {args.warmup} warm-up, "
        "sequential, one keep-alive connection."
    )
    print(
        f"Over HTTP '{USER}' sees {listing['total']} projects (page of {len(listing['items'])}); "
        f"the matrix has {len(matrix['projects'])} rows."
    )
    if (listing["total"], len(matrix["projects"])) != (visible_in_process, matrix_in_process):
        print(f"  (in-process: {visible_in_process} projects, {matrix_in_process} matrix rows)")
    print()
    baseline = statistics.median(samples[targets[2].label])
    width = max(len(t.label) for t in targets)
    print(f"  {'endpoint':{width}}  {'median ms':>9}  {'p99 ms':>7}  {'median / status':>15}")
    for target in targets:
        times = samples[target.label]
        median = statistics.median(times)
        print(f"  {target.label:{width}}  {median:9.2f}  {percentile(times, 0.99):7.2f}  {median / baseline:14.1f}x")
    print()
    print(
        f"Throughput at {args.concurrency} keep-alive connections (http_load.py in its own process), "
        f"{args.load_rounds} runs of {args.load_seconds:g} s per endpoint, rotating:"
    )
    status_rate = statistics.median(rates[targets[2].label])
    print(f"  {'endpoint':{width}}  {'median req/s':>12}  {'min':>6}  {'max':>6}  {'share of status':>15}")
    for target in targets:
        runs = rates[target.label]
        rate = statistics.median(runs)
        print(
            f"  {target.label:{width}}  {rate:12.0f}  {min(runs):6.0f}  {max(runs):6.0f}  "
            f"{f'1/{status_rate / rate:.1f}':>15}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
