"""End-to-end UI tests: the real JupyterLab with the built Himalia extension, in headless Chromium.

One data folder is seeded as ``make demo`` seeds it (the FRAUD project, its people, warehouse,
datasets, checks and the daily fraud scoring scenario), then two ``jupyter lab`` servers share it:

- ``admin_lab``: the server owner is the platform administrator (the standalone default), and its
  control plane runs scenarios;
- ``reader_lab``: the server acts as ``carol``, a member of ``readers`` only
  (``--HimaliaExtension.local_user_admin=False``), and runs nothing.

The administration application is opened through ``admin_app``, once in each host: a lab acting
as the person (started once per person for the session, on the same data folder) and the hub of
``make demo`` (``admin_hub``, started once for the session), signed in through its identity provider.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser download is
neither needed nor possible here). Every test saves screenshots under ``test-artifacts/ui/``.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from ..hub.idp import DEMO_PASSWORD, DevIdentityProvider

REPOSITORY = Path(__file__).resolve().parents[2]
ARTIFACTS = REPOSITORY / "test-artifacts" / "ui"
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAB_EXTENSION = REPOSITORY / "server_ext" / "himalia" / "labextension" / "package.json"

pytestmark = pytest.mark.ui

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    """No in-process Jupyter server here (pytest-jupyter's autouse loop would clash with Playwright's)."""
    yield


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def page_url(self, path: str = "lab") -> str:
        return f"{self.url}{path}?token={self.token}"

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}himalia/api/v1/{path}", headers=headers, timeout=30, **kwargs)


def code_cell(source: str, tags: list[str] | None = None) -> dict[str, object]:
    metadata = {"tags": tags} if tags else {}
    return {"cell_type": "code", "metadata": metadata, "source": source, "outputs": [], "execution_count": None}


def put_notebook(lab: Lab, path: str, cells: list[dict[str, object]]) -> None:
    """Save a Python notebook of ``cells`` in the lab's root, as JupyterLab would."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": cells,
    }
    put = requests.put(
        f"{lab.url}api/contents/{path}",
        headers={"Authorization": f"token {lab.token}"},
        json={"type": "notebook", "content": notebook},
        timeout=30,
    )
    assert put.status_code in (200, 201), put.text


@pytest.fixture(scope="session")
def demo_root() -> Iterator[tuple[Path, dict[str, str]]]:
    """A notebook folder with the demo notebooks and a Himalia home seeded with the demo.

    In a folder every account may pass through (pytest's own is its user's alone): the demo's
    notebook steps run as their people's OS accounts and open the warehouse beside the home."""
    if not LAB_EXTENSION.exists():
        pytest.fail("The lab extension is not built: `make install` builds it (npm run build:prod).")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make system-deps` installs Debian's chromium.")
    base = Path(tempfile.mkdtemp(prefix="himalia-ui-lab-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    root = base / "lab-root"
    root.mkdir()
    shutil.copytree(REPOSITORY / "notebooks", root / "notebooks")
    shutil.copytree(REPOSITORY / "scenarios", root / "scenarios")
    home = root.parent / (root.name + "-home")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HIMALIA_")},
        "HIMALIA_HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(root.parent / (root.name + "-jupyter-config")),
        "JUPYTER_RUNTIME_DIR": str(root.parent / (root.name + "-jupyter-runtime")),
        "JUPYTERLAB_SETTINGS_DIR": str(root.parent / (root.name + "-lab-settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(root.parent / (root.name + "-lab-workspaces")),
    }
    # No news prompt from JupyterLab over the panels.
    page_config = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True)
    page_config.write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    himalia = [sys.executable, "-m", "himalia"]
    subprocess.run([*himalia, "demo"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*himalia, "--as", "alice", "scenario", "apply", "FRAUD", "scenarios/daily-fraud-scoring.yaml"],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
    )
    sink = _start_mailsink(root.parent / (root.name + "-mail"), env)
    try:
        yield root, env
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _start_mailsink(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = _free_port()
    env["HIMALIA_SMTP_HOST"], env["HIMALIA_SMTP_PORT"] = "127.0.0.1", str(port)
    return subprocess.Popen(
        [sys.executable, "-m", "himalia.demo.mailsink", "--port", str(port), "--folder", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _start_lab(root: Path, env: dict[str, str], name: str, *options: str) -> Iterator[Lab]:
    port, token = _free_port(), f"ui-test-{name}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}-server.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        *options,
    ]
    if os.getuid() == 0:
        command.append("--allow-root")
    with log.open("wb") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    lab = Lab(url=f"http://127.0.0.1:{port}/", token=token, log=log)
    try:
        _wait_until_ready(lab, server)
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


class MakeLab:
    """`make lab` as a newcomer runs it, in a folder holding the clone's notebooks and scenarios,
    with its relative home; ``clock`` prefixes the command (``faketime -f +36000s``, say).

    The folder is one every account may pass through (notebook steps run as their people's accounts
    when the tests run as root), as a clone in a home folder is. Its install steps are taken as done
    (``make -o install -o share-python``: this test session runs in that environment).
    """

    home = ".himalia-demo"  # as the README and the Makefile have it: relative to the clone

    def __init__(self, name: str) -> None:
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix=f"himalia-ui-{name}-", dir="/var/tmp"))
        os.chmod(self.base, 0o755)
        self.clone = self.base / "clone"
        self.clone.mkdir()
        for folder in ("notebooks", "scenarios"):
            shutil.copytree(REPOSITORY / folder, self.clone / folder)
        self.env = {
            **{name: value for name, value in os.environ.items() if not name.startswith(("HIMALIA_", "JUPYTER"))},
            "JUPYTER_TOKEN": f"ui-test-{name}",
            "JUPYTER_CONFIG_DIR": str(self.base / "jupyter-config"),
            "JUPYTER_RUNTIME_DIR": str(self.base / "jupyter-runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.base / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.base / "lab-workspaces"),
        }
        page_config = self.base / "jupyter-config" / "labconfig" / "page_config.json"
        page_config.parent.mkdir(parents=True)
        page_config.write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
        self.make: subprocess.Popen[bytes] | None = None

    def start(self, *clock: str, log_name: str | None = None) -> Lab:
        port = _free_port()
        command = [*clock, "make", "--no-print-directory", "-f", str(REPOSITORY / "Makefile"), "-o", "install"]
        command += ["-o", "share-python", "lab", f"BIN={Path(sys.executable).parent}", f"LAB_HOME={self.home}"]
        command += [f"LAB_PORT={port}", f"LAB_SMTP_PORT={_free_port()}"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = ARTIFACTS / f"{log_name or self.name}.log"
        with log.open("wb") as output:
            self.make = subprocess.Popen(
                command, cwd=self.clone, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        lab = Lab(url=f"http://127.0.0.1:{port}/", token=self.env["JUPYTER_TOKEN"], log=log)
        _wait_until_ready(lab, self.make)
        return lab

    def stop(self) -> None:
        """Stop make, its shell, the mail sink and jupyter lab, as Ctrl-C would."""
        if self.make is None:
            return
        stop_process_group(self.make, 30)
        self.make = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def stop_process_group(leader: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the session ``leader`` started (``start_new_session``), then wait for every process
    of it, not only the leader: a ``faketime`` or ``make`` may end first and leave a jupyter still
    shutting down, which then outlives the test and the folders it is removed from. After
    ``grace`` seconds, what is left is killed."""
    group = leader.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        leader.poll()  # reap the leader, which would otherwise stay in the group as a zombie
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    leader.wait(10)


def _wait_until_ready(lab: Lab, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}: {lab.log.read_text()[-3000:]}")
        try:
            if lab.api("GET", "me").status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer in 90 s: {lab.log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def admin_lab(demo_root: tuple[Path, dict[str, str]]) -> Iterator[Lab]:
    root, env = demo_root
    yield from _start_lab(root, env, "admin")


@pytest.fixture(scope="session")
def reader_lab(demo_root: tuple[Path, dict[str, str]]) -> Iterator[Lab]:
    root, env = demo_root
    yield from _start_lab(
        root,
        env,
        "reader",
        "--HimaliaExtension.local_user=carol",
        "--HimaliaExtension.local_user_admin=False",
        "--ControlPlane.run_scenarios=False",
    )


@pytest.fixture(scope="session")
def browser() -> Iterator["playwright_api.Browser"]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: "playwright_api.Browser", request: pytest.FixtureRequest) -> Iterator["playwright_api.Page"]:
    """A fresh browser context per test; a screenshot of the end state is always saved."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"))
    context.close()
    assert not [p for p in problems if "himalia" in p.lower()], problems


def open_himalia(page: "playwright_api.Page", lab: Lab) -> "playwright_api.Locator":
    """Open JupyterLab and the Himalia sidebar; return the sidebar."""
    page.goto(lab.page_url() + "&reset")  # a fresh workspace: no layout left by an earlier test
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    tab = page.locator(".jp-SideBar [data-id='himalia-sidebar']")
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    sidebar = page.locator("#himalia-sidebar")
    sidebar.wait_for(state="visible")
    return sidebar


def expand(sidebar: "playwright_api.Locator", label: str) -> "playwright_api.Locator":
    """Expand a section of the sidebar (if collapsed) and return its body."""
    header = sidebar.locator(".jp-AccordionPanel-title", has_text=label)
    if header.get_attribute("aria-expanded") != "true":
        header.click()
    section_id = {
        "Projects": "himalia-projects",
        "Scenarios": "himalia-scenarios",
        "Data quality": "himalia-dataquality",
        "Connections": "himalia-connections",
        "Variables": "himalia-variables",
    }[label]
    body = sidebar.locator(f"#{section_id}")
    body.wait_for(state="visible")
    return body


def choose_project(sidebar: "playwright_api.Locator", key: str) -> None:
    projects = expand(sidebar, "Projects")
    row = projects.locator(f"[data-project='{key}']")
    if "hml-current" not in (row.get_attribute("class") or ""):
        row.locator(".hml-row-main").click()
    projects.locator(f"section[aria-label='Project {key}']").wait_for()


def palette(page: "playwright_api.Page", command: str) -> None:
    """Run a command from the command palette, by the keyboard (see test_themes for why)."""
    search = page.locator(".jp-ModalCommandPalette input")
    active = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item.lm-mod-active")
    for _ in range(30):
        if not search.is_visible():
            page.keyboard.press("Control+Shift+C")
            with contextlib.suppress(playwright_api.TimeoutError):
                search.wait_for(state="visible", timeout=1_500)
            continue
        with contextlib.suppress(playwright_api.TimeoutError):
            search.fill(command, timeout=2_000)  # the palette may close as it opens (a panel took the focus)
            active.filter(has_text=command).wait_for(timeout=5_000)
            search.press("Enter")
            return
    raise AssertionError(f"{command!r} could not be run from the command palette")


def shoot(page: "playwright_api.Page", name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# -- The multi-user platform ----------------------------------------------------------------------


@dataclass
class Hub:
    url: str
    state: Path
    env: dict[str, str]

    def himalia(self, *arguments: str) -> str:
        """The ``himalia`` CLI on the service's store, as the hub's operator."""
        done = subprocess.run(
            [str(BIN / "himalia"), *arguments], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    @property
    def service_api(self) -> str:
        return f"{self.url}/services/himalia/himalia/api/v1"


def start_hub(environment: dict[str, str], accounts: Path | None = None) -> Iterator[Hub]:
    """The hub of `make demo` with ``environment`` added, its state in a folder other accounts may
    pass through, as in a clone (pytest's own folders are root's alone, which would hide what the
    state's modes protect); ``accounts`` are the provider's people (default: the demo's)."""
    base = Path(tempfile.mkdtemp(prefix="himalia-ui-hub-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    state = base / "hub"
    state.mkdir()
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTER"))},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HIMALIA_HOME": str(state / "himalia"),
        "HIMALIA_HUB_STATE": str(state),
        "HIMALIA_HUB_PORT": str(port),
        "HIMALIA_HUB_API_PORT": str(_free_port()),
        "HIMALIA_PROXY_API_PORT": str(_free_port()),
        "HIMALIA_SERVICE_PORT": str(_free_port()),
        **environment,
    }
    subprocess.run([str(BIN / "himalia"), "demo"], env=env, check=True, capture_output=True)
    callback = f"http://127.0.0.1:{port}/hub/oauth_callback"
    with DevIdentityProvider(_free_port(), "himalia-hub", "himalia-dev-secret", [callback], accounts=accounts) as idp:
        env["HIMALIA_OIDC_ISSUER"] = idp.issuer
        log = (state / "jupyterhub.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(REPOSITORY / "hub_config" / "jupyterhub_config.py")],
            cwd=state,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        hub = Hub(f"http://127.0.0.1:{port}", state, env)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if requests.get(f"{hub.service_api}/openapi.json", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterHub did not come up:\n{(state / 'jupyterhub.log').read_text()[-4000:]}")
                time.sleep(0.5)
            yield hub
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / f"jupyterhub-{port}.log").write_bytes((state / "jupyterhub.log").read_bytes())
            shutil.rmtree(base, ignore_errors=True)


def sign_in_to_hub(page: "playwright_api.Page", hub: Hub, login: str) -> None:
    """Sign ``page``'s browser context in to the hub through the provider's login page."""
    page.goto(f"{hub.url}/hub/oauth_login")
    page.wait_for_selector("input[name=login]")
    assert "Himalia dev sign-in" in page.title()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{hub.url}/hub/**")


@pytest.fixture(scope="session")
def admin_hub() -> Iterator[Hub]:
    """One hub for every test of the administration application (tests change its people, tiers
    and grants: each test makes its own objects or puts back what it changed)."""
    yield from start_hub({})


# -- The administration application in both hosts --------------------------------------------------

#: The people the provider's ``admins`` group makes administrators at the hub; their labs make them
#: administrators too (``local_user_admin``), so that each person holds the same rights in both hosts.
HUB_ADMINS = {"alice"}


class LabsByPerson:
    """A lab acting as each person asked for (``local_user``), started at the first ask and kept for
    the session, all on the demo's data folder; only ``admin_lab``'s control plane runs scenarios."""

    def __init__(self, root: Path, env: dict[str, str], reader: Lab) -> None:
        self.root, self.env = root, env
        self.labs: dict[str, Lab] = {"carol": reader}
        self.servers = contextlib.ExitStack()

    def __call__(self, login: str) -> Lab:
        if login not in self.labs:
            admin = login in HUB_ADMINS
            options = [f"--HimaliaExtension.local_user={login}", f"--HimaliaExtension.local_user_admin={admin}"]
            started = contextlib.contextmanager(_start_lab)(
                self.root, self.env, f"as-{login}", *options, "--ControlPlane.run_scenarios=False"
            )
            self.labs[login] = self.servers.enter_context(started)
        return self.labs[login]


@pytest.fixture(scope="session")
def labs_by_person(demo_root: tuple[Path, dict[str, str]], reader_lab: Lab) -> Iterator[LabsByPerson]:
    root, env = demo_root
    labs = LabsByPerson(root, env, reader_lab)
    with labs.servers:
        yield labs


@dataclass
class AdminApp:
    """The administration application in one host (``lab`` or ``hub``), opened as a person.

    ``open(page, login)`` signs the page's browser in (the lab's token, or the hub's provider) and
    opens ``/himalia/admin/`` there, waiting until the application knows the person; ``api`` calls
    the REST API as a person with a token; ``himalia`` runs the CLI on the host's store as its operator.

    The people are the demo's in both hosts: alice (an administrator), bob (analyst), carol (reader).
    To make someone a tier manager, say, give a group of Himalia's own the permission and add them
    (``himalia("group", "add", ...)``): the hub's sync changes only the groups that came from the hub.
    """

    host: str
    _lab_for: LabsByPerson | None = None
    _hub: Hub | None = None
    _env: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def url(self, login: str, page_id: str = "") -> str:
        """Where the application is (without credentials); ``page_id`` opens one of its pages."""
        fragment = f"#/{page_id}" if page_id else ""
        if self._hub is not None:
            return f"{self._hub.url}/services/himalia/admin/{fragment}"
        assert self._lab_for is not None
        return f"{self._lab_for(login).url}himalia/admin/{fragment}"

    def api_base(self, login: str) -> str:
        if self._hub is not None:
            return f"{self._hub.service_api}/"
        assert self._lab_for is not None
        return f"{self._lab_for(login).url}himalia/api/v1/"

    def open(self, page: "playwright_api.Page", login: str, page_id: str = "") -> "playwright_api.Page":
        """``page`` signed in as ``login`` with the application open (on ``page_id`` if given)."""
        if self._hub is not None:
            sign_in_to_hub(page, self._hub, login)
            page.goto(self.url(login, page_id))
        else:
            assert self._lab_for is not None
            lab = self._lab_for(login)
            page.goto(f"{lab.url}himalia/admin/?token={lab.token}" + (f"#/{page_id}" if page_id else ""))
        page.locator(f".hml-admin[data-login='{login}']").wait_for(timeout=60_000)
        return page

    def fetch(self, page: "playwright_api.Page", method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Call the API from the opened application's page, with its session (cookie and XSRF token),
        as the application does; ``path`` is below the API prefix (``users``, ``audit?limit=5``)."""
        config = "JSON.parse(document.getElementById('himalia-admin-config').textContent)"
        base = page.evaluate(f"() => {config}.baseUrl") + "himalia/api/v1/"
        status, text = page.evaluate(
            """async ([method, url, body]) => {
                const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
                const r = await fetch(url, {method, headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'},
                                            body: body === null ? undefined : JSON.stringify(body)});
                return [r.status, await r.text()];
            }""",
            [method, base + path, body],
        )
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def himalia(self, *arguments: str) -> str:
        """The ``himalia`` CLI on this host's store, as its operator."""
        done = subprocess.run(
            [str(BIN / "himalia"), *arguments], env=self._env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def api(self, login: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The REST API as ``login``, with a Himalia token made for them (kept for the session)."""
        if login not in self._tokens:
            self._tokens[login] = self.himalia("token", "create", "--user", login).strip()
        headers = {"Authorization": f"token {self._tokens[login]}"}
        return requests.request(method, self.api_base(login) + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="session")
def admin_app_in_lab(demo_root: tuple[Path, dict[str, str]], labs_by_person: LabsByPerson) -> AdminApp:
    return AdminApp("lab", _lab_for=labs_by_person, _env=demo_root[1])


@pytest.fixture(scope="session")
def admin_app_in_hub(admin_hub: Hub) -> AdminApp:
    return AdminApp("hub", _hub=admin_hub, _env=admin_hub.env)


@pytest.fixture(params=["lab", "hub"])
def admin_app(request: pytest.FixtureRequest) -> AdminApp:
    """The administration application in each host in turn: a test taking it runs once in each.

    def test_x(page, admin_app):
        app = admin_app.open(page, "alice", "people")  # signed in, on #/people
        status, users = admin_app.fetch(app, "GET", "users")  # through the page's session
    """
    app: AdminApp = request.getfixturevalue(f"admin_app_in_{request.param}")
    return app
