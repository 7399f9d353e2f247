"""The platform's own health: each component checked in a thread of its own, within a time bound.

A broken component must not hang the answer: every check runs in this service's threads (not the
API's worker pool, which a stuck store may have exhausted) and one that has not answered within
``check_timeout`` is reported as an error. A check still running from an earlier call is not
started again, so a hung dependency holds one thread, never more. The SMTP server is asked at most
once per ``mail_check_interval``.
"""

import os
import shutil
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from himalia.scenarios.engine import RunEngine
from himalia.scenarios.reporting import Mailer
from himalia.scenarios.uptime import BEAT_INTERVAL
from himalia.store.db import Database
from himalia.store.orm import ScenarioRun, SchedulerUptime, utcnow
from himalia.wire.operations import Health, HealthComponent, HealthStatus
from himalia.wire.scenarios import RunState

KUBERNETES_EXECUTOR = "himalia.execution.kubernetes.executor.KubernetesExecutor"
#: A scheduler beat older than this many beat intervals is a warning, then an error.
BEATS_LATE_WARNING, BEATS_LATE_ERROR = 2, 5
GIB = 1024**3


class PlaneState(Protocol):
    """What the checks read of the control plane (a ``ControlPlane``)."""

    db: Database
    home: str
    mailer: Mailer
    run_scenarios: bool
    engine: RunEngine | None
    executor_class: type
    max_concurrent_runs: int
    secret_keys: list[str]
    audit_key: str
    bundle_signing_key: str

    def trait_has_value(self, name: str) -> bool: ...


@dataclass(frozen=True)
class KeyFile:
    """A file in the home that one of the instance's keys is read from."""

    name: str
    setting: str
    path: Path


def _key_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def key_files(plane: PlaneState) -> list[KeyFile]:
    """The key files of the home that this plane's keys come from (a configured or environment value
    replaces its file). Reads no key into a plane that was not started: its keys would be created."""
    home = Path(plane.home)
    found = []
    for name, setting, variable, filename in (
        ("secret keys", "secret_keys", "HIMALIA_SECRET_KEYS", "secret.key"),
        ("audit key", "audit_key", "HIMALIA_AUDIT_KEY", "audit.key"),
    ):
        path = home / filename
        if plane.trait_has_value(setting):  # a started plane: its keys are its file's when they match it
            value = getattr(plane, setting)
            from_file = path.is_file() and _key_lines(path) == (value if isinstance(value, list) else [value])
        else:
            from_file = not os.environ.get(variable, "").strip()
        if from_file:
            found.append(KeyFile(name, f"ControlPlane.{setting}", path))
    if not plane.bundle_signing_key.strip():
        found.append(KeyFile("bundle signing key", "ControlPlane.bundle_signing_key", home / "bundle-signing.key"))
    return found


def _component(name: str, status: HealthStatus, message: str, **details: object) -> HealthComponent:
    return HealthComponent(name=name, status=status, message=message, details=details)


class HealthService(LoggingConfigurable):
    """``check`` judges every component; ``ready`` only the store (the readiness probe's question)."""

    check_timeout = Float(
        5.0, min=0.1, config=True, help="Seconds each health check may take before it counts as an error."
    )
    mail_check_interval = Float(
        300.0,
        min=0.0,
        config=True,
        help="Seconds a check of the SMTP server (connect and EHLO) is reused before the server is asked again.",
    )
    disk_warning_bytes = Int(5 * GIB, min=0, config=True, help="Free bytes in the home below which health is degraded.")
    disk_error_bytes = Int(
        500 * 1024**2, min=0, config=True, help="Free bytes in the home below which health is unhealthy."
    )

    def __init__(self, plane: PlaneState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plane = plane
        self.key_files = key_files(plane)
        #: Key files there when the plane started: one missing since is lost, not yet to be created.
        self._present_at_start = {key.path for key in self.key_files if key.path.exists()}
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="himalia-health")
        self._pending: dict[str, Future[HealthComponent]] = {}
        self._lock = threading.Lock()
        self._mail: tuple[float, HealthComponent] | None = None

    # -- the answers ------------------------------------------------------------------------------

    def check(self, detailed: bool = True) -> Health:
        """Every component; without ``detailed``, their figures are left out."""
        checks: dict[str, Callable[[], HealthComponent]] = {
            "store": self._store,
            "scheduler": self._scheduler,
            "executor": self._executor,
            "mail": self._mail_server,
            "disk": self._disk,
            "keys": self._keys,
            "kubernetes": self._kubernetes,
        }
        components = self._bounded(checks)
        if not detailed:
            components = [component.model_copy(update={"details": {}}) for component in components]
        statuses = {component.status for component in components}
        overall = (
            "unhealthy" if HealthStatus.ERROR in statuses else "degraded" if HealthStatus.WARNING in statuses else "ok"
        )
        return Health(status=overall, checked_at=utcnow(), components=components)

    def ready(self) -> bool:
        """Whether the store answers at this Himalia's revision."""
        [store] = self._bounded({"store": self._store})
        return store.status == HealthStatus.OK

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _bounded(self, checks: dict[str, Callable[[], HealthComponent]]) -> list[HealthComponent]:
        with self._lock:
            for name, verb in checks.items():
                if name not in self._pending or self._pending[name].done():
                    self._pending[name] = self._pool.submit(self._guarded, name, verb)
            futures = {name: self._pending[name] for name in checks}
        wait(futures.values(), timeout=self.check_timeout)
        return [
            future.result()
            if future.done()
            else _component(name, HealthStatus.ERROR, f"did not answer within {self.check_timeout:g} s")
            for name, future in futures.items()
        ]

    def _guarded(self, name: str, verb: Callable[[], HealthComponent]) -> HealthComponent:
        try:
            return verb()
        except Exception as error:  # the component is broken: say how, in one line
            self.log.warning("Health check %s failed: %s", name, error)
            return _component(name, HealthStatus.ERROR, f"{type(error).__name__}: {str(error)[:300]}")

    # -- the components ---------------------------------------------------------------------------

    def _store(self) -> HealthComponent:
        db = self.plane.db
        current, head = db.current_revision(), db.head_revision()
        if current != head:
            return _component(
                "store",
                HealthStatus.ERROR,
                f"the store is at revision {current or 'none'}, this Himalia needs {head}: run `himalia db upgrade`",
                dialect=db.dialect,
                revision=current,
                expected_revision=head,
            )
        return _component("store", HealthStatus.OK, f"reachable, at revision {head}", dialect=db.dialect, revision=head)

    def _scheduler(self) -> HealthComponent:
        with self.plane.db.read() as session:
            newest = session.scalar(select(func.max(SchedulerUptime.beat_at)))
        here = self.plane.run_scenarios
        if newest is None:
            if not here:
                return _component("scheduler", HealthStatus.DISABLED, "no scheduler runs here and none has beaten")
            return _component("scheduler", HealthStatus.ERROR, "no scheduler has beaten yet")
        age = (utcnow() - newest).total_seconds()
        details = {"last_beat": newest.isoformat(), "age_seconds": round(age, 1)}
        beats = age / BEAT_INTERVAL.total_seconds()
        late = f"the last scheduler beat is {timedelta(seconds=round(age))} old"
        if beats > BEATS_LATE_ERROR:
            if not here:
                return _component("scheduler", HealthStatus.DISABLED, f"no scheduler runs here; {late}", **details)
            return _component("scheduler", HealthStatus.ERROR, f"{late}: no scheduler is firing triggers", **details)
        if beats > BEATS_LATE_WARNING:
            return _component("scheduler", HealthStatus.WARNING, f"{late} (beats every {BEAT_INTERVAL})", **details)
        return _component("scheduler", HealthStatus.OK, f"beat {round(age)} s ago", **details)

    def _executor(self) -> HealthComponent:
        engine = self.plane.engine
        kind = self.plane.executor_class.__name__
        if engine is None:
            return _component("executor", HealthStatus.DISABLED, "runs are not executed in this process", kind=kind)
        slots = self.plane.max_concurrent_runs
        with self.plane.db.read() as session:
            running = session.scalar(
                select(func.count())
                .select_from(ScenarioRun)
                .where(ScenarioRun.state == RunState.RUNNING, ScenarioRun.worker == engine.worker)
            )
            queued = session.scalar(
                select(func.count()).select_from(ScenarioRun).where(ScenarioRun.state == RunState.QUEUED)
            )
        details: dict[str, object] = {"kind": kind, "running": running, "slots": slots, "queued": queued}
        idle_workers = getattr(engine.executor, "idle_workers", None)
        if idle_workers is not None:
            details["warm_workers"] = idle_workers
        message = f"{kind}: {running} of {slots} slots running, {queued} queued"
        status = HealthStatus.WARNING if queued and running and running >= slots else HealthStatus.OK
        return _component(
            "executor", status, message + (" (every slot busy)" if status == HealthStatus.WARNING else ""), **details
        )

    def _mail_server(self) -> HealthComponent:
        mailer = self.plane.mailer
        if not mailer.configured():
            return _component("mail", HealthStatus.DISABLED, "no SMTP server is configured (c.Mailer.host)")
        if self._mail is not None and time.monotonic() - self._mail[0] < self.mail_check_interval:
            return self._mail[1]
        where = f"{mailer.host}:{mailer.port}"
        timeout = min(mailer.timeout, self.check_timeout)
        try:
            client: smtplib.SMTP
            if mailer.security == "ssl":
                tls = ssl.create_default_context(cafile=mailer.ca_file or None)
                client = smtplib.SMTP_SSL(mailer.host, mailer.port, timeout=timeout, context=tls)
            else:
                client = smtplib.SMTP(mailer.host, mailer.port, timeout=timeout)
            with client:
                code, _ = client.ehlo()
            if not 200 <= code < 300:
                raise smtplib.SMTPResponseException(code, b"EHLO refused")
            result = _component("mail", HealthStatus.OK, f"{where} answers", server=where)
        except (OSError, smtplib.SMTPException) as error:
            result = _component(
                "mail", HealthStatus.ERROR, f"{where} cannot be reached: {type(error).__name__}", server=where
            )
        self._mail = (time.monotonic(), result)
        return result

    def _disk(self) -> HealthComponent:
        usage = shutil.disk_usage(self.plane.home)
        details = {"free_bytes": usage.free, "total_bytes": usage.total}
        free = f"{usage.free / GIB:.1f} GiB free in the home"
        if usage.free < self.disk_error_bytes:
            return _component("disk", HealthStatus.ERROR, f"{free}: below {self.disk_error_bytes} bytes", **details)
        if usage.free < self.disk_warning_bytes:
            return _component("disk", HealthStatus.WARNING, f"{free}: below {self.disk_warning_bytes} bytes", **details)
        return _component("disk", HealthStatus.OK, free, **details)

    def _keys(self) -> HealthComponent:
        """Whether the key files still exist: their paths only, never their contents."""
        missing = [key for key in self.key_files if key.path in self._present_at_start and not key.path.is_file()]
        details = {key.name: str(key.path) for key in self.key_files}
        if missing:
            names = ", ".join(f"{key.name} ({key.path})" for key in missing)
            return _component(
                "keys", HealthStatus.ERROR, f"missing: {names}; restore it from your key backup", **details
            )
        if not self.key_files:
            return _component("keys", HealthStatus.OK, "every key comes from the configuration or the environment")
        return _component("keys", HealthStatus.OK, f"{len(self.key_files)} key files in place", **details)

    def _kubernetes(self) -> HealthComponent:
        if f"{self.plane.executor_class.__module__}.{self.plane.executor_class.__name__}" != KUBERNETES_EXECUTOR:
            return _component("kubernetes", HealthStatus.DISABLED, "the Kubernetes executor is not in use")
        from kubernetes.client import VersionApi

        from himalia.execution.kubernetes.executor import load_api_client

        engine = self.plane.engine
        client = getattr(engine.executor, "api_client", None) if engine is not None else None
        client = client or load_api_client()
        host = client.configuration.host
        try:
            version = VersionApi(client).get_code(_request_timeout=self.check_timeout)
        except Exception as error:  # urllib3's and the API's errors alike: unreachable for us
            return _component(
                "kubernetes", HealthStatus.ERROR, f"{host} cannot be reached: {type(error).__name__}", server=host
            )
        return _component(
            "kubernetes", HealthStatus.OK, f"{host} answers (Kubernetes {version.git_version})", server=host
        )
