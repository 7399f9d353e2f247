"""The control plane: configuration, the store and the services, wired once per process.

Both hosts (the Jupyter server extension and ``himalia serve``) and the CLI build one
``ControlPlane`` and call its services; nothing else opens the database.
"""

import asyncio
import ipaddress
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from traitlets import Bool, Bunch, Float, Int, List, Type, Unicode, validate
from traitlets.config import LoggingConfigurable

from himalia.bundles.format import load_or_create_signing_key, signing_key_from_pem
from himalia.bundles.service import BundleService
from himalia.compute.budgets import BudgetService
from himalia.compute.tiers import TierService
from himalia.compute.usage import UsageService
from himalia.core.config import (
    DB_URL_VARIABLE,
    HOME_VARIABLE,
    absolute_path,
    comma_separated,
    default_db_url,
    default_home,
    environment_default,
)
from himalia.core.crypto import SecretBox, load_or_create_key_file
from himalia.core.errors import InvalidInput
from himalia.core.home import home_problems_reported, require_writable_home
from himalia.core.private_files import create_private_file, ensure_private_folder, restrict_to_owner
from himalia.data.access import DEFAULT_REMOTE_PROTOCOLS, DataAccessPolicy
from himalia.data.checks import CheckService
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.exports import ExportService
from himalia.data.metrics import MetricService
from himalia.data.reading import DatasetReader, DatasetReading
from himalia.execution.accounts import UserIsolation
from himalia.identity.audit import AuditService, AuditTrail
from himalia.identity.projects import ProjectService
from himalia.identity.tokens import TokenService
from himalia.identity.users import UserService
from himalia.identity.variables import VariableService
from himalia.operations.board import BoardService
from himalia.operations.budget_alerts import BudgetWatcher
from himalia.operations.health import HealthService
from himalia.scenarios.deadlines import AlertChannels, DeadlineWatcher
from himalia.scenarios.engine import RunEngine, StepServices
from himalia.scenarios.files import ProjectFiles, read_project_file
from himalia.scenarios.records import RunLimits
from himalia.scenarios.reporting import Mailer, WebhookSettings, failure_notice, report_all
from himalia.scenarios.retention import Retention, RetentionService, RetentionWatcher
from himalia.scenarios.runs import RunService
from himalia.scenarios.scheduler import Scheduler
from himalia.scenarios.service import ScenarioService
from himalia.scenarios.uptime import UptimeLog
from himalia.scenarios.workers import this_worker
from himalia.store.db import Database
from himalia.store.events import Events
from himalia.store.orm import utcnow
from himalia.wire.definitions import input_context

R = TypeVar("R")
#: The lab URL's query parameter naming the run to open (``KEY/scenario/run``), read by the lab extension.
RUN_LINK_PARAMETER = "himalia-run"


def _proxy_networks(addresses: list[str]) -> list[str]:
    """``addresses`` if each is an IP address or network, else ``InvalidInput`` naming the first that is not."""
    for address in addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise InvalidInput(
                f"trusted_proxies: '{address}' is not an address or a network such as 10.0.0.0/8",
                field="trusted_proxies",
            ) from None
    return addresses


class ControlPlane(LoggingConfigurable):
    home = Unicode(
        config=True,
        help="""Data folder of the embedded defaults: the SQLite database and, unless keys are
        configured otherwise, the files holding the secret and audit keys.
        Defaults to $HIMALIA_HOME, else `himalia` in Jupyter's data directory.""",
    )

    _default_home = environment_default("home", HOME_VARIABLE, lambda _: default_home(), absolute_path)

    @validate("home")
    def _absolute_home(self, proposal: Bunch) -> str:
        """Paths derived from home (the SQLite file, demo connections) must not depend on the cwd."""
        return absolute_path(proposal["value"])

    db_url = Unicode(
        config=True,
        help="""SQLAlchemy URL of the store, e.g. `postgresql+psycopg://himalia@db/himalia`.
        Defaults to $HIMALIA_DB_URL, else a SQLite file in `home`.""",
    )

    _default_db_url = environment_default("db_url", DB_URL_VARIABLE, lambda plane: default_db_url(plane.home))

    secret_keys = List(
        Unicode(),
        config=True,
        help="""Fernet keys encrypting connection secrets; the first encrypts, all decrypt.
        To rotate: put a new key first, restart, run `himalia secrets rotate`, then drop the old key.
        Defaults to $HIMALIA_SECRET_KEYS (comma-separated), else `secret.key` in `home`
        (created with a fresh key, mode 0600). Never stored in the database.""",
    )

    _default_secret_keys = environment_default(
        "secret_keys",
        "HIMALIA_SECRET_KEYS",
        lambda plane: load_or_create_key_file(Path(plane.home) / "secret.key"),
        comma_separated,
    )

    audit_key = Unicode(
        config=True,
        help="""Key of the audit trail's HMAC chain. Without it nobody can forge a consistent
        chain, so keep it out of the database. Defaults to $HIMALIA_AUDIT_KEY, else `audit.key`
        in `home` (created on first start, mode 0600).""",
    )

    def _audit_key_file(self) -> str:
        """The key in ``audit.key`` in the home, created on first start (mode 0600)."""
        path = Path(self.home) / "audit.key"
        ensure_private_folder(path.parent)
        if not create_private_file(path, secrets.token_hex(32) + "\n"):
            restrict_to_owner(path)
        return path.read_text().strip()

    _default_audit_key = environment_default("audit_key", "HIMALIA_AUDIT_KEY", _audit_key_file)

    audit_head_file = Unicode(
        config=True,
        help="""File holding the audit chain's head (its last entry, sealed with the audit key)
        outside the database, rewritten after each audited commit: with it `himalia audit verify`
        catches the deletion of the newest entries even when the head row in the database was
        moved back with them. Keep it where the database's administrators cannot write. Defaults
        to $HIMALIA_AUDIT_HEAD, else `audit.head` in `home` (mode 0600); empty turns it off.
        After restoring the store from a backup, remove the file: until then verify reports the
        entries the restore lost.""",
    )

    _default_audit_head_file = environment_default(
        "audit_head_file",
        "HIMALIA_AUDIT_HEAD",
        lambda plane: str(Path(plane.home) / "audit.head"),
        lambda value: absolute_path(value) if value.strip() else "",
    )

    bundle_signing_key = Unicode(
        config=True,
        help="""Ed25519 private key (PEM) signing the bundles this instance creates; importing
        instances trust its public key (`himalia bundle key` prints it). Defaults to
        $HIMALIA_BUNDLE_SIGNING_KEY, else `bundle-signing.key` in `home` (created on first use,
        mode 0600). Never stored in the database.""",
    )

    _default_bundle_signing_key = environment_default("bundle_signing_key", "HIMALIA_BUNDLE_SIGNING_KEY", "")

    trusted_bundle_keys = List(
        Unicode(),
        config=True,
        help="""Public keys whose bundles this instance imports, as `NAME=ed25519:<base64>`,
        beside those trusted in the store (`himalia bundle trust NAME KEY`). The instance's own
        key is always trusted.""",
    )

    _bundle_key: Ed25519PrivateKey | None = None

    def _signing_key(self) -> Ed25519PrivateKey:
        """The configured bundle signing key, else the home's key file, created on first use."""
        if self._bundle_key is None:
            if self.bundle_signing_key.strip():
                self._bundle_key = signing_key_from_pem(self.bundle_signing_key, "ControlPlane.bundle_signing_key")
            else:
                self._bundle_key = load_or_create_signing_key(Path(self.home) / "bundle-signing.key")
        return self._bundle_key

    def _trusted_bundle_keys(self) -> dict[str, str]:
        """``trusted_bundle_keys`` by name, or ``InvalidInput`` naming an entry without one."""
        keys = {}
        for entry in self.trusted_bundle_keys:
            name, separator, key = entry.partition("=")
            if not separator or not name.strip():
                raise InvalidInput(
                    f"trusted_bundle_keys: '{entry[:40]}' is not NAME=ed25519:<base64>", field="trusted_bundle_keys"
                )
            keys[name.strip()] = key.strip()
        return keys

    create_empty_database = Bool(
        True,
        config=True,
        help="""Create the schema when the database has no tables. An existing database at an
        older revision is never upgraded implicitly: run `himalia db upgrade`.""",
    )

    worker_threads = Int(
        8,
        config=True,
        help="""Threads running service calls for the web hosts, so that database work never
        blocks the event loop. Also bounds the concurrent connections to the store.""",
    )

    notebook_root = Unicode(
        config=True,
        help="""Folder in which a scenario's notebook paths are read when a save does not carry the
        notebooks' content, and its project files beside them. The server extension sets it to the
        Jupyter server's root directory, whose files are its user's own. Empty (the default of
        `himalia serve` and of the hub's service) reads no folder: a save must carry its
        notebooks, and the service never snapshots files of its own disk for a caller.""",
    )

    max_concurrent_runs = Int(4, config=True, help="Scenario runs this process executes at once.")
    max_concurrent_runs_per_user = Int(2, config=True, help="Runs of one run-as user executing at once.")
    max_queued_runs = Int(
        100,
        config=True,
        help="""Runs waiting for a slot. Beyond it a manual run is refused (429) and an automatic one
        is recorded as skipped.""",
    )
    run_scenarios = Bool(
        True,
        config=True,
        help="""Run the scheduler and the run engine in this process. Turn off in processes that
        should only serve the API.""",
    )
    executor_class = Type(
        default_value="himalia.execution.local.LocalExecutor",
        klass="himalia.execution.base.Executor",
        config=True,
        help="""Where notebook steps run: `himalia.execution.local.LocalExecutor`, worker processes
        on this machine (`c.LocalExecutor.*`, as whose OS account: `c.UserIsolation.*`), or
        `himalia.execution.kubernetes.executor.KubernetesExecutor`, one Job per step sized by the
        scenario's tier (needs the `kubernetes` extra; `c.KubernetesExecutor.*`). Defaults to
        $HIMALIA_EXECUTOR_CLASS, else the local executor.""",
    )

    _default_executor_class = environment_default(
        "executor_class", "HIMALIA_EXECUTOR_CLASS", "himalia.execution.local.LocalExecutor"
    )

    remote_protocols = List(
        Unicode(),
        list(DEFAULT_REMOTE_PROTOCOLS),
        config=True,
        help="""fsspec protocols that `files` connections may use with `create_connections` alone:
        remote stores, never this machine. Every other protocol reads local disk or memory (and
        needs `write_unsafe_code`: `file`, `local`, `memory`) or wraps another filesystem (refused).""",
    )
    allowed_data_destinations = List(
        Unicode(),
        config=True,
        help="""Networks and host names that `files` connections may reach although they are not
        public (an internal object store, `10.20.0.0/16`, `minio.corp.example`, `*.corp.example`).
        Without an entry, a files URL's host and any `endpoint_url` that resolve to loopback,
        private, link-local or cloud metadata addresses are refused, at creation and at every use.""",
    )

    webhook_signing_key = Unicode(
        config=True,
        help="""Key signing generic JSON webhooks (HMAC-SHA256 of timestamp.body). Defaults to
        $HIMALIA_WEBHOOK_KEY; empty means unsigned.""",
    )

    _default_webhook_signing_key = environment_default("webhook_signing_key", "HIMALIA_WEBHOOK_KEY", "")

    min_schedule_interval = Float(
        60.0,
        min=0.0,
        config=True,
        help="""Seconds that must at least separate two fires of a time trigger, or two polls of a
        dataset-change or SQL-condition trigger. Saving a scenario whose schedule is closer is
        refused (400, naming the trigger); the scheduler also holds back any trigger that would
        fire sooner. Cron expressions have five fields, so nothing fires closer than a minute.""",
    )

    trusted_proxies = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="""Addresses or networks (`10.0.0.0/8`) of the reverse proxies in front of `himalia serve`.
        Only a request arriving from one of them has its client address taken from
        `X-Forwarded-For` (the nearest address that is not itself a trusted proxy) or `X-Real-IP`;
        from anyone else those headers are ignored, so nobody can write another address into
        the audit trail. Defaults to $HIMALIA_TRUSTED_PROXIES (comma-separated), else none; in
        hub mode, else loopback (the hub's proxy). Under Jupyter, `ServerApp.trust_xheaders` decides.""",
    )

    _default_trusted_proxies = environment_default(
        "trusted_proxies", "HIMALIA_TRUSTED_PROXIES", None, lambda value: _proxy_networks(comma_separated(value))
    )

    @validate("trusted_proxies")
    def _valid_trusted_proxies(self, proposal: Bunch) -> list[str] | None:
        return None if proposal["value"] is None else _proxy_networks(proposal["value"])

    failing_rows_sample = Int(
        10,
        min=0,
        max=1000,
        config=True,
        help="""How many of the rows that break a row condition a failed check on it keeps, to show to
        readers of the project's content (each cell cut at 200 characters). 0 keeps none.""",
    )
    token_reuse_seconds = Float(
        2.0,
        min=0.0,
        config=True,
        help="""How long the caller a token stands for is reused without reading the store again.
        A write this control plane commits (revoking a token, deactivating a person, changing a
        group) ends every reuse at once; what another control plane on the same store changes is
        seen within this time. 0 reads the store on every request.""",
    )

    max_request_body_bytes = Int(
        64 * 1024 * 1024,
        min=1,
        config=True,
        help="""The largest JSON request body the API parses (400 beyond it). Executed notebooks
        that Kubernetes step pods report come in these bodies, base64-encoded.""",
    )

    currency = Unicode(
        config=True,
        help="""The currency of the tiers' `cost_per_hour` (an ISO 4217 code such as `EUR`), shown
        with every amount: the spawn form, tiers, usage. Defaults to $HIMALIA_CURRENCY, else `USD`.""",
    )

    _default_currency = environment_default("currency", "HIMALIA_CURRENCY", "USD")

    @validate("currency")
    def _valid_currency(self, proposal: Bunch) -> str:
        currency = str(proposal["value"]).strip()
        if not currency.isalpha() or len(currency) > 8:
            raise InvalidInput(
                f"currency: '{currency}' is not a currency code (letters, such as USD).", field="currency"
            )
        return currency.upper()

    public_url = Unicode(
        config=True,
        help="""Where people open the UI, which the links of emails and webhooks start from: the
        hub's public URL in hub mode (`https://hub.example.com/`, the run opens in the person's
        own lab after the hub's login), the Jupyter server's URL standalone. Defaults to
        $HIMALIA_PUBLIC_URL, else what the host knows (the hub's $JUPYTERHUB_PUBLIC_HUB_URL, the
        lab server's own URL); without one, reports carry no link.""",
    )

    _default_public_url = environment_default("public_url", "HIMALIA_PUBLIC_URL", "")

    #: The path below ``public_url`` of the lab that opens a run; the hub host routes it through
    #: the hub (``hub/user-redirect/lab``), which logs people in and sends them to their server.
    lab_path = "lab"

    def run_link(self, project_key: str, scenario_slug: str, run_id: int) -> str | None:
        """The address of a run's page in the UI (``…/lab?himalia-run=KEY/scenario/7``), if people have one."""
        if not self.public_url:
            return None
        run = urlencode({RUN_LINK_PARAMETER: f"{project_key}/{scenario_slug}/{run_id}"}, safe="/")
        return f"{self.public_url.rstrip('/')}/{self.lab_path}?{run}"

    def validation_context(self) -> dict[str, Any]:
        """The pydantic context of what people send, under this configuration's rules."""
        return input_context(timedelta(seconds=self.min_schedule_interval))

    #: Where run kernels reach the API (``…/himalia/api/v1``); set by the host that serves it.
    api_url: str | None = None

    def start(self) -> None:
        """Open the store, check its revision and build the services.

        The home is made private (0700) first; a home this process cannot write is refused in
        one sentence (``HomeUnusable``) rather than by the error of the first file it touches.
        """
        with home_problems_reported(self.home, self.db_url):
            require_writable_home(Path(self.home))
            self.db = Database(self.db_url)
            if self.create_empty_database and self.db.is_empty():
                self.log.info("Creating the Himalia schema in %s", self.db.engine.url)
                self.db.upgrade()
            self.db.check_revision()
            head_file = Path(self.audit_head_file) if self.audit_head_file else None
            trail = AuditTrail(self.audit_key.encode(), head_file, self.log)
            box = SecretBox(self.secret_keys)
            with self.db.write() as session:
                trail.open_head(session)
        self.users = UserService(self.db, trail, self.log)
        self.events = Events(self.log)
        self.projects = ProjectService(self.db, trail, self.log, self.events)
        policy = DataAccessPolicy.for_control_plane(
            self.home, self.db_url, self.remote_protocols, self.allowed_data_destinations, [self.audit_head_file]
        )
        self.connections = ConnectionService(self.db, trail, self.log, box, policy)
        self.variables = VariableService(self.db, trail, self.log)
        self.tokens = TokenService(self.db, trail, self.log, self.token_reuse_seconds)
        self.tiers = TierService(self.db, trail, self.log, self.currency)
        self.usage = UsageService(self.db, trail, self.log, self.currency)
        self.budgets = BudgetService(self.db, trail, self.log, self.currency)
        self.audit = AuditService(self.db, trail, self.log)
        self.datasets = DatasetService(self.db, trail, self.log, self.connections)
        self.metrics = MetricService(self.db, trail, self.log, self.datasets)
        self.retention = RetentionService(self.db, trail, self.log, Retention(parent=self))
        self.checks = CheckService(self.db, trail, self.log, self.datasets, self.metrics, self.failing_rows_sample)
        self.exports = ExportService(
            self.db, trail, self.log, self.connections, self.datasets, self.metrics, self.checks
        )
        self.reading = DatasetReader(
            self.db, trail, self.log, self.datasets, self.connections, DatasetReading(parent=self)
        )
        self.scenarios = ScenarioService(
            self.db,
            trail,
            self.log,
            lambda: self.notebook_root,
            self.events,
            # Other runs' job folders hold their notebooks and files: never snapshotted either.
            ProjectFiles(parent=self, protected=(*policy.protected, self._job_root())),
            self.validation_context,
        )
        self.runs = RunService(self.db, trail, self.log, self._run_limits, self.tiers, self.events)
        self.board = BoardService(self.db, self.log)
        self.mailer = Mailer(parent=self)
        self.webhooks = WebhookSettings(parent=self)
        self.executor = ThreadPoolExecutor(self.worker_threads, thread_name_prefix="himalia")
        self.bundles = BundleService(
            self.db,
            trail,
            self.log,
            self._signing_key,
            self._trusted_bundle_keys,
            self.events,
            self.validation_context,
            self.scenarios.project_files,
        )
        self.engine: RunEngine | None = None
        self.scheduler: Scheduler | None = None
        self.health = HealthService(self, parent=self)

    async def call(self, verb: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a service verb in the worker pool: the store is synchronous and must not block the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(verb, *args, **kwargs))

    def _job_root(self) -> str:
        return str(UserIsolation(parent=self, home=self.home).job_root)

    def _run_limits(self) -> RunLimits:
        return RunLimits(self.max_concurrent_runs, self.max_concurrent_runs_per_user, self.max_queued_runs)

    def start_engine(self, *, schedule: bool = True, only: set[int] | None = None) -> RunEngine:
        """Start executing runs here (and firing triggers, if ``schedule``), steps on ``executor_class``."""
        executor = self.executor_class(
            parent=self,
            work_root=Path(self.home) / "work",
            isolation=UserIsolation(parent=self, home=self.home),
            tier_for=self.tiers.tier_named,
            served_api_url=self.api_url or "",
            project_file=partial(read_project_file, self.db),
        )
        self.engine = RunEngine(
            self.runs,
            executor,
            StepServices(self.metrics, self.checks, self.variables, self.connections, self.datasets),
            self.events,
            report=lambda reporters, summary: report_all(
                reporters, summary, self.mailer, self.webhook_signing_key, webhooks=self.webhooks
            ),
            api_url=lambda: self.api_url,
            run_link=self.run_link,
            failure_notice=lambda summary: failure_notice(summary, self.mailer),
            log=self.log,
            only=only,
        )
        if schedule:
            self.scheduler = self.new_scheduler()
            self.scheduler.watchers.append(self.new_budget_watcher())
            self.scheduler.watchers.append(RetentionWatcher(self.retention))
            self.scheduler.start()
        self.engine.start()
        return self.engine

    def new_scheduler(self, now: Callable[[], datetime] = utcnow) -> Scheduler:
        """A scheduler over this plane's services (``now`` is the clock tests and benchmarks move)."""
        scheduler = Scheduler(
            self.runs,
            self.events,
            self.datasets,
            self.connections,
            min_interval=timedelta(seconds=self.min_schedule_interval),
            log=self.log,
            now=now,
            uptime=UptimeLog(self.db, this_worker()),
        )
        channels = AlertChannels(self.mailer, self.webhook_signing_key, self.webhooks, self.run_link)
        deadlines = DeadlineWatcher(self.db, self.runs.audit, self.log, scheduler, channels)
        scheduler.watchers.append(deadlines)
        scheduler.missed = deadlines
        return scheduler

    def new_budget_watcher(self) -> BudgetWatcher:
        """The budget alerts, watched by the scheduler that ``start_engine`` starts."""
        return BudgetWatcher(self.db, self.budgets.audit, self.log, self.budgets, self.mailer)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.engine is not None:
            self.engine.stop()
        self.executor.shutdown(wait=True)
        self.health.close()
        self.db.dispose()
