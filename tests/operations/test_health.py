"""Health through the real API: each component broken in turn, the unauthenticated probes, the
details kept for administrators. Real stores, a real SMTP server (aiosmtpd), real ports."""

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from sqlalchemy import text

from himalia.api import API_PREFIX
from himalia.controlplane import ControlPlane
from himalia.scenarios.uptime import BEAT_INTERVAL, UptimeLog
from himalia.store.orm import utcnow

from ..conftest import LiveAPI, make_plane

REPO = Path(__file__).parents[2]
KUBERNETES_EXECUTOR = "himalia.execution.kubernetes.executor.KubernetesExecutor"


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def beat(plane: ControlPlane, age: timedelta) -> None:
    """A scheduler that last said it was alive ``age`` ago."""
    UptimeLog(plane.db, "elsewhere:1:test").begin(utcnow() - age)


@pytest.fixture
def healthy(plane: ControlPlane) -> ControlPlane:
    """Every component fine: a fresh beat, and no disk threshold the test machine could cross."""
    beat(plane, timedelta(seconds=5))
    plane.health.disk_warning_bytes = plane.health.disk_error_bytes = 0
    return plane


def components(api: LiveAPI) -> tuple[str, dict[str, dict[str, Any]]]:
    reply = api.request("GET", "/health")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["status"], {component["name"]: component for component in body["components"]}


def test_a_healthy_platform(api: LiveAPI, healthy: ControlPlane) -> None:
    status, parts = components(api)
    assert status == "ok"
    assert {name: part["status"] for name, part in parts.items()} == {
        "store": "ok",
        "scheduler": "ok",
        "executor": "disabled",
        "mail": "disabled",
        "disk": "ok",
        "keys": "ok",
        "kubernetes": "disabled",
    }
    assert parts["store"]["details"]["revision"] == healthy.db.head_revision()
    assert parts["disk"]["details"]["free_bytes"] > 0


def test_a_store_at_an_old_revision(api: LiveAPI, healthy: ControlPlane) -> None:
    with healthy.db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0008'"))
    status, parts = components(api)
    assert status == "unhealthy"
    assert parts["store"]["status"] == "error"
    assert "revision 0008" in parts["store"]["message"] and "himalia db upgrade" in parts["store"]["message"]
    ready = api.request("GET", "/health/ready", role="anonymous")
    assert ready.status_code == 503
    assert "field" not in ready.text or ready.json()["field"] is None
    assert api.request("GET", "/health/live", role="anonymous").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("beats", "expected", "overall"),
    [(BEAT_INTERVAL * 3, "warning", "degraded"), (BEAT_INTERVAL * 6, "error", "unhealthy")],
)
def test_an_old_scheduler_beat(
    api: LiveAPI, plane: ControlPlane, beats: timedelta, expected: str, overall: str
) -> None:
    plane.health.disk_warning_bytes = plane.health.disk_error_bytes = 0
    beat(plane, beats)
    status, parts = components(api)
    assert (status, parts["scheduler"]["status"]) == (overall, expected)
    assert parts["scheduler"]["details"]["age_seconds"] >= beats.total_seconds()


def test_no_scheduler_here_and_none_beating_is_disabled(api: LiveAPI, plane: ControlPlane) -> None:
    plane.run_scenarios = False
    beat(plane, BEAT_INTERVAL * 100)  # a scheduler that stopped long ago
    _, parts = components(api)
    assert parts["scheduler"]["status"] == "disabled"
    plane.run_scenarios = True
    assert components(api)[1]["scheduler"]["status"] == "error"


def test_the_mail_server_down_then_up(api: LiveAPI, healthy: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("HIMALIA_SMTP_HOST", "127.0.0.1")
    healthy.mailer.host, healthy.mailer.port = "127.0.0.1", port
    status, parts = components(api)
    assert (status, parts["mail"]["status"]) == ("unhealthy", "error")
    assert f"127.0.0.1:{port} cannot be reached" in parts["mail"]["message"]

    controller = Controller(object(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert components(api)[1]["mail"]["status"] == "error", "the answer is cached for mail_check_interval"
        healthy.health.mail_check_interval = 0
        status, parts = components(api)
        assert (status, parts["mail"]["status"]) == ("ok", "ok")
    finally:
        controller.stop()


def test_the_disk_thresholds(api: LiveAPI, healthy: ControlPlane) -> None:
    healthy.health.disk_warning_bytes = 2**62
    assert components(api)[1]["disk"]["status"] == "warning"
    healthy.health.disk_error_bytes = 2**62
    status, parts = components(api)
    assert (status, parts["disk"]["status"]) == ("unhealthy", "error")


@pytest.fixture
def keyed_plane(tmp_path: Path, backend: str, db_url: str) -> Iterator[ControlPlane]:
    """A plane reading its keys from its home's files, on a store of its own."""
    if backend != "sqlite":
        pytest.skip("the key files do not depend on the store")
    plane = ControlPlane(home=str(tmp_path / "keyed"), db_url=f"sqlite:///{tmp_path / 'keyed.sqlite'}")
    plane.start()
    yield plane
    plane.stop()


def test_a_key_file_removed(keyed_plane: ControlPlane) -> None:
    keyed_plane.health.disk_warning_bytes = keyed_plane.health.disk_error_bytes = 0
    beat(keyed_plane, timedelta(seconds=1))
    keys = keyed_plane.health.check().components[5]
    assert keys.name == "keys" and keys.status == "ok"
    assert keys.details["audit key"] == str(Path(keyed_plane.home) / "audit.key")
    audit_key = keyed_plane.audit_key
    (Path(keyed_plane.home) / "audit.key").unlink()
    health = keyed_plane.health.check()
    keys = health.components[5]
    assert (health.status, keys.status) == ("unhealthy", "error")
    assert "audit key" in keys.message and "audit.key" in keys.message
    assert audit_key not in health.model_dump_json(), "never a key's content"


def test_the_kubernetes_api_unreachable(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "unused"}}],
            }
        )
    )
    # The client reads $KUBECONFIG once, when first imported (another test may have imported it).
    import kubernetes.config.kube_config

    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setenv("HIMALIA_EXECUTOR_CLASS", KUBERNETES_EXECUTOR)
    plane = make_plane(tmp_path / "k8s-home", db_url)
    try:
        plane.health.disk_warning_bytes = plane.health.disk_error_bytes = 0
        beat(plane, timedelta(seconds=1))
        health = plane.health.check()
        [kubernetes] = [c for c in health.components if c.name == "kubernetes"]
        assert (health.status, kubernetes.status) == ("unhealthy", "error")
        assert f"http://127.0.0.1:{port} cannot be reached" in kubernetes.message
    finally:
        plane.stop()


def test_a_hung_check_is_bounded(api: LiveAPI, healthy: ControlPlane) -> None:
    """A component that never answers is an error after check_timeout, the others still answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection, never greets: SMTP waits for its banner
    try:
        healthy.mailer.host, healthy.mailer.port = "127.0.0.1", listener.getsockname()[1]
        healthy.config.Mailer.host = "127.0.0.1"
        healthy.mailer.timeout, healthy.health.check_timeout = 60.0, 0.5
        started = time.monotonic()
        status, parts = components(api)
        assert time.monotonic() - started < 5
        assert (status, parts["mail"]["status"]) == ("unhealthy", "error")
        assert parts["store"]["status"] == "ok"
    finally:
        listener.close()


@pytest.mark.parametrize("role", ["anonymous", "nogrant", "reader", "projadmin", "admin"])
def test_the_probes_need_no_authentication(api: LiveAPI, healthy: ControlPlane, role: str) -> None:
    live = api.request("GET", "/health/live", role=role)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = api.request("GET", "/health/ready", role=role)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("role", ["nogrant", "reader", "contributor", "projadmin"])
def test_details_are_for_administrators(api: LiveAPI, role: str) -> None:
    reply = api.request("GET", "/health", role=role)
    assert reply.status_code == 403
    assert reply.json()["message"] == (
        f"{role} does not hold the global permission 'admin': ask an administrator for it."
    )
    assert api.request("GET", "/health", role="anonymous").status_code == 401


def test_the_openapi_document_marks_the_probes_public(api: LiveAPI) -> None:
    paths = api.request("GET", "/openapi.json", role="anonymous").json()["paths"]
    for probe in ("live", "ready"):
        assert paths[f"{API_PREFIX}/health/{probe}"]["get"]["security"] == []
    assert "security" not in paths[f"{API_PREFIX}/health"]["get"]
    assert "403" in paths[f"{API_PREFIX}/health"]["get"]["responses"]


def test_the_chart_probes_the_control_plane() -> None:
    """The probe container of hub_config/values.yaml asks the service's own port, under its prefix."""
    values = yaml.safe_load((REPO / "hub_config" / "values.yaml").read_text())
    [probe] = [c for c in values["hub"]["extraContainers"] if c["name"] == "himalia-probe"]
    port = values["hub"]["service"]["extraPorts"][0]["port"]
    for kind, probe_path in (("startupProbe", "ready"), ("livenessProbe", "live")):
        get = probe[kind]["httpGet"]
        assert (get["port"], get["path"]) == (port, f"/services/himalia{API_PREFIX}/health/{probe_path}")
