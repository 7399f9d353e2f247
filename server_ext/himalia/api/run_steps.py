"""``projects/{key}/runs/{run_id}/steps/{step}``: what a Kubernetes step's pod fetches and reports.

The pod of a notebook step run by the Kubernetes executor holds the run's token (from the Job's
Secret) and nothing else: with it, it fetches its step, the project files its job lists (one by
SHA-256, none other), and posts the outcome. Every call accepts that token only, and only for the
step the executor is running now. Anybody else is answered as
if the run did not exist, except administrators, who may know it does and are told why not.
"""

from himalia.api.base import APIHandler, operation
from himalia.api.scenarios import run_number
from himalia.controlplane import ControlPlane
from himalia.core.errors import Forbidden, NotFound
from himalia.execution.base import RemoteSteps
from himalia.identity.caller import Caller
from himalia.wire.steps import StepJob, StepResult


def _check_caller(plane: ControlPlane, caller: Caller, key: str, run_id: int) -> None:
    token_id = plane.runs.run_token_id(key, run_id)
    if token_id is not None and caller.token_id == token_id:
        return
    if token_id is not None and caller.sees_every_project:
        raise Forbidden(f"Only the token of run #{run_id} may fetch its steps and report their results.")
    raise NotFound(f"There is no run #{run_id} running in {key}.")


def _executor(plane: ControlPlane) -> RemoteSteps:
    if plane.engine is None or not isinstance(plane.engine.executor, RemoteSteps):
        raise NotFound("This control plane runs no steps on Kubernetes.")
    return plane.engine.executor


def fetch_step(plane: ControlPlane, caller: Caller, key: str, run_id: int, step: str) -> StepJob:
    """The step's job without its environment: the pod's Job sets that (the token from a Secret)."""
    _check_caller(plane, caller, key, run_id)
    return _executor(plane).running_job(run_id, step).model_copy(update={"env": {}})


def fetch_file(plane: ControlPlane, caller: Caller, key: str, run_id: int, step: str, digest: str) -> bytes:
    """One project file of the step's job, by the SHA-256 the job lists for it."""
    _check_caller(plane, caller, key, run_id)
    return _executor(plane).running_file(run_id, step, digest)


def report_result(plane: ControlPlane, caller: Caller, key: str, run_id: int, step: str, spec: StepResult) -> None:
    _check_caller(plane, caller, key, run_id)
    _executor(plane).deliver(run_id, step, spec)


class StepJobHandler(APIHandler):
    route = "/projects/{key}/runs/{run_id}/steps/{step}/job"

    @operation(
        "The notebook step a Kubernetes pod is to run: snapshot, parameters, kernel, deadline (the run's own token).",
        response=StepJob,
    )
    async def get(self, key: str, run_id: str, step: str) -> StepJob:
        return await self.call(fetch_step, self.control_plane, self.caller, key, run_number(run_id), step)


class StepFileHandler(APIHandler):
    route = "/projects/{key}/runs/{run_id}/steps/{step}/files/{digest}"

    @operation(
        "A project file the Kubernetes pod's step lists, by its SHA-256 (the run's own token).",
        media_types=("application/octet-stream",),
    )
    async def get(self, key: str, run_id: str, step: str, digest: str) -> None:
        content = await self.call(
            fetch_file, self.control_plane, self.caller, key, run_number(run_id), step, digest[:64]
        )
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(content)


class StepResultHandler(APIHandler):
    route = "/projects/{key}/runs/{run_id}/steps/{step}/result"

    @operation(
        "Report a Kubernetes step's outcome with its executed notebook and HTML report, once (the run's own token).",
        body=StepResult,
    )
    async def post(self, key: str, run_id: str, step: str, spec: StepResult) -> None:
        await self.call(report_result, self.control_plane, self.caller, key, run_number(run_id), step, spec)


handlers = [StepJobHandler, StepFileHandler, StepResultHandler]
