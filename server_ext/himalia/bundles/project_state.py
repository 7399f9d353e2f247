"""A project's definitions read out of the store, a bundle's written into it, and the two compared.

Writing happens inside the caller's transaction (``BundleService`` validates everything first), so
an activation is all or nothing.
"""

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from himalia.bundles.definitions import (
    BundledCheck,
    BundledDataset,
    BundleDefinitions,
    BundledGrant,
    BundledProject,
    BundledScenario,
)
from himalia.bundles.format import BLOB_FOLDER, OpenedBundle
from himalia.core.errors import Conflict, Forbidden
from himalia.identity.caller import Caller
from himalia.identity.users import find_user
from himalia.scenarios.files import store_tree
from himalia.scenarios.snapshots import store_snapshot
from himalia.store.orm import (
    Check,
    Connection,
    Dataset,
    FileTree,
    Group,
    NotebookSnapshot,
    Project,
    ProjectFileBlob,
    ProjectGrant,
    Scenario,
    ScenarioRun,
    User,
    utcnow,
)
from himalia.wire.bundles import BundleChange
from himalia.wire.data import FreshnessSpec, RowCondition
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import ACTIVE_STATES


def run_as_user(session: Session, caller: Caller, definition: ScenarioDefinition, author: User) -> User:
    """As when saving: a scenario runs as its author unless an administrator named someone else."""
    if definition.run_as is None or definition.run_as == author.login:
        return author
    if not caller.is_admin:
        raise Forbidden("run_as: only an administrator may make a scenario run as someone else.", field="run_as")
    return find_user(session, definition.run_as, field="run_as")


def apply_datasets(session: Session, project: Project, wanted: list[BundledDataset]) -> None:
    connections = {c.name: c for c in session.scalars(select(Connection))}
    existing = {d.name: d for d in session.scalars(select(Dataset).where(Dataset.project_id == project.id))}
    for spec in wanted:
        dataset = existing.pop(spec.name, None)
        if dataset is None:
            dataset = Dataset(project=project, name=spec.name, schema_refreshed_at=utcnow())
            session.add(dataset)
        dataset.description = spec.description
        dataset.connection = connections[spec.connection]
        dataset.kind = spec.kind
        dataset.location = dict(spec.location)
        dataset.columns = spec.columns
        dataset.probes = list(spec.probes)
        dataset.custom_metrics = list(spec.custom_metrics)
        dataset.auto_compute_after_build = spec.auto_compute_after_build
        dataset.freshness = spec.freshness.model_dump() if spec.freshness else None
        dataset.conditions = [condition.model_dump(exclude_none=True) for condition in spec.conditions]
        session.flush()
        checks = {c.name: c for c in session.scalars(select(Check).where(Check.dataset_id == dataset.id))}
        for check_spec in spec.checks:
            check = checks.pop(check_spec.name, None)
            if check is None:
                check = Check(dataset=dataset, name=check_spec.name)
                session.add(check)
            check.type, check.metric, check.params = check_spec.type, check_spec.metric, dict(check_spec.params)
        for check in checks.values():
            session.delete(check)
    for dataset in existing.values():
        session.delete(dataset)
    session.flush()


def apply_scenarios(
    session: Session,
    caller: Caller,
    project: Project,
    author: User,
    opened: OpenedBundle,
    wanted: list[BundledScenario],
    context: dict[str, Any],
) -> list[int]:
    existing = {s.slug: s for s in session.scalars(select(Scenario).where(Scenario.project_id == project.id))}
    touched = []
    for spec in wanted:
        definition = ScenarioDefinition.model_validate(spec.definition, context=context)
        digests = {}
        for path, digest in spec.notebooks.items():
            snapshot = store_snapshot(session, opened.blob(digest).decode())
            digests[path] = snapshot.digest
        files = None if spec.files is None else {path: opened.blob(d) for path, d in spec.files.items()}
        tree = store_tree(session, files).digest if files is not None else None
        run_as = run_as_user(session, caller, definition, author)  # both query (and flush) before the row is added
        scenario = existing.pop(spec.id, None)
        if scenario is None:
            scenario = Scenario(project_id=project.id, slug=spec.id, owner=author, revision=0)
            session.add(scenario)
        scenario.name = definition.name
        scenario.active = definition.active
        scenario.definition = definition.model_dump(mode="json")
        scenario.notebooks = digests
        scenario.file_tree = tree
        scenario.run_as = run_as
        scenario.updated_by = author
        scenario.revision += 1
        scenario.trigger_state = {}
        session.flush()
        touched.append(scenario.id)
    for scenario in existing.values():
        running = session.scalar(
            select(ScenarioRun.id).where(ScenarioRun.scenario_id == scenario.id, ScenarioRun.state.in_(ACTIVE_STATES))
        )
        if running is not None:
            raise Conflict(
                f"Run #{running} of '{scenario.slug}', which the bundle removes, is not finished: abort it first."
            )
        touched.append(scenario.id)
        session.delete(scenario)
    session.flush()
    return touched


def apply_grants(session: Session, project: Project, grants: list[BundledGrant]) -> None:
    for grant in session.scalars(
        select(ProjectGrant).where(ProjectGrant.project_id == project.id, ProjectGrant.group_id.is_not(None))
    ):
        session.delete(grant)
    session.flush()
    groups = {g.name: g.id for g in session.scalars(select(Group))}
    for permission in sorted({(g.group, g.permission) for g in grants}):
        session.add(ProjectGrant(project_id=project.id, group_id=groups[permission[0]], permission=permission[1]))


# -- exporting and comparing ----------------------------------------------------------------------


def export_definitions(
    session: Session, project: Project, with_grants: bool
) -> tuple[BundleDefinitions, dict[str, bytes]]:
    """The project's definitions as a bundle holds them, and the blobs they refer to."""
    blobs: dict[str, bytes] = {}
    datasets = []
    for dataset in session.scalars(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.name)):
        checks = session.scalars(select(Check).where(Check.dataset_id == dataset.id).order_by(Check.name))
        datasets.append(
            BundledDataset(
                name=dataset.name,
                description=dataset.description,
                connection=dataset.connection.name,
                kind=dataset.kind,
                location=dict(dataset.location),
                columns=dataset.columns,
                probes=list(dataset.probes),
                custom_metrics=list(dataset.custom_metrics),
                auto_compute_after_build=dataset.auto_compute_after_build,
                freshness=FreshnessSpec.model_validate(dataset.freshness) if dataset.freshness else None,
                conditions=[RowCondition.model_validate(condition) for condition in dataset.conditions],
                checks=[BundledCheck(name=c.name, type=c.type, metric=c.metric, params=dict(c.params)) for c in checks],
            )
        )
    scenarios = []
    for scenario in session.scalars(select(Scenario).where(Scenario.project_id == project.id).order_by(Scenario.slug)):
        for digest in scenario.notebooks.values():
            blobs[BLOB_FOLDER + digest] = session.get_one(NotebookSnapshot, digest).content.encode()
        files = None
        if scenario.file_tree is not None:
            files = {}
            for path, digest, _size in session.get_one(FileTree, scenario.file_tree).entries:
                blobs[BLOB_FOLDER + digest] = session.get_one(ProjectFileBlob, digest).content
                files[path] = digest
        scenarios.append(
            BundledScenario(
                id=scenario.slug,
                definition=dict(scenario.definition),
                notebooks=dict(scenario.notebooks),
                files=files,
            )
        )
    grants = None
    if with_grants:
        rows = session.execute(
            select(Group.name, ProjectGrant.permission)
            .join(Group, Group.id == ProjectGrant.group_id)
            .where(ProjectGrant.project_id == project.id)
            .order_by(Group.name, ProjectGrant.permission)
        ).all()
        grants = [BundledGrant(group=name, permission=permission) for name, permission in rows]
    definitions = BundleDefinitions(
        project=BundledProject(
            key=project.key, name=project.name, description=project.description, tags=list(project.tags)
        ),
        variables=dict(project.variables),
        datasets=datasets,
        scenarios=scenarios,
        grants=grants,
    )
    return definitions, blobs


def live_definitions(session: Session, project: Project | None) -> BundleDefinitions | None:
    if project is None:
        return None
    return export_definitions(session, project, with_grants=True)[0]


def _same(a: Any, b: Any) -> bool:
    return json_bytes(a) == json_bytes(b)


def _compared(kind: Any, before: dict[str, Any], after: dict[str, Any]) -> list[BundleChange]:
    changes = [BundleChange(kind=kind, name=n, change="added") for n in sorted(set(after) - set(before))]
    changes += [
        BundleChange(kind=kind, name=n, change="changed")
        for n in sorted(set(after) & set(before))
        if not _same(before[n], after[n])
    ]
    changes += [BundleChange(kind=kind, name=n, change="removed") for n in sorted(set(before) - set(after))]
    return changes


def difference(live: BundleDefinitions | None, bundled: BundleDefinitions) -> list[BundleChange]:
    """What activating ``bundled`` changes in what is live: added, changed or removed, by kind."""
    if live is None:
        live = BundleDefinitions(project=bundled.project)
        changes = [BundleChange(kind="project", name=bundled.project.key, change="added")]
    else:
        changes = []

    def datasets(d: BundleDefinitions) -> dict[str, Any]:
        return {x.name: x.model_dump(mode="json", exclude={"checks", "columns"}) for x in d.datasets}

    def checks(d: BundleDefinitions) -> dict[str, Any]:
        return {f"{x.name}/{c.name}": c.model_dump(mode="json") for x in d.datasets for c in x.checks}

    def scenarios(d: BundleDefinitions) -> dict[str, Any]:
        return {s.id: s.model_dump(mode="json") for s in d.scenarios}

    def grants(d: BundleDefinitions) -> dict[str, Any]:
        return {f"{g.group}:{g.permission}": True for g in d.grants or []}

    changes += _compared("dataset", datasets(live), datasets(bundled))
    changes += _compared("check", checks(live), checks(bundled))
    changes += _compared("scenario", scenarios(live), scenarios(bundled))
    changes += _compared("variable", live.variables, bundled.variables)
    if bundled.grants is not None:
        changes += _compared("grant", grants(live), grants(bundled))
    return changes


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
