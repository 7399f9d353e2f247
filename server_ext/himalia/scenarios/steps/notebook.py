"""``notebook``: run a notebook snapshot with papermill on the executor, as the run's actor.

It runs beside the run's project files (``himalia.scenarios.files``), in its own folder of them.

Parameters come from the step (``${name}`` references typed when they stand alone), then from the
run's request, and are checked against the parameters cell before anything starts. The executed
notebook and its HTML report are kept as the step's artifacts, with the run's credentials masked.
"""

from typing import Any

from himalia.core.errors import HimaliaError
from himalia.core.units import parse_duration
from himalia.core.variables import REFERENCE, expand
from himalia.scenarios.files import notebook_folder
from himalia.scenarios.records import Artifact
from himalia.scenarios.steps.base import RunAborted, RunContext, StepFailed, StepKind, StepOutcome
from himalia.wire.definitions import NotebookStep, ScenarioDefinition
from himalia.wire.parameters import check_value
from himalia.wire.scenarios import ArtifactKind, StepState
from himalia.wire.steps import Reason, StepJob, deadline_after


def typed_expand(values: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """Expand ``${name}`` references; a value that is exactly one reference keeps the variable's type,
    so ``threshold: "${threshold}"`` passes a float to a float parameter."""
    typed = {}
    for name, value in values.items():
        match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if match and not match.group(1) and match.group(2) in variables:
            typed[name] = variables[match.group(2)]
        else:
            typed[name] = expand(value, variables)
    return typed


def _first_notebook(definition: ScenarioDefinition) -> str:
    """The notebook whose folder is the root of the run's file tree."""
    return next(step.notebook for step in definition.steps if isinstance(step, NotebookStep))


class Notebook(StepKind[NotebookStep]):
    definition = NotebookStep

    def attempts(self, step: NotebookStep) -> int:
        return 1 + step.retries

    def run(self, context: RunContext, position: int, step: NotebookStep) -> StepOutcome:
        if not context.may_run_notebooks:
            needed = " and ".join(f"'{permission}'" for permission in context.notebooks_need)
            raise StepFailed(f"{context.actor.login} does not have {needed}, needed to run notebooks here")
        host = context.host
        snapshot = context.snapshot(step.notebook)
        declared = snapshot.parameters
        parameters = typed_expand(step.parameters, context.variables())
        parameters.update({k: v for k, v in context.run.parameters.items() if k in declared})
        for name, value in parameters.items():
            if name not in declared:
                continue
            try:
                check_value(declared[name], value, f"parameters.{name}")
            except HimaliaError as error:
                raise StepFailed(error.message) from None
        env = {
            "HIMALIA_API_URL": host.api_url() or "",
            "HIMALIA_TOKEN": context.run.token,
            "HIMALIA_PROJECT": context.project_key,
            "HIMALIA_RUN_ID": str(context.run_id),
            "HIMALIA_SCENARIO": context.scenario_slug,
            "HIMALIA_TIER": context.definition.tier or "",
        }
        limit = parse_duration(step.timeout).total_seconds() if step.timeout else None
        timeout = context.remaining(limit)
        job = StepJob(
            run_id=context.run_id,
            step=step.name,
            notebook=step.notebook,
            content=snapshot.content,
            parameters=parameters,
            env=env,
            kernel=step.kernel,
            deadline=deadline_after(timeout),
            hide_code=step.hide_code,
            tier=context.definition.tier,
            run_as=context.actor.login,
            files=context.run.files,
            folder=notebook_folder(_first_notebook(context.definition), step.notebook),
        )
        context.log.line(f"[{step.name}] papermill {step.notebook} ({snapshot.digest[:12]}) with {parameters}")
        handle = host.executor.start(job, context.log.write)
        context.current_handle = handle
        if context.aborted.is_set():
            handle.abort()
        try:
            result = handle.wait()
        finally:
            context.current_handle = None
        artifacts = [
            Artifact(kind, media_type, context.log.redactor.data(produced))  # what readers of the run may open
            for kind, produced, media_type in (
                (ArtifactKind.IPYNB, result.executed, "application/x-ipynb+json"),
                (ArtifactKind.HTML, result.html, "text/html"),
            )
            if produced is not None
        ]
        recorded = host.runs.add_artifacts(context.run_id, position, artifacts)
        outputs = {
            "notebook": step.notebook,
            "snapshot": snapshot.digest,
            "parameters": parameters,
            "metrics": recorded,
            # The reproducibility record: what the kernel ran on, where, on which tier.
            "environment": {
                **(result.environment.model_dump(exclude_none=True) if result.environment else {}),
                **host.executor.describe(),
                "tier": context.definition.tier,
            },
        }
        if result.reason == Reason.ABORTED or context.aborted.is_set():
            raise RunAborted()
        if not result.ok:
            message = context.log.redactor.text(result.error or result.reason)
            if result.reason == Reason.TIMEOUT:  # say whose limit it was, as written
                if limit is not None and timeout == limit:
                    message = f"the step ran longer than its {step.timeout} limit"
                else:
                    message = f"the scenario ran longer than its {context.definition.timeout} limit"
            return StepOutcome(StepState.FAILED, message, outputs)
        return StepOutcome(StepState.SUCCEEDED, "", outputs)
