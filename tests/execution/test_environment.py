"""The reproducibility record of a notebook step: the kernel's own interpreter says what it runs
(its Python and every installed distribution), whichever interpreter that is; a kernel that is
not Python's, or that is not installed, records what is known of it."""

import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from himalia.execution.environment import EnvironmentProbe, canonical, environment_digest


def kernelspec(root: Path, name: str, argv: list[str], language: str) -> None:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {"argv": argv, "display_name": name, "language": language}
    (folder / "kernel.json").write_text(json.dumps(spec))


def test_the_kernels_interpreter_reports_its_python_and_packages() -> None:
    record = EnvironmentProbe.start("python3").result()
    assert (record.kernel, record.language, record.python) == ("python3", "python", platform.python_version())
    assert record.executable == sys.executable
    assert record.packages["ipykernel"] == importlib.metadata.version("ipykernel")
    assert record.packages["jupyter-core"] == importlib.metadata.version("jupyter_core")  # names as PyPI compares them
    assert "himalia" in record.packages and len(record.packages) > 50
    assert record.digest == environment_digest(record.python, record.packages) and len(record.digest) == 64


def test_another_interpreter_reports_its_own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernelspec of another virtual environment: its packages, not the worker's."""
    venv = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    kernelspec(tmp_path / "share", "other", [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    record = EnvironmentProbe.start("other").result()
    assert record.executable is not None and Path(record.executable).parent == venv / "bin"
    assert "ipykernel" not in record.packages and "himalia" not in record.packages
    assert record.digest != EnvironmentProbe.start("python3").result().digest


def test_a_kernel_that_is_not_python_or_not_installed_records_what_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernelspec(tmp_path / "share", "ir", ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"], "R")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    other = EnvironmentProbe.start("ir").result()
    assert other.model_dump(exclude_defaults=True) == {"kernel": "ir", "language": "R"}
    missing = EnvironmentProbe.start("no-such-kernel").result()
    assert missing.model_dump(exclude_defaults=True) == {"kernel": "no-such-kernel"}


def test_an_interpreter_that_answers_nonsense_records_no_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    liar = tmp_path / "liar"
    liar.write_text("#!/bin/sh\necho 'not json'\n")
    liar.chmod(0o755)
    kernelspec(tmp_path / "share", "liar", [str(liar), "-f", "{connection_file}"], "python")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    record = EnvironmentProbe.start("liar").result()
    assert record.model_dump(exclude_defaults=True) == {"kernel": "liar", "language": "python"}


def test_names_are_compared_as_pypi_compares_them() -> None:
    assert canonical("Jupyter_Core") == canonical("jupyter.core") == "jupyter-core"
