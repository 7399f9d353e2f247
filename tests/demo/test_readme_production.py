"""The README's "From a notebook to production" block, run as a newcomer would run it."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def readme_block(heading: str) -> str:
    """The first ```bash block under ``heading`` in the README."""
    text = (REPOSITORY / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"no bash block under '{heading}'"
    return match.group(1)


def test_the_readme_takes_a_notebook_folder_to_production_and_back(tmp_path: Path) -> None:
    for folder in ("notebooks", "scenarios"):
        shutil.copytree(REPOSITORY / folder, tmp_path / folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTER"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the block's .venv/bin is the repository's
    script = readme_block("From a notebook to production")
    finished = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    output = finished.stdout
    assert re.search(r"project files: 3 files, [\d,]+ bytes", output), output
    assert output.count("run #1: succeeded") >= 2, output  # on design, then on production
    assert "changed  variable min_transactions" in output, output
    env["HIMALIA_HOME"] = str(tmp_path / ".himalia-production")
    listed = subprocess.run(
        ["himalia", "--json", "bundle", "list", "FRAUD"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    versions = {row["version"]: row["active"] for row in json.loads(listed.stdout)}
    assert versions == {1: True, 2: False}
    variables = subprocess.run(
        ["himalia", "--json", "variables", "get", "--project", "FRAUD"], cwd=tmp_path, env=env, capture_output=True
    )
    assert json.loads(variables.stdout)["min_transactions"] == 1000  # version 1's, after the rollback
