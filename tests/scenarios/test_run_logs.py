"""A run's log holds what the notebook printed, without the kernel's transport warnings, the
libraries' log records or the server's absolute paths (job folder, home). A real run."""

import json
from pathlib import Path

from ..conftest import LiveAPI
from .conftest import log_of, notebook, saved, start, wait


def test_the_log_holds_the_prints_and_no_server_path(runner: LiveAPI, exchange: Path) -> None:
    seen = exchange / "paths.json"
    printer = notebook(
        "import json, os, sys, warnings\n"
        "from pathlib import Path\n"
        "print('scored 300 rows')\n"
        "print('working in', os.getcwd())\n"
        "print('home is', Path.home())\n"
        "print('to stderr', file=sys.stderr)\n"
        "warnings.warn('threshold is low')\n"
        f"Path({str(seen)!r}).write_text(json.dumps({{'cwd': os.getcwd(), 'home': str(Path.home())}}))",
        parameters="threshold: float = 0.5",
    )
    step = {"name": "Score", "type": "notebook", "notebook": "printer.ipynb"}
    saved(runner, {"id": "printer", "name": "Printer", "steps": [step]}, {"printer.ipynb": printer})
    run = wait(runner, "printer", start(runner, "printer"), timeout=120)
    log = log_of(runner, "printer", run["id"])
    assert run["state"] == "succeeded", log
    paths = json.loads(seen.read_text())
    for line in ("scored 300 rows", "to stderr", "UserWarning: threshold is low", "home is ~"):
        assert line in log, (line, log)
    assert "working in ." in log, log
    for absolute in (paths["cwd"], paths["home"]):
        assert absolute not in log, (absolute, log)
    for noise in ("[IPKernelApp]", "without encryption", "Input Notebook", "Output Notebook", "Deprecat"):
        assert noise not in log, (noise, log)
    assert "[papermill] Executing notebook with kernel: python3" in log
