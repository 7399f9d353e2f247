"""``himalia checks run`` against Soda Core's ``soda scan``: five checks on a PostgreSQL table, whole process.

One run:

1. starts a throw-away PostgreSQL server (``tests.postgres.TemporaryPostgres``) and loads a
   ``--rows`` (2,000,000) row table ``events``: a BIGINT ``a`` and a DOUBLE ``b`` with NULLs
   sprinkled, an INTEGER ``c``, a TIMESTAMP ``updated_at`` within the last day; the source
   database logs every statement (``log_statement = all``), so that each process's statements
   against it are counted from the server's own log;
2. creates a Himalia home (a SQLite store) where a user ``bench`` owns a connection to that
   database (its password a secret), a project ``BENCH`` and a dataset ``events`` declaring its
   freshness (``updated_at`` within 30 days), with five checks: record count above 1,000,000,
   at most 200,000 missing ``a``, minimum of ``b`` not below -500, average of ``c`` between 400
   and 600, and the data's freshness;
3. installs Soda Core 3.5 with its PostgreSQL and DuckDB packages in its own virtual environment
   (``~/.cache/himalia-bench/soda``, created once; never into ``.venv``) and writes the same five
   checks in SodaCL;
4. times, in ``--rounds`` rounds whose order rotates (after one untimed warm-up round), each
   command as a whole process:

   * ``himalia``  ``himalia --home H --as bench checks run BENCH events --json`` in a home no
     control plane serves: the command opens the store and runs the checks itself;
   * ``himalia (serving)``  the same command in a home ``himalia serve`` serves (started once,
     before the rounds): the command sends its request through the home's operator socket and the
     serving control plane runs the checks, with the engine and columns it keeps;
   * ``soda``     ``soda scan -d src -c configuration.yml checks.yml``;
   * ``psql``     one hand-written SELECT of the five numbers through ``psql``: the floor.

It prints medians, the spread (min-max), the ratios to ``soda`` (target: ``himalia`` <= 1.0) and the
statements each command issued against the source (transaction control apart; target: one),
and checks every command's checks passed. It never asserts timings.

    .venv/bin/python benchmarks/bench_checks_cli.py              # about 2 minutes (+ Soda's install once)
    .venv/bin/python benchmarks/bench_checks_cli.py --rows 200000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SODA_HOME = Path.home() / ".cache" / "himalia-bench" / "soda"
SODA_PACKAGES = ("soda-core-postgres==3.5.6", "soda-core-duckdb==3.5.6")
SOURCE_DB, READER, PASSWORD, TABLE = "bench_src", "bench_reader", "bench-Pw-7c1", "events"

LOAD = f"""
CREATE TABLE {TABLE} AS
SELECT
    i AS id,
    CASE WHEN i % 17 = 0 THEN NULL ELSE (i * 7919) % 2000003 - 1000000 END::bigint AS a,
    CASE WHEN i % 29 = 3 THEN NULL ELSE ((i * 104729) % 1000003) / 1000.0 - 500.0 END::double precision AS b,
    ((i * 31) % 1000)::integer AS c,
    (now() - make_interval(secs => i % 86400))::timestamp AS updated_at
FROM generate_series(0, CAST(:rows AS bigint) - 1) AS s(i)
"""
#: The five numbers the checks judge, as a person would write them: one scan.
HAND_WRITTEN = f"SELECT count(*), count(*) - count(a), min(b), avg(c), max(updated_at) FROM {TABLE}"


def checks_of(rows: int) -> list[dict[str, Any]]:
    """The five checks, as Himalia's check specifications: at least half the rows, at most a tenth missing."""
    return [
        {"name": "Enough rows", "type": "range", "metric": "record_count", "min": rows // 2},
        {"name": "Few missing a", "type": "range", "metric": "null_count:a", "max": rows // 10},
        {"name": "b not below -500", "type": "range", "metric": "min:b", "min": -500},
        {"name": "Average c", "type": "range", "metric": "avg:c", "min": 400, "max": 600},
        {"name": "Fresh", "type": "freshness"},
    ]


def sodacl_of(rows: int) -> str:
    """The same five checks in SodaCL."""
    return (
        f"checks for {TABLE}:\n"
        f"  - row_count >= {rows // 2}\n"
        f"  - missing_count(a) <= {rows // 10}\n"
        "  - min(b) >= -500\n"
        "  - avg(c) between 400 and 600\n"
        "  - freshness(updated_at) < 30d\n"
    )


#: What a statement of transaction control looks like in the server's log.
TRANSACTION_CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|END|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
#: A statement in the server's log (``log_statement = all``): its entry, up to the next entry's time stamp.
LOGGED = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*?)(?=^\d{4}-\d\d-\d\d |\Z)", re.DOTALL | re.MULTILINE)


@dataclass
class Case:
    name: str
    command: list[str]
    environment: dict[str, str]
    passed: Callable[[subprocess.CompletedProcess[str]], bool]
    times: list[float] = field(default_factory=list)
    statements: list[list[str]] = field(default_factory=list)


# -- the source -----------------------------------------------------------------------------------


def load_source(admin_url: str, source_url: str, rows: int) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as sql:
        sql.execute(sa.text(f"CREATE DATABASE {SOURCE_DB}"))
        sql.execute(sa.text(f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORD}'"))
        sql.execute(sa.text(f"ALTER DATABASE {SOURCE_DB} SET log_statement = 'all'"))
    admin.dispose()
    source = sa.create_engine(source_url, isolation_level="AUTOCOMMIT")
    with source.connect() as sql:
        sql.execute(sa.text(LOAD), {"rows": rows})
        sql.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))
        sql.execute(sa.text(f"GRANT SELECT ON {TABLE} TO {READER}"))
    source.dispose()


def source_statements(log: Path, offset: int) -> tuple[list[str], int]:
    """The statements logged since ``offset``, and the new offset."""
    with log.open("rb") as stream:
        stream.seek(offset)
        text = stream.read().decode(errors="replace")
        offset = stream.tell()
    return [match.group(1).strip() for match in LOGGED.finditer(text)], offset


# -- Himalia's home -------------------------------------------------------------------------------


def make_home(home: Path, source_url: str, rows: int) -> None:
    """The store, the user, the connection, the dataset and its five checks, through the services."""
    from himalia.controlplane import ControlPlane
    from himalia.core.permissions import GlobalPermission
    from himalia.identity.caller import Caller
    from himalia.wire.data import CheckSpec, CreateConnection, CreateDataset
    from himalia.wire.identity import CreateGroup, CreateProject, CreateUser

    plane = ControlPlane(home=str(home))
    plane.start()
    try:
        operator = Caller.operator("bench")
        permissions = [GlobalPermission.CREATE_CONNECTIONS, GlobalPermission.CREATE_PROJECTS]
        plane.users.create_group(operator, CreateGroup(name="analysts", permissions=permissions))
        plane.users.create_user(operator, CreateUser(login="bench", email="bench@example.org", groups=["analysts"]))
        bench = plane.users.caller_for("bench")
        plane.projects.create_project(bench, CreateProject(key="BENCH", name="Checks benchmark"))
        connection = CreateConnection(
            name="src", type="sql", params={"url": source_url}, secrets={"password": PASSWORD}
        )
        plane.connections.create_connection(bench, connection)
        dataset = CreateDataset(
            name=TABLE, connection="src", table=TABLE, freshness={"column": "updated_at", "max_age": "30d"}
        )
        plane.datasets.create_dataset(bench, "BENCH", dataset)
        for check in checks_of(rows):
            plane.checks.save_check(bench, "BENCH", TABLE, CheckSpec.model_validate(check))
    finally:
        plane.stop()


def himalia_passed(done: subprocess.CompletedProcess[str]) -> bool:
    if done.returncode != 0:
        return False
    outcome = json.loads(done.stdout)
    return outcome["outcome"] == "OK" and len(outcome["results"]) == 5


def serve(home: Path, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    """``himalia serve`` on the home (a free port), once its operator socket answers and it is idle."""
    from himalia.core.operator_socket import socket_path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "himalia"), "--home", str(home), "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = socket_path(str(home))
    deadline = time.monotonic() + 120
    while path is None or not path.is_socket():
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"himalia serve did not open its operator socket ({process.returncode})")
        time.sleep(0.2)
    wait_idle(process.pid)
    return process


def wait_idle(pid: int, quiet: float = 0.02) -> None:
    """Until the process uses under ``quiet`` of a core over half a second (its start's work done)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    for _ in range(120):
        before = cpu()
        time.sleep(0.5)
        if cpu() - before < quiet * 0.5:
            return


# -- Soda -----------------------------------------------------------------------------------------


def soda_executable() -> Path:
    """Soda's CLI in its own virtual environment, created and installed the first time."""
    executable = SODA_HOME / "bin" / "soda"
    if not executable.exists():
        print(f"installing Soda Core into {SODA_HOME} (once)...", flush=True)
        SODA_HOME.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys._base_executable, "-m", "venv", str(SODA_HOME)], check=True)  # type: ignore[attr-defined]
        pip = [str(SODA_HOME / "bin" / "python"), "-m", "pip", "install", "--quiet", *SODA_PACKAGES]
        subprocess.run(pip, check=True)
    return executable


def soda_files(folder: Path, port: int, rows: int) -> tuple[Path, Path]:
    configuration = folder / "configuration.yml"
    configuration.write_text(
        "data_source src:\n  type: postgres\n  host: 127.0.0.1\n"
        f'  port: "{port}"\n  username: {READER}\n  password: ${{SODA_BENCH_PASSWORD}}\n'
        f"  database: {SOURCE_DB}\n  schema: public\n"
    )
    checks = folder / "checks.yml"
    checks.write_text(sodacl_of(rows))
    # Soda's own settings, in a home of its own: no usage statistics sent (here they would be
    # retried for seconds against a name that does not resolve, and counted in its time).
    (folder / "soda-home" / ".soda").mkdir(parents=True)
    (folder / "soda-home" / ".soda" / "config.yml").write_text("send_anonymous_usage_stats: false\n")
    return configuration, checks


# -- the rounds -----------------------------------------------------------------------------------


def run_case(case: Case, log: Path) -> None:
    _, offset = source_statements(log, 0)
    started = time.perf_counter()
    done = subprocess.run(case.command, env=case.environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    time.sleep(0.05)  # the server writes its log asynchronously to the client's answer
    statements, _ = source_statements(log, offset)
    if not case.passed(done):
        raise RuntimeError(f"{case.name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    case.times.append(elapsed)
    case.statements.append(statements)


def report(cases: list[Case]) -> None:
    print(f"\n  {'command':<22}{'median':>9}{'min':>8}{'max':>8}{'/ soda':>9}   statements against the source")
    soda = next((c for c in cases if c.name == "soda"), None)
    baseline = statistics.median(soda.times) if soda else None
    for case in cases:
        median = statistics.median(case.times)
        ratio = f"{median / baseline:8.2f}x" if baseline else "        -"
        counted = [[s for s in run if not TRANSACTION_CONTROL.match(s)] for run in case.statements]
        control = [len(run) - len(kept) for run, kept in zip(case.statements, counted, strict=True)]
        statements = f"{max(len(run) for run in counted)} (+{max(control)} transaction control)"
        print(f"  {case.name:<22}{median:8.2f}s{min(case.times):7.2f}s{max(case.times):7.2f}s{ratio}   {statements}")
    for case in cases:
        print(f"\n  {case.name}, the statements of its last run:")
        for statement in case.statements[-1]:
            print(f"    {' '.join(statement.split())[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the source table")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one untimed warm-up)")
    parser.add_argument("--no-soda", action="store_true", help="skip Soda (no install)")
    parser.add_argument("--no-serving", action="store_true", help="skip the case with a serving control plane")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.postgres import TemporaryPostgres, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL is not installed (scripts/install-system-deps.sh)")
        return 1
    soda = None if args.no_soda else soda_executable()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="himalia-bench-checks-"))
    server = TemporaryPostgres(bindir)
    serving: subprocess.Popen[bytes] | None = None
    try:
        admin_url = server.start()
        load_source(admin_url, server.url(SOURCE_DB), args.rows)
        print(f"loaded {args.rows:,} rows into PostgreSQL in {time.perf_counter() - started:.1f} s")
        home, alone = folder / "home", folder / "home-alone"
        make_home(home, server.url(SOURCE_DB, user=READER), args.rows)
        shutil.copytree(home, alone)  # the same store and keys, in a home no control plane serves
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HIMALIA_")}

        def checks_run(where: Path) -> list[str]:
            himalia = str(ROOT / ".venv" / "bin" / "himalia")
            return [himalia, "--home", str(where), "--as", "bench", "checks", "run", "BENCH", TABLE, "--json"]

        cases = [Case("himalia", checks_run(alone), environment, himalia_passed)]
        if not args.no_serving:
            serving = serve(home, environment)
            cases.append(Case("himalia (serving)", checks_run(home), environment, himalia_passed))
        if soda is not None:
            configuration, checks = soda_files(folder, server.port, args.rows)
            soda_command = [str(soda), "scan", "-d", "src", "-c", str(configuration), str(checks)]
            soda_environment = {**environment, "SODA_BENCH_PASSWORD": PASSWORD, "HOME": str(folder / "soda-home")}
            cases.append(Case("soda", soda_command, soda_environment, lambda done: done.returncode == 0))
        psql = [str(bindir / "psql"), "-X", "-q", "-A", "-t", "-c", HAND_WRITTEN, server.url(SOURCE_DB, user=READER)]
        psql[-1] = psql[-1].replace("postgresql+psycopg", "postgresql")
        cases.append(Case("psql", psql, {**environment, "PGPASSWORD": PASSWORD}, lambda done: done.returncode == 0))
        log = server.root / "log"
        for round_number in range(args.rounds + 1):
            shift = round_number % len(cases)
            for case in cases[shift:] + cases[:shift]:
                run_case(case, log)
            if round_number == 0:  # the warm-up: the files into the OS cache, the bytecode written
                for case in cases:
                    case.times.clear()
                    case.statements.clear()
            print(f"round {round_number}{' (warm-up)' if round_number == 0 else ''} done", flush=True)
        print(f"\n{args.rows:,} rows, 5 checks, {args.rounds} rounds (order rotating), whole processes:")
        report(cases)
    finally:
        if serving is not None:
            serving.terminate()
            serving.wait(30)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
