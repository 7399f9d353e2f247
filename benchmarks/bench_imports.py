"""What a notebook and a shell pay to start Himalia: import times beside ``import pandas``.

Each case runs in a fresh interpreter (nothing cached in ``sys.modules``, the files in the OS
cache after a warm-up round), in rounds whose order rotates, ``--runs`` times:

- ``import himalia``: what every kernel of a platform-started notebook may do;
- the kernel client: ``import himalia`` then ``himalia.connection``, the attribute that loads it;
- ``%load_ext himalia``: the ``%%sql`` magic registered on a stand-in shell;
- ``himalia --help``: the console script's entry point from ``pyproject.toml``, its output discarded;
- ``import pandas``, the yardstick: a notebook that reads data imports it anyway.

It prints, per case, the median time of the statement itself and of the whole process (interpreter
start included, against ``python -c pass``), the modules it loaded, of which Himalia's, and the heavy
ones among them, and the ratios to ``import pandas``. It never asserts timings.

    .venv/bin/python benchmarks/bench_imports.py
    .venv/bin/python benchmarks/bench_imports.py --runs 21
"""

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Modules whose presence says a case pays for more than it needs (prefixes of ``sys.modules`` keys).
HEAVY = (
    "pandas",
    "sqlalchemy.orm",
    "alembic",
    "cryptography",
    "duckdb",
    "papermill",
    "nbformat",
    "jsonschema",
    "himalia.store",
)
#: Run in the child: time ``SNIPPET`` and report what it loaded, on the real stdout, as JSON.
HARNESS = """
import contextlib, io, json, sys, time
before = set(sys.modules)
output = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
    try:
        exec(compile(SNIPPET, "<case>", "exec"), {})
    except SystemExit as exit:
        if exit.code not in (None, 0):
            raise
seconds = time.perf_counter() - start
loaded = sorted(set(sys.modules) - before)
print(json.dumps({"seconds": seconds, "loaded": loaded}))
"""
STAND_IN_SHELL = """
class Shell:
    def register_magic_function(self, function, magic_kind, magic_name):
        pass
"""


def entry_point_snippet() -> str:
    """The ``himalia`` console script, called the way its generated wrapper calls it (the entry point
    of the checkout whose ``himalia`` this interpreter imports, which ``PYTHONPATH`` may choose)."""
    spec = importlib.util.find_spec("himalia")
    assert spec is not None and spec.origin is not None, "himalia is not importable"
    checkout = Path(spec.origin).parents[2]
    scripts = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["himalia"].partition(":")
    return f"import sys\nfrom {module} import {function}\nsys.argv = ['himalia', '--help']\nsys.exit({function}())"


@dataclass(frozen=True)
class Case:
    label: str
    snippet: str


@dataclass
class Measurements:
    seconds: list[float] = field(default_factory=list)
    process_seconds: list[float] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)


def cases() -> list[Case]:
    return [
        Case("python -c pass", ""),
        Case("import pandas", "import pandas"),
        Case("import himalia", "import himalia"),
        Case("kernel client (himalia.connection)", "import himalia\nhimalia.connection"),
        Case("%load_ext himalia (%%sql)", f"{STAND_IN_SHELL}\nimport himalia\nhimalia.load_ipython_extension(Shell())"),
        Case("himalia --help", entry_point_snippet()),
    ]


def measure_once(case: Case) -> tuple[float, float, list[str]]:
    """Statement seconds, whole-process seconds and the modules the statement loaded."""
    code = f"SNIPPET = {case.snippet!r}\n{HARNESS}"
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    process_seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{case.label} failed:\n{finished.stderr}")
    report = json.loads(finished.stdout.splitlines()[-1])
    return report["seconds"], process_seconds, report["loaded"]


def heavy_among(loaded: list[str]) -> list[str]:
    return [name for name in HEAVY if any(m == name or m.startswith(name + ".") for m in loaded)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh interpreters per case (default 11)")
    args = parser.parse_args()
    chosen = cases()
    results = {case.label: Measurements() for case in chosen}
    for case in chosen:  # warm-up: the files into the OS cache, the bytecode written
        measure_once(case)
    for round_ in range(args.runs):
        shift = round_ % len(chosen)
        for case in chosen[shift:] + chosen[:shift]:
            seconds, process_seconds, loaded = measure_once(case)
            results[case.label].seconds.append(seconds)
            results[case.label].process_seconds.append(process_seconds)
            results[case.label].loaded = loaded

    print(f"Himalia import times, median of {args.runs} fresh interpreters ({sys.executable})\n")
    pandas = statistics.median(results["import pandas"].seconds)
    width = max(len(case.label) for case in chosen)
    print(f"{'':{width}}  statement  / pandas   process  modules  himalia  heavy modules loaded")
    for case in chosen:
        measured = results[case.label]
        seconds = statistics.median(measured.seconds)
        himalia = sum(1 for m in measured.loaded if m == "himalia" or m.startswith("himalia."))
        heavy = ", ".join(heavy_among(measured.loaded)) or "-"
        print(
            f"{case.label:{width}}  {seconds * 1000:7.0f} ms  {seconds / pandas:6.2f}x"
            f"  {statistics.median(measured.process_seconds) * 1000:6.0f} ms  {len(measured.loaded):7d}"
            f"  {himalia:7d}  {heavy}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
