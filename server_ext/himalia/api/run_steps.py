"""``projects/{key}/runs/{run_id}/steps/{step}``: what a Kubernetes step's pod fetches and reports.

The pod of a notebook step run by the Kubernetes executor holds the run's token (from the Job's
Secret) and nothing else: with it, it fetches its step and posts the outcome. Both calls accept
that token only, and only for the step the executor is running now. Anybody else is answered as
if the run did not exist, except administrators, who may know it does and are told why not.
"""

from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Base64Bytes, BaseModel, Field
from sqlalchemy import select

from himalia.api.base import APIHandler, operation
from himalia.api.scenarios import run_number
from himalia.core.errors import Forbidden, NotFound
from himalia.execution.base import NotebookResult
from himalia.hosts.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.store.orm import Project, ScenarioRun
from himalia.wire.common import Request

if TYPE_CHECKING:
    from himalia.execution.kubernetes.executor import KubernetesExecutor


class StepJob(BaseModel):
    """A notebook step as its pod runs it."""

    notebook: str = Field(description="The notebook's path in the project, for the log.")
    content: str = Field(description="The notebook snapshot the run uses, as JSON text.")
    parameters: dict[str, Any] = Field(description="Values for the parameters cell, typed.")
    kernel: str | None = Field(description="The kernel to start; none means the notebook's own.")
    hide_code: bool = Field(description="Leave the code out of the HTML report.")
    cell_timeout: float | None = Field(description="Seconds one cell may run; none means no limit.")


class StepResult(Request):
    """The outcome of a notebook step, with what papermill and nbconvert produced."""

    reason: Literal["ok", "cell_error", "kernel_died", "timeout", "failed"]
    error: str | None = Field(None, max_length=10_000, description="What went wrong, for the run's page.")
    executed: Base64Bytes | None = Field(None, description="The executed notebook, base64.")
    html: Base64Bytes | None = Field(None, description="Its HTML report, base64.")


def _check_caller(plane: ControlPlane, caller: Caller, key: str, run_id: int) -> None:
    with plane.db.read() as session:
        token_id = session.scalar(
            select(ScenarioRun.token_id)
            .join(Project, Project.id == ScenarioRun.project_id)
            .where(ScenarioRun.id == run_id, Project.key == key)
        )
    if token_id is not None and caller.token_id == token_id:
        return
    if token_id is not None and caller.sees_every_project:
        raise Forbidden(f"Only the token of run #{run_id} may fetch its steps and report their results.")
    raise NotFound(f"There is no run #{run_id} running in {key}.")


def _executor(plane: ControlPlane) -> "KubernetesExecutor":
    """The Kubernetes executor, known by name: the kubernetes client is optional, imported only there."""
    if plane.engine is None or plane.engine.executor.name != "kubernetes":
        raise NotFound("This control plane runs no steps on Kubernetes.")
    return cast("KubernetesExecutor", plane.engine.executor)


def fetch_step(plane: ControlPlane, caller: Caller, key: str, run_id: int, step: str) -> StepJob:
    _check_caller(plane, caller, key, run_id)
    job = _executor(plane).running_job(run_id, step)
    return StepJob(
        notebook=job.notebook,
        content=job.content,
        parameters=job.parameters,
        kernel=job.kernel,
        hide_code=job.hide_code,
        cell_timeout=job.timeout,
    )


def report_result(plane: ControlPlane, caller: Caller, key: str, run_id: int, step: str, spec: StepResult) -> None:
    _check_caller(plane, caller, key, run_id)
    result = NotebookResult(spec.reason, spec.error, spec.executed, spec.html)
    _executor(plane).deliver(run_id, step, result)


class StepJobHandler(APIHandler):
    route = "/projects/{key}/runs/{run_id}/steps/{step}/job"

    @operation(
        "The notebook step a Kubernetes pod is to run: snapshot, parameters, kernel (the run's own token).",
        response=StepJob,
    )
    async def get(self, key: str, run_id: str, step: str) -> StepJob:
        return await self.call(fetch_step, self.control_plane, self.caller, key, run_number(run_id), step)


class StepResultHandler(APIHandler):
    route = "/projects/{key}/runs/{run_id}/steps/{step}/result"

    @operation(
        "Report a Kubernetes step's outcome with its executed notebook and HTML report, once (the run's own token).",
        body=StepResult,
    )
    async def post(self, key: str, run_id: str, step: str, spec: StepResult) -> None:
        await self.call(report_result, self.control_plane, self.caller, key, run_number(run_id), step, spec)


handlers = [StepJobHandler, StepResultHandler]
