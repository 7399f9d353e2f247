"""The README's "Checks that find the rows" blocks, run as a newcomer would run them: the demo's
transactions from French IP addresses break the condition, and the check shows a sample of them."""

import os
import re
import subprocess
import sys
from pathlib import Path

from .test_readme_production import REPOSITORY

HEADING = "### Checks that find the rows\n"


def blocks(language: str) -> str:
    section = (REPOSITORY / "README.md").read_text().split(HEADING, 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under {HEADING!r}"
    return match.group(1)


def test_the_readme_finds_the_rows_that_break_a_condition(tmp_path: Path) -> None:
    (tmp_path / "conditions.yaml").write_text(blocks("yaml"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTER"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the block's .venv/bin is the repository's
    env["HIMALIA_USER_ISOLATION"] = "shared_account_unsafe"
    finished = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", blocks("bash")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    output = finished.stdout
    assert "created check transactions_2018/Known countries" in output, output
    assert re.search(r"Known countries\s+WARNING\s+1[5-9]\.\d+", output), output
    assert re.search(r"Card ids\s+OK\s+0", output) and re.search(r"No duplicates\s+OK\s+0", output), output
    sample = output.split("Rows breaking known_country (Known countries, 10 shown):\n", 1)[1].splitlines()
    assert len(sample) == 11 and all(line.rstrip().endswith("FR") for line in sample[1:]), output
