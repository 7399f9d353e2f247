"""The CLI run without a store named says which one it uses instead of silently creating an empty one."""

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from himalia.cli import main

NAMING = "no --home, --db-url, $HIMALIA_HOME, $HIMALIA_DB_URL or a configuration file names one"


@pytest.fixture
def default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing names a store: no option, variable or configuration file; Jupyter's data dir is empty."""
    for variable in ("HIMALIA_HOME", "HIMALIA_DB_URL", "HIMALIA_CONFIG", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "jupyter-data" / "himalia"


def himalia(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments))


def test_a_reading_command_without_a_store_says_where_it_looked_and_creates_nothing(default_home: Path) -> None:
    for command in (["project", "list"], ["user", "list"], ["scenario", "runs", "FRAUD", "daily"], ["audit", "verify"]):
        result = himalia(*command)
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"error: no Himalia store in {default_home} (the default home, as {NAMING}); point at one with "
            "--home or $HIMALIA_HOME (make lab's: HIMALIA_HOME=.himalia-demo), or --db-url\n"
        )
        assert result.stdout == ""
    assert not (default_home / "himalia.sqlite").exists()


def test_a_writing_command_says_it_creates_the_default_store_once(default_home: Path) -> None:
    created = himalia("user", "add", "zed")
    assert created.exit_code == 0, created.output
    assert created.stderr == f"himalia: creating a new store in {default_home} (the default home: {NAMING})\n"
    assert (default_home / "himalia.sqlite").exists()

    # The store exists now: reading it is silent, and finds what was written.
    listed = himalia("user", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == ""
    assert "zed" in listed.stdout


def test_a_named_store_is_used_silently(default_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    named = tmp_path / "named"
    result = himalia("--home", str(named), "project", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    monkeypatch.setenv("HIMALIA_HOME", str(tmp_path / "from-variable"))
    result = himalia("user", "add", "zed")
    assert (result.exit_code, result.stderr) == (0, "")
    assert (tmp_path / "from-variable" / "himalia.sqlite").exists()
    monkeypatch.delenv("HIMALIA_HOME")
    Path("himalia_config.py").write_text(f"c.ControlPlane.home = {str(tmp_path / 'from-file')!r}\n")
    result = himalia("project", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    assert not default_home.exists()
