"""Scenarios as the control plane stores them: saving (with notebook snapshots), listing, export.

Reading a scenario needs ``read_content`` or ``run_scenarios`` on its project (launchers must see
what they launch); saving or deleting needs ``write_content``. Steps that run code also need a
global permission of the author: notebooks ``write_isolated_code``, as they run as their run-as
user's own OS account or pod (``os_accounts``); ``set_variables`` with ``code`` needs
``write_unsafe_code``, as it runs inside the control plane. A scenario runs as its last author
unless an administrator named another run-as user, so that editing a scenario never borrows
someone else's rights.
"""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, object_session

from himalia.compute.tiers import admit_tier
from himalia.core.documents import DocumentError
from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.core.variables import REFERENCE
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import Service
from himalia.identity.users import find_user
from himalia.scenarios.files import ProjectFiles, store_tree, summary
from himalia.scenarios.snapshots import canonical, notebook_kernel, store_snapshot
from himalia.store.db import paginate
from himalia.store.events import Events, ScenarioChanged
from himalia.store.orm import (
    Connection,
    Dataset,
    FileTree,
    NotebookSnapshot,
    Project,
    Scenario,
    ScenarioRun,
    User,
    utcnow,
)
from himalia.wire.common import Page, from_row
from himalia.wire.definitions import (
    AfterScenarioTrigger,
    ComputeMetricsStep,
    DatasetChangeTrigger,
    NotebookStep,
    RunChecksStep,
    RunScenarioStep,
    ScenarioDefinition,
    SetVariablesStep,
    SqlConditionTrigger,
    SqlStep,
    input_context,
    load_scenario,
    stored_definition,
)
from himalia.wire.parameters import check_value
from himalia.wire.scenarios import (
    ACTIVE_STATES,
    DescribeScenario,
    FilesPreview,
    FileTreeSummary,
    LastRun,
    NotebookParameter,
    PreviewFiles,
    SaveScenario,
    ScenarioParameters,
    StepParameters,
)

#: Why a host without a notebook folder (``himalia serve``, the hub's service) reads no files.
NO_NOTEBOOK_FOLDER = (
    "this control plane reads no notebook folder (ControlPlane.notebook_root is not set, as for the hub's "
    "service): save from JupyterLab standalone or with himalia scenario apply --notebooks DIR"
)


def may_read_scenarios(permissions: frozenset[ProjectPermission], key: str) -> None:
    if ProjectPermission.READ_CONTENT not in permissions and ProjectPermission.RUN_SCENARIOS not in permissions:
        raise Forbidden(f"This needs 'read_content' or 'run_scenarios' on project {key}.")


def find_scenario(session: Session, project: Project, scenario_id: str) -> Scenario:
    scenario = session.scalar(
        select(Scenario)
        .options(joinedload(Scenario.owner), joinedload(Scenario.run_as), joinedload(Scenario.updated_by))
        .where(Scenario.project_id == project.id, Scenario.slug == scenario_id)
    )
    if scenario is None:
        raise NotFound(f"There is no scenario '{scenario_id}' in {project.key}.")
    return scenario


def definition_of(scenario: Scenario | ScenarioRun) -> ScenarioDefinition:
    return stored_definition(scenario.definition)


def code_permissions(definition: ScenarioDefinition) -> list[GlobalPermission]:
    """The global permissions saving ``definition`` needs for the code its steps run."""
    needed = []
    if any(isinstance(step, NotebookStep) for step in definition.steps):
        needed.append(GlobalPermission.WRITE_ISOLATED_CODE)
    if any(isinstance(step, SetVariablesStep) and step.code is not None for step in definition.steps):
        needed.append(GlobalPermission.WRITE_UNSAFE_CODE)
    return needed


def _last_runs(session: Session, scenario_ids: list[int]) -> dict[int, ScenarioRun]:
    if not scenario_ids:
        return {}
    newest = (
        select(func.max(ScenarioRun.id))
        .where(ScenarioRun.scenario_id.in_(scenario_ids))
        .group_by(ScenarioRun.scenario_id)
        .scalar_subquery()
    )
    runs = session.scalars(select(ScenarioRun).where(ScenarioRun.id.in_(newest))).all()
    return {run.scenario_id: run for run in runs}


def describe_scenario(
    scenario: Scenario, project_key: str, last: ScenarioRun | None, now: datetime | None = None
) -> DescribeScenario:
    definition = definition_of(scenario)
    return from_row(
        DescribeScenario,
        scenario,
        project=project_key,
        id=scenario.slug,
        description=definition.description,
        owner=scenario.owner.login,
        run_as=scenario.run_as.login,
        updated_by=scenario.updated_by.login,
        next_fire_at=definition.next_fire(now or utcnow()) if scenario.active else None,
        last_run=LastRun.model_validate(last, from_attributes=True) if last else None,
        definition=definition,
        files=_files_of(scenario),
    )


def _files_of(scenario: Scenario) -> FileTreeSummary | None:
    session = object_session(scenario)
    tree = session.get(FileTree, scenario.file_tree) if session and scenario.file_tree else None
    return summary(tree) if tree else None


class ScenarioService(Service):
    def __init__(
        self,
        db: Any,
        audit: Any,
        log: Any,
        notebook_root: Callable[[], str],
        events: Events,
        project_files: ProjectFiles,
        validation_context: Callable[[], dict[str, Any]] = input_context,
    ) -> None:
        super().__init__(db, audit, log)
        self.notebook_root = notebook_root
        #: Collects the files beside the notebooks, within its limits.
        self.project_files = project_files
        #: Told of every save, (de)activation and delete (the scheduler reschedules).
        self.events = events
        #: The pydantic context saved definitions are validated with (the minimum schedule interval).
        self.validation_context = validation_context

    # -- reading ------------------------------------------------------------------------------

    def list_scenarios(self, caller: Caller, key: str, limit: int, offset: int) -> Page[DescribeScenario]:
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key)
            may_read_scenarios(permissions, key)
            query = (
                select(Scenario)
                .options(joinedload(Scenario.owner), joinedload(Scenario.run_as), joinedload(Scenario.updated_by))
                .where(Scenario.project_id == project.id)
                .order_by(Scenario.slug)
            )
            scenarios, total = paginate(session, query, limit, offset)
            last = _last_runs(session, [s.id for s in scenarios])
            now = utcnow()
            items = [describe_scenario(s, key, last.get(s.id), now) for s in scenarios]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def get_scenario(self, caller: Caller, key: str, scenario_id: str) -> DescribeScenario:
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key)
            may_read_scenarios(permissions, key)
            scenario = find_scenario(session, project, scenario_id)
            return describe_scenario(scenario, key, _last_runs(session, [scenario.id]).get(scenario.id))

    def export_yaml(self, caller: Caller, key: str, scenario_id: str) -> str:
        described = self.get_scenario(caller, key, scenario_id)
        plain = described.definition.model_dump(mode="json", exclude_defaults=True)
        plain = {"id": plain.pop("id"), "name": plain.pop("name"), **plain}
        header = f"# Scenario {key}/{scenario_id}, revision {described.revision} (himalia scenario schema)\n"
        return header + yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)

    def parameters(self, caller: Caller, key: str, scenario_id: str) -> ScenarioParameters:
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key)
            may_read_scenarios(permissions, key)
            scenario = find_scenario(session, project, scenario_id)
            definition = definition_of(scenario)
            steps = []
            for step in definition.steps:
                if isinstance(step, NotebookStep):
                    snapshot = session.get_one(NotebookSnapshot, scenario.notebooks[step.notebook])
                    steps.append(
                        StepParameters(
                            step=step.name,
                            notebook=step.notebook,
                            parameters=[
                                NotebookParameter(**p, value=step.parameters.get(p["name"]))
                                for p in snapshot.parameters
                            ],
                        )
                    )
            return ScenarioParameters(steps=steps, variables=dict(definition.variables))

    # -- saving -------------------------------------------------------------------------------

    def parse(self, spec: SaveScenario) -> ScenarioDefinition:
        """The definition to save, validated under this control plane's rules (whoever built
        ``spec``: the API validates with them too, a Python caller perhaps did not)."""
        context = self.validation_context()
        if spec.definition is not None:
            try:
                return ScenarioDefinition.model_validate(spec.definition.model_dump(mode="json"), context=context)
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"])
                raise InvalidInput(f"definition.{field}: {first['msg']}", field=f"definition.{field}") from None
        try:
            return load_scenario(spec.yaml or "", "yaml", context)
        except DocumentError as error:
            raise InvalidInput(str(error), field=error.field or "yaml") from None

    def save_scenario(
        self,
        caller: Caller,
        key: str,
        spec: SaveScenario,
        *,
        scenario_id: str | None = None,
        create_only: bool = False,
        files_root: Path | None = None,
    ) -> DescribeScenario:
        """Create or replace a scenario; its notebooks, and the project files beside them, are
        snapshotted now (see ``himalia.scenarios.files``). Those files are read below
        ``files_root``, the folder the notebook paths are relative to: the command line's own
        (``scenario apply --notebooks``); the API has none and reads below ``notebook_root``."""
        with self.db.read() as session:  # refuse before parsing the YAML or reading any notebook
            require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
        definition = self.parse(spec)
        if scenario_id is not None and definition.id != scenario_id:
            raise InvalidInput(f"id: the body describes '{definition.id}', not '{scenario_id}'.", field="id")
        for permission in code_permissions(definition):
            if not caller.has(permission):
                what = "notebooks" if permission == GlobalPermission.WRITE_ISOLATED_CODE else "Python code"
                raise Forbidden(f"Scenarios that run {what} need the global permission '{permission}'.")
        sources = {
            step.notebook: self._notebook_source(spec, step.notebook, i) for i, step in _notebook_steps(definition)
        }
        steps = _notebook_steps(definition)
        for index, step in steps:
            if step.kernel is None and notebook_kernel(sources[step.notebook]) is None:
                raise InvalidInput(
                    f"steps[{index}].kernel: {step.notebook} names no kernel (its metadata has no kernelspec): "
                    "set the step's 'kernel:' (python3, ...) or save the notebook with a kernel selected.",
                    field=f"steps[{index}].kernel",
                )
        files = None
        root = files_root if files_root is not None else self._notebook_folder()
        if steps and spec.project_files is not None:
            files = self.project_files.accept(spec.project_files)
        elif steps and root is not None:
            files = self.project_files.collect(root, steps[0][1].notebook, definition.files)
        elif steps and definition.files is not None:
            raise InvalidInput(f"files: {NO_NOTEBOOK_FOLDER}", field="files")
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            scenario = session.scalar(
                select(Scenario).where(Scenario.project_id == project.id, Scenario.slug == definition.id)
            )
            if scenario is not None and create_only:
                raise Conflict(f"Scenario '{definition.id}' already exists in {key}.", field="id")
            if caller.user_id is None:
                raise Forbidden("The operator has no account to own a scenario: use --as LOGIN.")
            author = session.get_one(User, caller.user_id)
            owner = scenario.owner if scenario is not None else author
            run_as = self._run_as(session, caller, definition, owner, author)
            admit_tier(session, run_as, definition.tier)  # for the user it runs as, not the author
            self._check_references(session, project, definition)
            digests = {}
            for index, step in _notebook_steps(definition):
                snapshot = store_snapshot(session, sources[step.notebook])
                digests[step.notebook] = snapshot.digest
                self._check_parameters(snapshot.parameters, step, index)
            tree = store_tree(session, files) if files is not None else None
            stored = definition.model_dump(mode="json")
            if (
                scenario is not None
                and scenario.definition == stored
                and scenario.notebooks == digests
                and scenario.file_tree == (tree.digest if tree else None)
                and scenario.run_as_id == run_as.id
            ):
                # Saving what is stored changes nothing, not even its revision or its schedule's
                # cursor: re-applying at start must not forgive the fires missed while it was down.
                return describe_scenario(scenario, key, _last_runs(session, [scenario.id]).get(scenario.id))
            created = scenario is None
            if scenario is None:
                scenario = Scenario(project_id=project.id, slug=definition.id, owner=owner, revision=0)
                session.add(scenario)
            scenario.name = definition.name
            scenario.active = definition.active
            scenario.definition = stored
            scenario.notebooks = digests
            scenario.file_tree = tree.digest if tree else None
            scenario.run_as = run_as
            scenario.updated_by = author
            scenario.revision += 1
            scenario.trigger_state = {}
            session.flush()
            self.audit.record(
                session,
                caller,
                "scenario.create" if created else "scenario.update",
                "scenario",
                definition.id,
                project_key=key,
                details={
                    "revision": scenario.revision,
                    "notebooks": digests,
                    "files": summary(tree).model_dump() if tree else None,
                    "run_as": run_as.login,
                },
            )
            described = describe_scenario(scenario, key, _last_runs(session, [scenario.id]).get(scenario.id))
            row_id = scenario.id
        self._changed(row_id)
        return described

    def preview_files(self, caller: Caller, key: str, spec: PreviewFiles) -> FilesPreview:
        """What saving a scenario whose first notebook is ``spec.notebook`` (below ``notebook_root``)
        would snapshot, refused as the save would be; nothing is stored. Needs what saving needs."""
        with self.db.read() as session:
            require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
        if not caller.has(GlobalPermission.WRITE_ISOLATED_CODE):
            needed = GlobalPermission.WRITE_ISOLATED_CODE
            raise Forbidden(f"Scenarios that run notebooks need the global permission '{needed}'.")
        root = self._notebook_folder()
        if spec.project_files is not None:
            files = self.project_files.accept(spec.project_files)
        elif root is None:
            raise InvalidInput(f"notebook: {NO_NOTEBOOK_FOLDER}", field="notebook")
        else:
            files = self.project_files.collect(root, spec.notebook, spec.files)
        return FilesPreview(files=len(files), bytes=sum(map(len, files.values())), paths=sorted(files))

    def set_active(self, caller: Caller, key: str, scenario_id: str, active: bool) -> DescribeScenario:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            scenario = find_scenario(session, project, scenario_id)
            scenario.active = active
            scenario.definition = {**scenario.definition, "active": active}
            self.audit.record(
                session,
                caller,
                "scenario.activate" if active else "scenario.deactivate",
                "scenario",
                scenario_id,
                project_key=key,
            )
            session.flush()
            described = describe_scenario(scenario, key, _last_runs(session, [scenario.id]).get(scenario.id))
            row_id = scenario.id
        self._changed(row_id)
        return described

    def delete_scenario(self, caller: Caller, key: str, scenario_id: str) -> int:
        """Delete a scenario with its run history (steps, logs, reports); return how many runs went.

        Refused while a run is queued or running (abort it first: a queued run would start a
        scenario that no longer exists), and while another scenario runs it or fires after it."""
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            scenario = find_scenario(session, project, scenario_id)
            active = session.scalar(
                select(ScenarioRun.id).where(
                    ScenarioRun.scenario_id == scenario.id, ScenarioRun.state.in_(ACTIVE_STATES)
                )
            )
            if active is not None:
                raise Conflict(f"Run #{active} of '{scenario_id}' is not finished: abort it first.")
            dependant = _first_dependant(session, project, scenario_id)
            if dependant is not None:
                raise Conflict(f"Scenario '{dependant[0]}' {dependant[1]} '{scenario_id}': change it first.")
            runs = session.scalar(select(func.count()).where(ScenarioRun.scenario_id == scenario.id)) or 0
            row_id = scenario.id
            details = {"revision": scenario.revision, "runs_deleted": runs}
            session.delete(scenario)
            self.audit.record(
                session, caller, "scenario.delete", "scenario", scenario_id, project_key=key, details=details
            )
        self._changed(row_id)
        return runs

    def _changed(self, row_id: int) -> None:
        self.events.publish(ScenarioChanged(row_id))

    # -- validation ---------------------------------------------------------------------------

    def _notebook_folder(self) -> Path | None:
        """The folder notebook paths are read in (the Jupyter server's root), if this host has one."""
        root = self.notebook_root()
        return Path(root) if root else None

    def _notebook_source(self, spec: SaveScenario, path: str, index: int) -> str:
        field = f"steps[{index}].notebook"
        if path in spec.notebooks:
            return canonical(spec.notebooks[path], f"notebooks.{path}")[0]
        folder = self._notebook_folder()
        if folder is None:
            raise InvalidInput(f"{field}: send the content of '{path}' ({NO_NOTEBOOK_FOLDER})", field=field)
        root = folder.resolve()
        file = (root / path).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            raise InvalidInput(
                f"{field}: there is no notebook '{path}' (send its content, or save it first).", field=field
            )
        return canonical(file.read_text(encoding="utf-8"), field)[0]

    @staticmethod
    def _run_as(session: Session, caller: Caller, definition: ScenarioDefinition, owner: User, author: User) -> User:
        """Whoever saves the steps answers for them: a scenario runs as its last author unless an
        administrator names someone else, so editing never borrows another person's rights."""
        if definition.run_as is None or definition.run_as == author.login:
            return author
        if not caller.is_admin:
            raise Forbidden("run_as: only an administrator may make a scenario run as someone else.")
        user = find_user(session, definition.run_as, field="run_as")
        if not user.active:
            raise InvalidInput(f"run_as: '{user.login}' is deactivated.", field="run_as")
        return user

    @staticmethod
    def _check_parameters(declared: list[dict[str, Any]], step: NotebookStep, index: int) -> None:
        by_name = {p["name"]: p for p in declared}
        for name, value in step.parameters.items():
            field = f"steps[{index}].parameters.{name}"
            if name not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                raise InvalidInput(
                    f"{field}: {step.notebook} declares no parameter '{name}' (declared: {known})", field=field
                )
            if not (isinstance(value, str) and REFERENCE.search(value)):
                check_value(by_name[name], value, field)

    @staticmethod
    def _check_references(session: Session, project: Project, definition: ScenarioDefinition) -> None:
        datasets = set(session.scalars(select(Dataset.name).where(Dataset.project_id == project.id)))
        scenarios = set(session.scalars(select(Scenario.slug).where(Scenario.project_id == project.id)))
        connections = set(session.scalars(select(Connection.name)))
        items: list[tuple[str, Any]] = [("steps", s) for s in definition.steps]
        items += [("triggers", t) for t in definition.triggers]
        for kind in ("steps", "triggers"):
            for index, item in enumerate(i for k, i in items if k == kind):
                where = f"{kind}[{index}]"
                dataset_based = isinstance(item, ComputeMetricsStep | RunChecksStep | DatasetChangeTrigger)
                if dataset_based and item.dataset not in datasets:
                    raise InvalidInput(
                        f"{where}.dataset: there is no dataset '{item.dataset}' in {project.key}.",
                        field=f"{where}.dataset",
                    )
                if isinstance(item, SqlStep | SqlConditionTrigger) and item.connection not in connections:
                    raise InvalidInput(
                        f"{where}.connection: there is no connection '{item.connection}'.",
                        field=f"{where}.connection",
                    )
                if isinstance(item, RunScenarioStep | AfterScenarioTrigger):
                    if item.scenario == definition.id:
                        raise InvalidInput(
                            f"{where}.scenario: a scenario cannot run itself.", field=f"{where}.scenario"
                        )
                    if item.scenario not in scenarios:
                        raise InvalidInput(
                            f"{where}.scenario: there is no scenario '{item.scenario}' in {project.key}.",
                            field=f"{where}.scenario",
                        )


def _first_dependant(session: Session, project: Project, scenario_id: str) -> tuple[str, str] | None:
    """Another scenario of the project that runs ``scenario_id`` or fires after it, and how."""
    others = session.scalars(
        select(Scenario).where(Scenario.project_id == project.id, Scenario.slug != scenario_id).order_by(Scenario.slug)
    )
    for other in others:
        definition = definition_of(other)
        if any(isinstance(s, RunScenarioStep) and s.scenario == scenario_id for s in definition.steps):
            return other.slug, "runs"
        if any(isinstance(t, AfterScenarioTrigger) and t.scenario == scenario_id for t in definition.triggers):
            return other.slug, "fires after"
    return None


def _notebook_steps(definition: ScenarioDefinition) -> list[tuple[int, NotebookStep]]:
    return [(i, step) for i, step in enumerate(definition.steps) if isinstance(step, NotebookStep)]
