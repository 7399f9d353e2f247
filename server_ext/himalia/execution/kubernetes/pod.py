"""The entry point of a Kubernetes step's pod: ``python -m himalia.execution.kubernetes.pod``.

The Kubernetes executor's Job gives the pod the control plane's URL, the project, the run, the
step's name and, from a Secret, the run's token. With these the pod fetches its step (a
:class:`~himalia.wire.steps.StepJob`: the notebook snapshot, its parameters, kernel and deadline)
and the project files it lists (written with :func:`~himalia.execution.files.materialize`),
executes it exactly as the local executor's worker does (:func:`himalia.execution.worker.execute`,
which stops it at its deadline), and posts the :class:`~himalia.wire.steps.StepResult` with the
executed notebook and its HTML report back. Everything it prints is the pod's log, which the executor follows into the
run's log. It exits 0 once the control plane has the result, whatever the notebook did.
"""

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from himalia.execution.files import MaterializeError, materialize
from himalia.execution.worker import execute
from himalia.execution.worker_output import clean_output, quiet_libraries
from himalia.wire.steps import Reason, StepJob, StepResult

#: The control plane may be restarting while the pod starts; retry for about a minute.
ATTEMPTS = 6
REQUEST_TIMEOUT = 60


class StepPodError(Exception):
    """Why the pod cannot run its step, in one sentence for the pod's log."""


def _say(message: str) -> None:
    print(f"[himalia] {message}", flush=True)


def _environment() -> dict[str, str]:
    names = ("HIMALIA_API_URL", "HIMALIA_TOKEN", "HIMALIA_PROJECT", "HIMALIA_RUN_ID", "HIMALIA_STEP")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise StepPodError(
            f"the pod's environment lacks {', '.join(missing)}; it is started by the Kubernetes executor"
        )
    return {name: os.environ[name] for name in names}


def _call(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """One API call, retried while the control plane cannot be reached or answers 5xx."""
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.ConnectionError as error:
            problem = f"cannot reach the control plane: {error}"
        else:
            if response.status_code < 500:
                return response
            problem = f"the control plane answered {response.status_code}"
        if attempt < ATTEMPTS:
            _say(f"{problem}; retrying")
            time.sleep(2**attempt / 2)
    raise StepPodError(problem)


def _refused(response: requests.Response) -> str:
    try:
        message = response.json()["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500]
    return f"the control plane refused ({response.status_code}): {message}"


def _produced(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def run_step(environment: dict[str, str]) -> None:
    base = (
        f"{environment['HIMALIA_API_URL'].rstrip('/')}/projects/{quote(environment['HIMALIA_PROJECT'], safe='')}"
        f"/runs/{environment['HIMALIA_RUN_ID']}/steps/{quote(environment['HIMALIA_STEP'], safe='')}"
    )
    with requests.Session() as session:
        session.headers["Authorization"] = f"token {environment['HIMALIA_TOKEN']}"
        _say(f"fetching step '{environment['HIMALIA_STEP']}' of run #{environment['HIMALIA_RUN_ID']}")
        answer = _call(session, "GET", f"{base}/job")
        if answer.status_code != 200:
            raise StepPodError(_refused(answer))
        job = StepJob.model_validate(answer.json())
        folder = Path(tempfile.mkdtemp(prefix="himalia-step-"))

        def fetch(digest: str) -> bytes:
            answer = _call(session, "GET", f"{base}/files/{digest}")
            if answer.status_code != 200:
                raise StepPodError(_refused(answer))
            return answer.content

        _say(f"fetching {len(job.files)} project files ({sum(file.size for file in job.files)} bytes)")
        try:
            materialize(job.files, job.folder, folder, fetch)
        except MaterializeError as error:
            outcome = StepResult(reason=Reason.FAILED, error=str(error))
        else:
            _say(f"running {job.notebook}")
            clean_output(folder)  # the pod's log is the run's: what the notebook printed, not the plumbing
            outcome = execute(job, folder)  # the job's env is empty: the Job set the pod's environment
        sys.stdout.flush()
        result = outcome.model_copy(
            update={"executed": _produced(folder / "executed.ipynb"), "html": _produced(folder / "report.html")}
        )
        _say(f"sending the result: {outcome.reason}")
        answer = _call(session, "POST", f"{base}/result", json=result.model_dump(mode="json"))
        if answer.status_code >= 300:
            raise StepPodError(_refused(answer))


def main() -> int:
    quiet_libraries()
    try:
        run_step(_environment())
    except StepPodError as error:
        _say(f"the step could not run: {error}")
        return 1
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
