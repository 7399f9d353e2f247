"""Configuration files and environment defaults, in every host.

``himalia_config.py`` / ``.json`` on the Jupyter config path and in the current directory, or the
one file ``--config`` / ``$HIMALIA_CONFIG`` names; environment variables are the traits' defaults,
a file overrides them and a command-line option overrides the file. Proved on a real
``himalia serve`` in hub mode (against a stand-in hub), on the other CLI commands and on the
Jupyter server extension.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jupyter_core.paths import jupyter_data_dir
from traitlets.config import Config

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.core.config import ConfigFileError, load_config_files
from himalia.hub.service import HubService
from himalia.scenarios.reporting import Mailer

from ..conftest import AUDIT_KEY, SECRET_KEY

HUB_TOKEN = "service-token-of-the-test-hub"


@pytest.fixture
def no_config_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No configuration but what a test writes: an empty Jupyter config dir, a bare working directory."""
    jupyter = tmp_path / "jupyter-config"
    jupyter.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(jupyter))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "")
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.delenv("HIMALIA_CONFIG", raising=False)
    monkeypatch.chdir(work)
    return jupyter


# -- the files ------------------------------------------------------------------------------------


def test_the_current_directory_wins_over_the_jupyter_config_path_and_json_over_py(
    no_config_environment: Path,
) -> None:
    jupyter = no_config_environment
    (jupyter / "himalia_config.py").write_text(
        "c.ControlPlane.max_concurrent_runs = 3\nc.ControlPlane.max_queued_runs = 30\nc.Mailer.port = 2525\n"
    )
    Path("himalia_config.py").write_text("c.ControlPlane.max_concurrent_runs = 5\nc.Mailer.port = 587\n")
    Path("himalia_config.json").write_text(json.dumps({"Mailer": {"port": 465, "security": "ssl"}}))
    loaded = load_config_files()
    assert loaded.files == [
        str(jupyter / "himalia_config.py"),
        str(Path.cwd() / "himalia_config.py"),
        str(Path.cwd() / "himalia_config.json"),
    ]
    plane = ControlPlane(config=loaded.config)
    assert (plane.max_concurrent_runs, plane.max_queued_runs) == (5, 30)
    assert plane.max_concurrent_runs_per_user == 2  # untouched: the built-in default
    mailer = Mailer(parent=plane)
    assert (mailer.port, mailer.security) == (465, "ssl")


def test_an_explicit_file_replaces_the_search_and_the_option_wins_over_the_variable(
    no_config_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("himalia_config.py").write_text("c.ControlPlane.max_concurrent_runs = 5\n")
    from_variable = tmp_path / "from-variable.py"
    from_variable.write_text("c.ControlPlane.max_concurrent_runs = 6\n")
    from_option = tmp_path / "from-option.json"
    from_option.write_text(json.dumps({"ControlPlane": {"max_concurrent_runs": 7}}))
    monkeypatch.setenv("HIMALIA_CONFIG", str(from_variable))
    assert load_config_files().files == [str(from_variable)]
    assert load_config_files().config.ControlPlane.max_concurrent_runs == 6
    assert load_config_files(str(from_option)).config.ControlPlane.max_concurrent_runs == 7
    with pytest.raises(ConfigFileError, match=r"configuration file .*absent\.py: no such file"):
        load_config_files(str(tmp_path / "absent.py"))


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("himalia_config.py", "c.ControlPlane.max_concurrent_runs = (\n", "SyntaxError"),
        ("himalia_config.py", "c.Mailer.port = undefined_name\n", "NameError: name 'undefined_name' is not defined"),
        ("himalia_config.json", '{"ControlPlane": ', "JSONDecodeError"),
    ],
)
def test_a_file_that_fails_is_refused_naming_it(no_config_environment: Path, name: str, text: str, reason: str) -> None:
    Path(name).write_text(text)
    with pytest.raises(ConfigFileError) as refused:
        load_config_files()
    assert refused.value.message.startswith(f"configuration file {Path.cwd() / name}: ")
    assert reason in refused.value.message


def test_environment_variables_are_defaults_the_file_and_then_the_constructor_override(
    no_config_environment: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIMALIA_HOME", str(tmp_path / "from-environment"))
    monkeypatch.setenv("HIMALIA_SMTP_PORT", "2525")
    monkeypatch.setenv("HIMALIA_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    assert ControlPlane().home == str(tmp_path / "from-environment")
    assert ControlPlane().db_url == f"sqlite:///{tmp_path / 'from-environment' / 'himalia.sqlite'}"
    assert ControlPlane().trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    assert Mailer(parent=ControlPlane()).port == 2525
    config = Config({"ControlPlane": {"home": str(tmp_path / "from-file")}, "Mailer": {"port": 587}})
    assert ControlPlane(config=config).home == str(tmp_path / "from-file")
    assert Mailer(parent=ControlPlane(config=config)).port == 587
    assert ControlPlane(config=config, home=str(tmp_path / "from-option")).home == str(tmp_path / "from-option")
    monkeypatch.setenv("HIMALIA_HOME", " ")  # blank is unset: the built-in default
    assert ControlPlane().home == os.path.join(jupyter_data_dir(), "himalia")


def test_relative_paths_from_the_environment_are_made_absolute_where_they_are_read(
    no_config_environment: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make lab` passes HIMALIA_HOME=.himalia-demo; workers run in other folders."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HIMALIA_HOME", ".himalia-demo")
    monkeypatch.setenv("HIMALIA_AUDIT_HEAD", "heads/audit.head")
    plane = ControlPlane()
    assert plane.home == str(tmp_path / ".himalia-demo")
    assert plane.db_url == f"sqlite:///{tmp_path / '.himalia-demo' / 'himalia.sqlite'}"
    assert plane.audit_head_file == str(tmp_path / "heads" / "audit.head")


def test_every_configurable_of_the_hub_mode_process_reads_the_configuration(
    no_config_environment: Path, tmp_path: Path
) -> None:
    Path("himalia_config.py").write_text(
        "\n".join(
            [
                f"c.ControlPlane.home = {str(tmp_path / 'home')!r}",
                f"c.ControlPlane.secret_keys = [{SECRET_KEY!r}]",
                f"c.ControlPlane.audit_key = {AUDIT_KEY!r}",
                "c.Mailer.security = 'starttls'",
                "c.WebhookSettings.allowed_destinations = ['10.20.0.0/16']",
                "c.WebhookSettings.proxy = 'http://proxy.corp.example:3128'",
                "c.HubService.sync_interval = 42.0",
                "c.HubService.admin_group = 'hub-admins'",
                "c.UserIsolation.mode = 'shared_account_unsafe'",
            ]
        )
    )
    plane = ControlPlane(config=load_config_files().config)
    plane.start()
    try:
        assert plane.mailer.security == "starttls"
        assert plane.webhooks.allowed_destinations == ["10.20.0.0/16"]
        assert plane.webhooks.proxy == "http://proxy.corp.example:3128"
        hub = HubService(plane, parent=plane)
        assert (hub.sync_interval, hub.admin_group) == (42.0, "hub-admins")
        from himalia.execution.accounts import UserIsolation

        assert UserIsolation(parent=plane, home=plane.home).mode == "shared_account_unsafe"
    finally:
        plane.stop()


# -- the CLI's other commands ---------------------------------------------------------------------


def test_cli_commands_read_the_file_and_their_options_win(
    no_config_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIMALIA_HOME", raising=False)
    monkeypatch.delenv("HIMALIA_DB_URL", raising=False)
    file_home, option_home = tmp_path / "file-home", tmp_path / "option-home"
    config = tmp_path / "operator.py"
    config.write_text(f"c.ControlPlane.home = {str(file_home)!r}\n")
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(config), "db", "upgrade"]).exit_code == 0
    assert (file_home / "himalia.sqlite").is_file()
    assert runner.invoke(main, ["--config", str(config), "--home", str(option_home), "db", "upgrade"]).exit_code == 0
    assert (option_home / "himalia.sqlite").is_file()
    Path("himalia_config.py").write_text(f"c.ControlPlane.home = {str(file_home)!r}\n")
    listed = runner.invoke(main, ["--json", "user", "list"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["items"] == []


def test_cli_refuses_a_bad_file_or_value_in_one_line_naming_the_file(no_config_environment: Path) -> None:
    runner = CliRunner()
    Path("himalia_config.py").write_text("c.ControlPlane.max_concurrent_runs = (\n")
    refused = runner.invoke(main, ["user", "list"])
    assert refused.exit_code == 1
    assert refused.output.startswith(f"error: configuration file {Path.cwd() / 'himalia_config.py'}: SyntaxError")
    assert len(refused.output.strip().splitlines()) == 1
    Path("himalia_config.py").write_text("c.ControlPlane.max_concurrent_runs = 'many'\n")
    refused = runner.invoke(main, ["user", "list"])
    assert refused.exit_code == 1
    assert refused.output.startswith(f"error: configuration ({Path.cwd() / 'himalia_config.py'}): ")
    assert "max_concurrent_runs" in refused.output and len(refused.output.strip().splitlines()) == 1


# -- himalia serve, in hub mode -------------------------------------------------------------------


class StandInHub:
    """The hub's REST API as the hub service reads it: no users, and a record of each request."""

    def __init__(self) -> None:
        requests: list[tuple[float, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorized = self.headers.get("Authorization") == f"token {HUB_TOKEN}"
                requests.append((time.monotonic(), self.path))
                body = json.dumps({"items": [], "_pagination": {"next": None}}).encode()
                self.send_response(200 if authorized else 403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.requests = requests
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def syncs(self) -> list[float]:
        return [at for at, path in self.requests if path.startswith("/hub/api/users?")]


@pytest.fixture
def hub() -> Iterator[StandInHub]:
    stand_in = StandInHub()
    yield stand_in
    stand_in.server.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(tmp_path: Path, hub: StandInHub, *arguments: str) -> tuple[subprocess.Popen[str], Path]:
    """``himalia serve`` as JupyterHub starts a managed service, its log in a file."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTERHUB_", "HIMALIA_"))}
    env.update(
        HIMALIA_HOME=str(tmp_path / "home"),
        HIMALIA_SECRET_KEYS=SECRET_KEY,
        HIMALIA_AUDIT_KEY=AUDIT_KEY,
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTERHUB_API_TOKEN=HUB_TOKEN,
        JUPYTERHUB_API_URL=hub.url,
        JUPYTERHUB_SERVICE_NAME="himalia",
        JUPYTERHUB_SERVICE_PREFIX="/services/himalia/",
        JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
        JUPYTERHUB_CLIENT_ID="service-himalia",
        JUPYTERHUB_OAUTH_CALLBACK_URL="/services/himalia/oauth_callback",
    )
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "himalia", "serve", *arguments],
            env=env,
            cwd=tmp_path,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, log


def wait_for(log: Path, text: str, process: subprocess.Popen[str], seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        if process.poll() is not None:
            raise AssertionError(f"himalia serve exited {process.returncode}:\n{content}")
        time.sleep(0.2)
    raise AssertionError(f"no '{text}' in the log of himalia serve:\n{log.read_text()}")


def test_himalia_serve_in_hub_mode_takes_every_setting_from_its_configuration_file(
    tmp_path: Path, hub: StandInHub
) -> None:
    config = tmp_path / "himalia_config.py"
    config.write_text(
        "\n".join(
            [
                "c.ControlPlane.max_concurrent_runs = 7",
                "c.ControlPlane.max_concurrent_runs_per_user = 3",
                "c.ControlPlane.max_queued_runs = 11",
                "c.Mailer.host = 'smtp.corp.example'",
                "c.Mailer.port = 587",
                "c.Mailer.security = 'starttls'",
                "c.HubService.sync_interval = 0.5",
                "c.UserIsolation.mode = 'shared_account_unsafe'",
            ]
        )
    )
    process, log = start_serve(tmp_path, hub, "--config", str(config))
    try:
        content = wait_for(log, "listening on http://127.0.0.1", process)
        assert f"Configuration: {config}" in content
        assert "at most 7 at once, 3 per run-as user, 11 queued" in content
        assert "Email reports through smtp.corp.example:587, TLS: starttls" in content
        assert "every 0.5 s" in content
        deadline = time.monotonic() + 30
        while len(hub.syncs()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        syncs = hub.syncs()
        assert len(syncs) >= 4, (syncs, log.read_text())  # the default interval is 300 s: one sync at start
        assert syncs[-1] - syncs[1] < 10
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c.HubService.sync_interval = (\n", "error: configuration file {file}: SyntaxError"),
        ("c.ControlPlane.max_concurrent_runs = 'many'\n", "error: configuration ({file}): "),
    ],
)
def test_himalia_serve_refuses_a_bad_configuration_file_in_one_line(
    tmp_path: Path, hub: StandInHub, text: str, expected: str
) -> None:
    config = tmp_path / "broken_config.py"
    config.write_text(text)
    process, log = start_serve(tmp_path, hub, "--config", str(config))
    assert process.wait(60) == 1
    output = log.read_text().strip()
    assert output.startswith(expected.format(file=config)), output
    assert len(output.splitlines()) == 1 and "Traceback" not in output
    assert hub.requests == []


# -- the Jupyter server extension -----------------------------------------------------------------


@pytest.fixture
def himalia_config_text() -> str:
    return "c.ControlPlane.max_concurrent_runs = 5\nc.ControlPlane.max_queued_runs = 9\nc.Mailer.security = 'ssl'\n"


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any], jp_config_dir: Path, himalia_config_text: str) -> dict[str, Any]:
    """The server's own configuration, and ``himalia_config.py`` in Jupyter's config directory."""
    (jp_config_dir / "himalia_config.py").write_text(himalia_config_text)
    extension_config["ControlPlane"] |= {"max_concurrent_runs": 6, "run_scenarios": False}
    return extension_config | {"HubService": {"sync_interval": 5.0}}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_extension_reads_the_server_config_and_himalia_config_the_server_winning(started_extension: Any) -> None:
    plane: ControlPlane = started_extension.control_plane
    assert plane.max_concurrent_runs == 6  # jupyter_server_config over himalia_config
    assert plane.max_queued_runs == 9  # himalia_config alone
    assert plane.mailer.security == "ssl"
    assert plane.run_scenarios is False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("himalia_config_text", ["c.ControlPlane.max_concurrent_runs = (\n"])
def test_a_broken_himalia_config_turns_himalia_off_in_the_server_naming_the_file(
    jp_serverapp: Any, started_extension: Any, jp_config_dir: Path
) -> None:
    from himalia.api.base import CONTROL_PLANE

    extension = started_extension
    assert extension.control_plane is None
    assert extension.unavailable.startswith(f"configuration file {jp_config_dir / 'himalia_config.py'}: SyntaxError")
    assert CONTROL_PLANE not in jp_serverapp.web_app.settings
