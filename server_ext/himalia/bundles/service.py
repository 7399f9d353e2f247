"""Creating, importing, comparing and activating bundles: a project promoted from design to production.

Permissions: creating and downloading a bundle need ``admin`` on the project (a bundle holds all
its code and definitions). Previewing, importing and activating need ``admin`` on the target
project, or, when this instance has no such project yet, the global ``create_projects``
(activation then creates it, owned by whoever activates). Listing needs ``read_content``.
Trusting a signing key needs a global administrator. The importer must also hold what saving the
same definitions would need: a usable connection for each dataset and SQL step,
``write_isolated_code`` for notebooks, ``write_unsafe_code`` for Python checks, metrics and
``set_variables`` code, and the tiers its scenarios name.

Activation replaces the project's definitions with the bundle's in ONE transaction: every check
runs inside it before anything is written, so a refusal leaves the project exactly as it was.
Datasets, checks and scenarios absent from the bundle are removed (with their history); the
project's variables become the bundle's; its group grants too when the bundle carries them.
Every version stays stored, so activating an earlier one rolls back; a stored version is verified
again when activated, so one whose signing key is no longer trusted is refused. Every step is
audited.
"""

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from himalia.bundles.definitions import (
    BundledCheck,
    BundleDefinitions,
    BundledScenario,
)
from himalia.bundles.format import (
    BLOB_FOLDER,
    DEFINITIONS,
    BundleRefused,
    OpenedBundle,
    fingerprint,
    parse_public_key,
    public_key_text,
    read_bundle,
    sha256,
    write_bundle,
)
from himalia.bundles.project_state import (
    apply_datasets,
    apply_grants,
    apply_scenarios,
    difference,
    export_definitions,
    json_bytes,
    live_definitions,
    run_as_user,
)
from himalia.compute.tiers import admit_tier
from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.core.variables import INSTANCE_VARIABLES, resolve
from himalia.data.connections import can_use
from himalia.data.freshness import check_declaration
from himalia.data.probes import parse_probes
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import AuditRecorder, Service
from himalia.scenarios.files import ProjectFiles
from himalia.scenarios.service import code_permissions
from himalia.scenarios.snapshots import canonical
from himalia.store.db import Database
from himalia.store.events import Events, ScenarioChanged
from himalia.store.orm import (
    Bundle,
    BundleActivation,
    Connection,
    Group,
    InstanceSetting,
    Project,
    ProjectGrant,
    TrustedSigningKey,
    User,
    utcnow,
)
from himalia.wire.bundles import BundleChange, BundlePreview, DescribeBundle, DescribeTrustedKey, SigningKey, TrustKey
from himalia.wire.data import CheckSpec
from himalia.wire.definitions import (
    AfterScenarioTrigger,
    ComputeMetricsStep,
    DatasetChangeTrigger,
    NotebookStep,
    RunChecksStep,
    RunScenarioStep,
    ScenarioDefinition,
    SqlConditionTrigger,
    SqlStep,
)
from himalia.wire.steps import project_path_problem

#: The name this instance's own key is trusted under: it always imports its own bundles.
THIS_INSTANCE = "this instance"


def _refusal(where: str, error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    field = ".".join([where, *(str(part) for part in first["loc"])])
    return InvalidInput(f"{field}: {first['msg']}", field=field)


def decode_content(text: str) -> bytes:
    """A bundle file sent base64-encoded in a JSON body."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("content: not base64 (send the bundle file base64-encoded).", field="content") from None


class BundleService(Service):
    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        log: Any,
        signing_key: Callable[[], Ed25519PrivateKey],
        configured_keys: Callable[[], dict[str, str]],
        events: Events,
        validation_context: Callable[[], dict[str, Any]],
        project_files: ProjectFiles,
    ) -> None:
        super().__init__(db, audit, log)
        self.signing_key = signing_key
        #: Trusted keys from the configuration: name -> public key text.
        self.configured_keys = configured_keys
        self.events = events
        self.validation_context = validation_context
        #: The limits a scenario's project files must keep here, as when saving.
        self.project_files = project_files

    # -- keys -----------------------------------------------------------------------------------

    def public_key(self) -> SigningKey:
        """This instance's public signing key: what a production instance trusts."""
        text = public_key_text(self.signing_key())
        return SigningKey(public_key=text, fingerprint=fingerprint(text))

    def list_trusted_keys(self, caller: Caller) -> list[DescribeTrustedKey]:
        caller.require(GlobalPermission.ADMIN)
        own = self.public_key().public_key
        keys = [DescribeTrustedKey(name=THIS_INSTANCE, public_key=own, fingerprint=fingerprint(own), source="instance")]
        keys += [
            DescribeTrustedKey(name=name, public_key=text, fingerprint=fingerprint(text), source="config")
            for name, text in sorted(self.configured_keys().items())
        ]
        with self.db.read() as session:
            rows = session.scalars(select(TrustedSigningKey).order_by(TrustedSigningKey.name)).all()
            keys += [
                DescribeTrustedKey(
                    name=r.name,
                    public_key=r.public_key,
                    fingerprint=fingerprint(r.public_key),
                    source="store",
                    added_by=r.added_by,
                    created_at=r.created_at,
                )
                for r in rows
            ]
        return keys

    def trust_key(self, caller: Caller, spec: TrustKey) -> DescribeTrustedKey:
        """Import bundles signed by this key from now on (administrators)."""
        caller.require(GlobalPermission.ADMIN)
        text = public_key_text(parse_public_key(spec.public_key))
        with self.db.write() as session:
            if session.scalar(select(TrustedSigningKey.id).where(TrustedSigningKey.name == spec.name)):
                raise Conflict(f"A trusted key is already named '{spec.name}'.", field="name")
            if session.scalar(select(TrustedSigningKey.id).where(TrustedSigningKey.public_key == text)):
                raise Conflict("This key is already trusted.", field="public_key")
            row = TrustedSigningKey(name=spec.name, public_key=text, added_by=caller.login)
            session.add(row)
            session.flush()
            self.audit.record(
                session,
                caller,
                "bundle.trust_key",
                "signing_key",
                spec.name,
                details={"fingerprint": fingerprint(text)},
            )
            return DescribeTrustedKey(
                name=row.name,
                public_key=text,
                fingerprint=fingerprint(text),
                source="store",
                added_by=row.added_by,
                created_at=row.created_at,
            )

    def untrust_key(self, caller: Caller, name: str) -> None:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            row = session.scalar(select(TrustedSigningKey).where(TrustedSigningKey.name == name))
            if row is None:
                raise NotFound(f"No trusted key is named '{name}'.")
            session.delete(row)
            self.audit.record(session, caller, "bundle.untrust_key", "signing_key", name)

    def _trusted(self, session: Session) -> dict[str, str]:
        """Public key text -> the name it is trusted under."""
        trusted = {
            public_key_text(parse_public_key(t, "trusted_bundle_keys")): n for n, t in self.configured_keys().items()
        }
        trusted.update({r.public_key: r.name for r in session.scalars(select(TrustedSigningKey))})
        trusted[self.public_key().public_key] = THIS_INSTANCE
        return trusted

    # -- reading --------------------------------------------------------------------------------

    def list_bundles(self, caller: Caller, key: str) -> list[DescribeBundle]:
        with self.db.read() as session:
            self._require(session, caller, key, ProjectPermission.READ_CONTENT, GlobalPermission.ADMIN)
            rows = session.scalars(select(Bundle).where(Bundle.project_key == key).order_by(Bundle.version)).all()
            active = self._active_id(session, key)
            return [describe_bundle(r, r.id == active) for r in rows]

    def download(self, caller: Caller, key: str, version: int) -> tuple[str, bytes]:
        """The bundle file and its name; audited, as it carries the project's code."""
        with self.db.write() as session:
            self._require(session, caller, key, ProjectPermission.ADMIN, GlobalPermission.ADMIN)
            row = self._find(session, key, version)
            self.audit.record(session, caller, "bundle.download", "bundle", f"{key}/v{version}", project_key=key)
            return f"{key}-v{version}.himalia-bundle", row.content

    # -- creating -------------------------------------------------------------------------------

    def create_bundle(self, caller: Caller, key: str, note: str = "", with_grants: bool = False) -> DescribeBundle:
        """Record the project's definitions now as its next version, signed with this instance's key."""
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.ADMIN)
            definitions, blobs = export_definitions(session, project, with_grants)
            version = (session.scalar(select(func.max(Bundle.version)).where(Bundle.project_key == key)) or 0) + 1
            members = {DEFINITIONS: json_bytes(definitions.model_dump(mode="json")), **blobs}
            content, manifest = write_bundle(
                self.signing_key(),
                project=key,
                version=version,
                note=note,
                created_by=caller.login,
                created_at=utcnow(),
                counts=(len(definitions.datasets), len(definitions.scenarios)),
                members=members,
            )
            row = Bundle(
                project_key=key,
                version=version,
                digest=sha256(content),
                note=note,
                origin="created",
                signer=THIS_INSTANCE,
                created_by=caller.login,
                created_at=manifest.created_at,
                connection_map={},
                manifest=manifest.model_dump(mode="json"),
                content=content,
            )
            session.add(row)
            session.flush()
            self.audit.record(
                session,
                caller,
                "bundle.create",
                "bundle",
                f"{key}/v{version}",
                project_key=key,
                details={
                    "digest": row.digest,
                    "note": note,
                    "with_grants": with_grants,
                    "datasets": len(definitions.datasets),
                    "scenarios": len(definitions.scenarios),
                },
            )
            return describe_bundle(row, self._active_id(session, key) == row.id)

    # -- importing and activating ---------------------------------------------------------------

    def preview(self, caller: Caller, key: str, content: bytes, mapping: dict[str, str]) -> BundlePreview:
        """Validate a bundle as activating it would, and say what it would change; nothing is stored."""
        with self.db.write() as session:  # written only for the audit entry
            project = self._require_importer(session, caller, key)
            opened = self._open(session, key, content)
            definitions = self._validate(session, caller, opened, mapping)
            changes = difference(live_definitions(session, project), definitions)
            row = self._stored(session, key, opened.manifest.version)
            self.audit.record(
                session,
                caller,
                "bundle.preview",
                "bundle",
                f"{key}/v{opened.manifest.version}",
                project_key=key,
                details={"digest": sha256(content), "changes": len(changes), "signer": opened.signer_name},
            )
            described = _describe_opened(opened, content, mapping)
            return BundlePreview(
                bundle=described,
                project_exists=project is not None,
                changes=changes,
                stored=row is not None,
                activated=False,
            )

    def import_bundle(
        self, caller: Caller, key: str, content: bytes, mapping: dict[str, str], activate: bool = False
    ) -> BundlePreview:
        """Store a verified bundle (once per version) and, with ``activate``, make it live, all in one transaction."""
        with self.db.write() as session:
            project = self._require_importer(session, caller, key)
            opened = self._open(session, key, content)
            definitions = self._validate(session, caller, opened, mapping)
            changes = difference(live_definitions(session, project), definitions)
            row = self._stored(session, key, opened.manifest.version)
            if row is not None and row.digest != sha256(content):
                raise Conflict(
                    f"Version {opened.manifest.version} of {key} is already stored here with other content.",
                    field="content",
                )
            if row is None:
                row = Bundle(
                    project_key=key,
                    version=opened.manifest.version,
                    digest=sha256(content),
                    note=opened.manifest.note,
                    origin="imported",
                    signer=opened.signer_name,
                    created_by=opened.manifest.created_by,
                    created_at=opened.manifest.created_at,
                    connection_map=dict(mapping),
                    manifest=opened.manifest.model_dump(mode="json"),
                    content=content,
                )
                session.add(row)
                session.flush()
                self.audit.record(
                    session,
                    caller,
                    "bundle.import",
                    "bundle",
                    f"{key}/v{row.version}",
                    project_key=key,
                    details={"digest": row.digest, "signer": row.signer, "connection_map": row.connection_map},
                )
            elif mapping:
                row.connection_map = dict(mapping)
            changed: list[int] = []
            if activate:
                changed = self._activate(session, caller, key, row, opened, definitions, changes)
            described = describe_bundle(row, self._active_id(session, key) == row.id)
        self._publish(changed)
        return BundlePreview(
            bundle=described, project_exists=project is not None, changes=changes, stored=True, activated=activate
        )

    def activate(self, caller: Caller, key: str, version: int, mapping: dict[str, str] | None = None) -> BundlePreview:
        """Make a stored version live again (a rollback, or a version imported without ``--activate``)."""
        with self.db.write() as session:
            project = self._require_importer(session, caller, key)
            if project is None and not caller.is_admin:
                # Versions stored without a live project (imported, never activated) are not theirs
                # to revive: whoever may create projects imports the file again, with --activate.
                raise NotFound(f"There is no project '{key}'.")
            row = self._find(session, key, version)
            opened = read_bundle(row.content, self._trusted(session))
            if mapping is not None:
                row.connection_map = dict(mapping)
            definitions = self._validate(session, caller, opened, dict(row.connection_map))
            changes = difference(live_definitions(session, project), definitions)
            changed = self._activate(session, caller, key, row, opened, definitions, changes)
            described = describe_bundle(row, True)
        self._publish(changed)
        return BundlePreview(
            bundle=described, project_exists=project is not None, changes=changes, stored=True, activated=True
        )

    def _publish(self, scenario_ids: list[int]) -> None:
        for row_id in scenario_ids:
            self.events.publish(ScenarioChanged(row_id))

    # -- permissions and lookups ----------------------------------------------------------------

    @staticmethod
    def _require(
        session: Session, caller: Caller, key: str, permission: ProjectPermission, without_project: GlobalPermission
    ) -> Project | None:
        """The project if the caller holds ``permission`` on it; when it does not exist here,
        ``None`` for a caller with ``without_project``, else the same 404 as an invisible project."""
        if session.scalar(select(Project.id).where(Project.key == key)) is None:
            if caller.has(without_project):
                return None
            raise NotFound(f"There is no project '{key}'.")
        return require_project(session, caller, key, permission)[0]

    def _require_importer(self, session: Session, caller: Caller, key: str) -> Project | None:
        project = self._require(session, caller, key, ProjectPermission.ADMIN, GlobalPermission.CREATE_PROJECTS)
        if caller.user_id is None:
            raise Forbidden("Importing makes you the author of its scenarios: act as a user (--as LOGIN).")
        return project

    @staticmethod
    def _stored(session: Session, key: str, version: int) -> Bundle | None:
        return session.scalar(select(Bundle).where(Bundle.project_key == key, Bundle.version == version))

    def _find(self, session: Session, key: str, version: int) -> Bundle:
        row = self._stored(session, key, version)
        if row is None:
            raise NotFound(f"There is no version {version} of the bundles of {key}.")
        return row

    @staticmethod
    def _active_id(session: Session, key: str) -> int | None:
        return session.scalar(
            select(BundleActivation.bundle_id)
            .where(BundleActivation.project_key == key)
            .order_by(BundleActivation.id.desc())
            .limit(1)
        )

    def _open(self, session: Session, key: str, content: bytes) -> OpenedBundle:
        opened = read_bundle(content, self._trusted(session))
        if opened.manifest.project != key:
            raise InvalidInput(
                f"project: this bundle is of project {opened.manifest.project}, not {key}.", field="project"
            )
        return opened

    # -- validation -----------------------------------------------------------------------------

    def _validate(
        self, session: Session, caller: Caller, opened: OpenedBundle, mapping: dict[str, str]
    ) -> BundleDefinitions:
        """The bundle's definitions with connections mapped, once everything activation needs holds."""
        try:
            plain = json.loads(opened.members[DEFINITIONS])
            bundled = BundleDefinitions.model_validate(plain)
        except ValidationError as error:
            raise _refusal(DEFINITIONS, error) from None
        except ValueError:
            raise BundleRefused(f"{DEFINITIONS}: not valid JSON.", field=DEFINITIONS) from None
        if bundled.project.key != opened.manifest.project:
            raise BundleRefused(f"{DEFINITIONS}: describes project {bundled.project.key}.", field=DEFINITIONS)
        named = bundled.connection_names()
        for old in mapping:
            if old not in named:
                known = ", ".join(sorted(named)) or "none"
                raise InvalidInput(
                    f"map_connections: the bundle names no connection '{old}' (it names: {known}).",
                    field="map_connections",
                )
        definitions = bundled.with_connections(mapping)
        connections = {c.name: c for c in session.scalars(select(Connection))}

        def usable(name: str, field: str) -> Connection:
            connection = connections.get(name)
            if connection is None or not can_use(caller, connection):
                reason = "there is no connection" if connection is None else "you may not use the connection"
                raise InvalidInput(
                    f"{field}: {reason} '{name}' here (map it with --map-connection {name}=OTHER).", field=field
                )
            return connection

        for index, dataset in enumerate(definitions.datasets):
            where = f"datasets[{index}]"
            connection = usable(dataset.connection, f"{where}.connection")
            if (dataset.kind == "files") != (connection.type == "files"):
                raise InvalidInput(
                    f"{where}.connection: '{connection.name}' is a {connection.type} connection, which holds no "
                    f"{dataset.kind} datasets.",
                    field=f"{where}.connection",
                )
            try:
                parse_probes(dataset.probes)
            except InvalidInput as error:
                raise InvalidInput(f"{where}.probes: {error.message}", field=f"{where}.probes") from None
            if any("python" in metric for metric in dataset.custom_metrics):
                self._needs(caller, GlobalPermission.WRITE_UNSAFE_CODE, f"{where}.custom_metrics")
            if dataset.freshness is not None:
                check_declaration(dataset.freshness, dataset.kind, dataset.columns, field=f"{where}.freshness")
            for position, check in enumerate(dataset.checks):
                self._validate_check(caller, check, f"{where}.checks[{position}]")
        datasets = {d.name for d in definitions.datasets}
        scenarios = {s.id for s in definitions.scenarios}
        author = session.get_one(User, caller.user_id)
        for index, scenario in enumerate(definitions.scenarios):
            where = f"scenarios[{index}]"
            try:
                definition = ScenarioDefinition.model_validate(scenario.definition, context=self.validation_context())
            except ValidationError as error:
                raise _refusal(f"{where}.definition", error) from None
            for permission in code_permissions(definition):
                self._needs(caller, permission, where)
            admit_tier(session, run_as_user(session, caller, definition, author), definition.tier)
            self._validate_notebooks(opened, scenario, definition, where)
            self._validate_files(opened, scenario, where)
            self._validate_references(definition, datasets, scenarios, where, usable)
        if definitions.grants is not None:
            groups = set(session.scalars(select(Group.name)))
            for index, grant in enumerate(definitions.grants):
                if grant.group not in groups:
                    raise InvalidInput(
                        f"grants[{index}].group: there is no group '{grant.group}' here.",
                        field=f"grants[{index}].group",
                    )
                if grant.permission not in set(ProjectPermission):
                    raise InvalidInput(
                        f"grants[{index}].permission: '{grant.permission}' is no project permission.",
                        field=f"grants[{index}].permission",
                    )
        self._validate_variables(session, definitions.variables)
        return definitions

    @staticmethod
    def _validate_variables(session: Session, variables: dict[str, Any]) -> None:
        """Project variables may refer to instance variables, which no bundle carries: each one
        referred to must be defined here, or every run would fail at its first expansion."""
        setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
        try:
            resolve(setting.value if setting else {}, variables)
        except InvalidInput as error:
            raise InvalidInput(
                f"variables: {error.message} Instance variables are not bundled: define it on this instance "
                "first (himalia variables set).",
                field="variables",
            ) from None

    @staticmethod
    def _needs(caller: Caller, permission: GlobalPermission, where: str) -> None:
        if not caller.has(permission):
            raise Forbidden(f"{where}: importing this needs the global permission '{permission}'.", field=where)

    def _validate_check(self, caller: Caller, check: BundledCheck, where: str) -> None:
        params = {k: v for k, v in check.params.items() if k != "expected"}
        try:
            CheckSpec.model_validate({"name": check.name, "type": check.type, "metric": check.metric, **params})
        except ValidationError as error:
            raise _refusal(where, error) from None
        if check.type == "custom_python":
            self._needs(caller, GlobalPermission.WRITE_UNSAFE_CODE, where)

    @staticmethod
    def _validate_notebooks(
        opened: OpenedBundle, scenario: BundledScenario, definition: ScenarioDefinition, where: str
    ) -> None:
        if definition.id != scenario.id:
            raise InvalidInput(f"{where}.id: the definition is of '{definition.id}'.", field=f"{where}.id")
        for position, step in enumerate(definition.steps):
            if not isinstance(step, NotebookStep):
                continue
            field = f"{where}.steps[{position}].notebook"
            digest = scenario.notebooks.get(step.notebook)
            if digest is None or BLOB_FOLDER + digest not in opened.members:
                raise InvalidInput(f"{field}: the bundle holds no snapshot of {step.notebook}.", field=field)
            text = opened.blob(digest).decode("utf-8", errors="replace")
            if canonical(text, field)[0] != text:
                raise InvalidInput(f"{field}: {step.notebook} is not a canonical notebook snapshot.", field=field)

    def _validate_files(self, opened: OpenedBundle, scenario: BundledScenario, where: str) -> None:
        """Every project file is in the bundle, has a path a job may write, and the tree is within
        this instance's ``ProjectFiles`` limits, as a save here would require."""
        if scenario.files is None:
            return
        limits = self.project_files
        if len(scenario.files) > limits.max_files:
            raise InvalidInput(
                f"{where}.files: {len(scenario.files)} project files, more than {limits.max_files} "
                "(ProjectFiles.max_files).",
                field=f"{where}.files",
            )
        total = 0
        for path, digest in sorted(scenario.files.items()):
            field = f"{where}.files.{path[:200]}"
            problem = project_path_problem(path)
            if problem:
                raise InvalidInput(f"{field}: {problem}.", field=f"{where}.files")
            if BLOB_FOLDER + digest not in opened.members:
                raise InvalidInput(f"{field}: the bundle holds no content for it.", field=f"{where}.files")
            size = len(opened.blob(digest))
            total += size
            if size > limits.max_file_bytes or total > limits.max_total_bytes:
                raise InvalidInput(
                    f"{field}: the project files exceed this instance's limits "
                    f"(ProjectFiles.max_file_bytes {limits.max_file_bytes}, max_total_bytes {limits.max_total_bytes}).",
                    field=f"{where}.files",
                )

    @staticmethod
    def _validate_references(
        definition: ScenarioDefinition,
        datasets: set[str],
        scenarios: set[str],
        where: str,
        usable: Callable[[str, str], Connection],
    ) -> None:
        items: list[tuple[str, Any]] = [(f"steps[{i}]", s) for i, s in enumerate(definition.steps)]
        items += [(f"triggers[{i}]", t) for i, t in enumerate(definition.triggers)]
        for place, item in items:
            field = f"{where}.{place}"
            if (
                isinstance(item, ComputeMetricsStep | RunChecksStep | DatasetChangeTrigger)
                and item.dataset not in datasets
            ):
                raise InvalidInput(
                    f"{field}.dataset: the bundle holds no dataset '{item.dataset}'.", field=f"{field}.dataset"
                )
            if isinstance(item, SqlStep | SqlConditionTrigger):
                usable(item.connection, f"{field}.connection")
            if isinstance(item, RunScenarioStep | AfterScenarioTrigger) and item.scenario not in scenarios:
                raise InvalidInput(
                    f"{field}.scenario: the bundle holds no scenario '{item.scenario}'.", field=f"{field}.scenario"
                )

    # -- applying -------------------------------------------------------------------------------

    def _activate(
        self,
        session: Session,
        caller: Caller,
        key: str,
        row: Bundle,
        opened: OpenedBundle,
        definitions: BundleDefinitions,
        changes: list[BundleChange],
    ) -> list[int]:
        """Make ``definitions`` the project's, inside the caller's transaction; the scenario rows touched."""
        author = session.get_one(User, caller.user_id)
        project = session.scalar(select(Project).where(Project.key == key))
        if project is None:
            project = Project(
                key=key,
                name=definitions.project.name,
                description=definitions.project.description,
                tags=list(definitions.project.tags),
                owner=author,
                variables={},
            )
            session.add(project)
            session.flush()
            session.add_all(
                ProjectGrant(project_id=project.id, user_id=author.id, permission=p) for p in ProjectPermission
            )
            self.audit.record(
                session, caller, "project.create", "project", key, project_key=key, details={"from_bundle": row.version}
            )
        project.variables = dict(definitions.variables)
        apply_datasets(session, project, definitions.datasets)
        touched = apply_scenarios(
            session, caller, project, author, opened, definitions.scenarios, self.validation_context()
        )
        if definitions.grants is not None:
            apply_grants(session, project, definitions.grants)
        session.add(
            BundleActivation(
                project_key=key,
                bundle_id=row.id,
                activated_by=caller.login,
                changes=[c.model_dump() for c in changes],
            )
        )
        session.flush()
        self.audit.record(
            session,
            caller,
            "bundle.activate",
            "bundle",
            f"{key}/v{row.version}",
            project_key=key,
            details={
                "digest": row.digest,
                "connection_map": dict(row.connection_map),
                "changes": [f"{c.change} {c.kind} {c.name}" for c in changes],
            },
        )
        return touched


# -- descriptions ---------------------------------------------------------------------------------


def describe_bundle(row: Bundle, active: bool) -> DescribeBundle:
    return DescribeBundle(
        project=row.project_key,
        version=row.version,
        digest=row.digest,
        note=row.note,
        origin=row.origin,
        signer=row.signer,
        created_by=row.created_by,
        created_at=row.created_at,
        connection_map=dict(row.connection_map),
        size=len(row.content),
        datasets=row.manifest["datasets"],
        scenarios=row.manifest["scenarios"],
        active=active,
    )


def _describe_opened(opened: OpenedBundle, content: bytes, mapping: dict[str, str]) -> DescribeBundle:
    manifest = opened.manifest
    return DescribeBundle(
        project=manifest.project,
        version=manifest.version,
        digest=sha256(content),
        note=manifest.note,
        origin="imported",
        signer=opened.signer_name,
        created_by=manifest.created_by,
        created_at=manifest.created_at,
        connection_map=dict(mapping),
        size=len(content),
        datasets=manifest.datasets,
        scenarios=manifest.scenarios,
        active=False,
    )
