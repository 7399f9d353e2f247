"""Executors run the steps of a scenario that execute user code: notebooks.

The run itself (sequencing, checks, variables, reporters) is orchestrated by the control plane;
an executor only has to run one notebook with its parameters and environment (a
:class:`~himalia.wire.steps.StepJob`), stream its output, end it at its deadline or on an abort,
and hand back a :class:`~himalia.wire.steps.StepResult` with the executed notebook and its HTML
report. The control plane chooses the class (``ControlPlane.executor_class``); each executor is
configured in its own section (``c.LocalExecutor.*``, ``c.KubernetesExecutor.*``) and gets what
it needs of the control plane as constructor arguments. Executors know nothing of the store.
"""

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from traitlets.config import LoggingConfigurable

from himalia.execution.accounts import UserIsolation
from himalia.execution.files import ReadFile
from himalia.wire.compute import DescribeTier
from himalia.wire.steps import StepJob, StepResult

#: Never handed to user code: the store's URL and the keys are the control plane's alone.
PRIVATE_ENVIRONMENT = ("HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY", "HIMALIA_HOME")

_SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|KEY|KEYS|APIKEY|CREDENTIAL|CREDENTIALS)(_|$)", re.IGNORECASE
)

#: The tier of a name (``None`` when unset or unknown).
TierLookup = Callable[[str | None], DescribeTier | None]


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential (``JUPYTERHUB_API_TOKEN``,
    ``AWS_SECRET_ACCESS_KEY``, ``HIMALIA_SMTP_PASSWORD``, …)."""
    return bool(_SECRET_NAME.search(name))


def inherited_environment() -> dict[str, str]:
    """The control plane's environment as workers get it: without its private settings nor any
    variable whose name says it is a credential (a hub service's ``JUPYTERHUB_API_TOKEN``, the
    SMTP password, …). A run's own token comes with the job."""
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_ENVIRONMENT and not is_secret_name(k)}


def _no_tier(name: str | None) -> DescribeTier | None:
    return None


def _no_project_files(digest: str) -> bytes:
    raise LookupError(f"this executor was given no store to read project file {digest[:12]} from")


class StepHandle:
    """One started step."""

    def wait(self) -> StepResult:
        """Block until the step ends, fails, reaches its deadline or is aborted."""
        raise NotImplementedError

    def abort(self) -> None:
        """Stop the step now; ``wait`` then returns ``aborted``."""
        raise NotImplementedError


class Executor(LoggingConfigurable):
    """Where notebook steps run (a ``Type`` of ``ControlPlane.executor_class``).

    Every executor is built with the same arguments, and takes those it needs: ``work_root``, a
    folder of the control plane's home for job folders and records; ``isolation``, which OS
    account runs a person's code on this machine; ``tier_for``, the tier of a scenario's tier
    name; ``served_api_url``, the API as this control plane serves it (where steps' code reaches
    it unless the executor is told otherwise); ``project_file``, the bytes of a project file by
    its SHA-256 (the local executor writes a job's files with it; pods fetch theirs through the API).
    """

    #: Whether user code runs apart from the control plane's files (its own OS account, its own pod).
    isolates_code: bool = False

    def __init__(
        self,
        *,
        work_root: Path | None = None,
        isolation: UserIsolation | None = None,
        tier_for: TierLookup = _no_tier,
        served_api_url: str = "",
        project_file: ReadFile = _no_project_files,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.work_root, self.isolation = work_root, isolation
        self.tier_for, self.served_api_url = tier_for, served_api_url
        self.project_file = project_file

    def start(self, job: StepJob, on_output: Callable[[str], None]) -> StepHandle:
        """Start ``job``; ``on_output`` receives its output lines as they come."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (idle workers, clients)."""
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        """Where its steps ran, for a run's reproducibility record (a pod's image, for one)."""
        return {"executor": type(self).__name__}


@runtime_checkable
class RemoteSteps(Protocol):
    """An executor whose steps run elsewhere and call the API with the run's token: they fetch
    their job and report their result (the Kubernetes executor's pods)."""

    def running_job(self, run_id: int, step: str) -> StepJob:
        """The job of a step now running, for its pod to fetch; ``NotFound`` otherwise."""
        ...

    def running_file(self, run_id: int, step: str, digest: str) -> bytes:
        """A project file of a step now running, for its pod; ``NotFound`` unless its job lists it."""
        ...

    def deliver(self, run_id: int, step: str, result: StepResult) -> None:
        """Hand a step's result to the waiting run, once; ``NotFound`` or ``Conflict`` otherwise."""
        ...
