"""The Kubernetes executor: one Job per notebook step, sized by the scenario's hardware tier.

The Job's pod runs ``python -m himalia.execution.kubernetes.pod``, which fetches its step (the notebook snapshot,
its parameters) from the control plane with the run's token, executes it as the local executor's
workers do, and posts the result back; the API handler passes it to :meth:`KubernetesExecutor.deliver`
and the step's ``wait`` returns it once the Job has completed. Until then ``wait`` polls the Job
and its pod, follows the pod's log, and names a failure in Kubernetes' own terms: out of memory,
an image that cannot be pulled, an eviction, a deadline. The run's token reaches the pod through a
Secret owned by the Job (so Kubernetes collects it with the Job), never in the Job's spec.
"""

import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import config
from kubernetes.client import ApiClient, BatchV1Api, Configuration, CoreV1Api, V1Job, V1Secret
from kubernetes.client.exceptions import ApiException
from traitlets import Float, Int, List, Unicode

from himalia.compute.resources import container_resources, format_bytes, scheduling, shm_volume, shm_volume_mount
from himalia.core.config import environment_default
from himalia.core.errors import Conflict, InvalidInput, NotFound
from himalia.execution.base import Executor, StepHandle
from himalia.wire.compute import DescribeTier
from himalia.wire.steps import Reason, StepJob, StepResult

APP_LABEL = "app.kubernetes.io/name"
APP = "himalia-run"
RUN_LABEL = "himalia.io/run-id"
STEP_LABEL = "himalia.io/step"
#: Set by the Job controller on its pods (Kubernetes 1.27 and later).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTAINER = "notebook"
TOKEN_KEY = "token"
#: Waiting reasons of a container whose image cannot be pulled; the kubelet keeps retrying them.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
#: Kubernetes' own deadline trails ours (and our grace), so that it only acts when the control plane is gone.
DEADLINE_MARGIN = 60

log = logging.getLogger("himalia.kubernetes")

_TRANSIENT = (ApiException, urllib3.exceptions.HTTPError)


def load_api_client() -> ApiClient:
    """A client configured in-cluster (the control plane's service account), else from kubeconfig."""
    configuration = Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return ApiClient(configuration)


def api_message(error: ApiException) -> str:
    """The API server's sentence from an error's Status body, else its HTTP reason."""
    try:
        message = json.loads(error.body or "")["message"]
    except (ValueError, TypeError, KeyError):
        message = None
    return f"{error.status} {error.reason}: {message}" if message else f"{error.status} {error.reason}"


def _slug(text: str, limit: int) -> str:
    """A DNS label / label value from free text ('Prepare data' -> 'prepare-data')."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "step"


def _condition(job: Any, kind: str) -> Any:
    for condition in (job.status.conditions if job is not None and job.status else None) or []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


class _KubernetesStep(StepHandle):
    """One step's Job, from creation to cleanup; ``wait`` runs in the run's thread."""

    def __init__(
        self,
        executor: "KubernetesExecutor",
        job: StepJob,
        name: str,
        tier: DescribeTier | None,
        on_output: Callable[[str], None],
    ) -> None:
        self.executor, self.job, self.name, self.tier = executor, job, name, tier
        self.on_output = on_output
        self.secret_name = f"{name}-token"
        self.failed_to_start: str | None = None
        self.created = False
        self.delivered: StepResult | None = None
        self._wake = threading.Event()
        self._aborted = False
        self._deleted = False
        self._released = False
        self._lock = threading.Lock()
        self._seen: tuple[str, str] | None = None
        self._log_thread: threading.Thread | None = None
        self._log_stream: Any = None

    @property
    def namespace(self) -> str:
        return self.executor.namespace

    def say(self, message: str) -> None:
        self.on_output(f"[kubernetes] {message}\n")

    # -- the hand-off from the API handler ------------------------------------------------------

    def accept(self, result: StepResult) -> None:
        """Called under the executor's lock."""
        if self.delivered is not None:
            raise Conflict(f"Run #{self.job.run_id} already received the result of step '{self.job.step}'.")
        self.delivered = result
        self._wake.set()

    # -- StepHandle ---------------------------------------------------------------------------------

    def wait(self) -> StepResult:
        try:
            return self._watch()
        finally:
            self._release()

    def abort(self) -> None:
        self._aborted = True
        self._delete_job("aborted")
        self._wake.set()

    def _watch(self) -> StepResult:
        if self.failed_to_start is not None:
            return StepResult(reason=Reason.FAILED, error=self.failed_to_start)
        grace = self.executor.deadline_grace
        pulling_since = math.inf
        while True:
            if self._aborted:
                return self._with_files(Reason.ABORTED, "aborted")
            if (left := self.job.seconds_left()) is not None and left <= -grace:
                self._delete_job("past its deadline")
                error = f"the step ran past its deadline; its Job was deleted {grace:g} s later"
                return self._with_files(Reason.TIMEOUT, error)
            try:
                job, pod = self._read()
            except ApiException as error:
                if error.status == 404:
                    return self._with_files(Reason.FAILED, f"the Job {self.name} was deleted outside Himalia")
                self.say(f"cannot read the Job's state, retrying: {api_message(error)}")
                job = pod = None
            except urllib3.exceptions.HTTPError as error:
                self.say(f"cannot reach the Kubernetes API, retrying: {error}")
                job = pod = None
            if pod is not None:
                self._report(pod)
            if _condition(job, "Complete") is not None:
                if self.delivered is None:
                    return StepResult(reason=Reason.FAILED, error="the step's pod ended without sending its result")
                return self.delivered
            if (failed := _condition(job, "Failed")) is not None:
                return self._with_files(Reason.FAILED, self._failure(failed, pod))
            problem = self._pull_failure(pod)
            pulling_since = math.inf if problem is None else min(pulling_since, time.monotonic())
            if problem is not None and time.monotonic() - pulling_since >= self.executor.pull_grace:
                self._delete_job("the image cannot be pulled")
                return StepResult(reason=Reason.FAILED, error=problem)
            self._wake.wait(self.executor.poll_interval)
            self._wake.clear()

    def _with_files(self, reason: Reason, error: str) -> StepResult:
        """A failure, with the executed notebook and report if the pod had sent them."""
        files = self.delivered
        executed, html = (files.executed, files.html) if files else (None, None)
        return StepResult(reason=reason, error=error, executed=executed, html=html)

    # -- reading the pod ----------------------------------------------------------------------------

    def _read(self) -> tuple[Any, Any]:
        """The Job, and its newest pod if it has one yet."""
        job = self.executor.batch.read_namespaced_job_status(self.name, self.namespace)
        pods = self.executor.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.name}")
        return job, max(pods.items, key=_creation, default=None)

    def _report(self, pod: Any) -> None:
        """Say when the pod's phase or waiting reason changes; follow its log once it started."""
        state = _container_state(pod)
        waiting = state.waiting.reason if state and state.waiting else ""
        seen = (pod.status.phase or "", waiting or "")
        if seen != self._seen:
            self._seen = seen
            where = f" on {pod.spec.node_name}" if pod.spec and pod.spec.node_name else ""
            self.say(f"pod {pod.metadata.name}: {seen[0]}{f' ({seen[1]})' if seen[1] else ''}{where}")
        if self._log_thread is None and state is not None and (state.running or state.terminated):
            self._log_thread = threading.Thread(
                target=self._follow_log, args=(pod.metadata.name,), name=f"himalia-log-{self.name}", daemon=True
            )
            self._log_thread.start()

    def _follow_log(self, pod_name: str) -> None:
        try:
            self._log_stream = self.executor.core.read_namespaced_pod_log(
                pod_name, self.namespace, container=CONTAINER, follow=True, _preload_content=False
            )
            for line in self._log_stream:
                self.on_output(line.decode("utf-8", "replace"))
        except ApiException as error:
            self.say(f"cannot follow the pod's log: {api_message(error)}")
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            if not (self._deleted or self._released):  # then the stream was cut on purpose
                self.say(f"the pod's log stream ended: {error}")

    def _pull_failure(self, pod: Any) -> str | None:
        state = _container_state(pod) if pod is not None else None
        if state is None or state.waiting is None or state.waiting.reason not in PULL_FAILURES:
            return None
        return (
            f"cannot pull the image '{self.executor.image}' ({state.waiting.reason}): "
            f"{state.waiting.message or 'the kubelet gave no reason'}"
        )

    def _failure(self, failed: Any, pod: Any) -> str:
        """Why the Job failed, in the terms of its pod when the pod tells."""
        if failed.reason == "DeadlineExceeded":
            return f"Kubernetes stopped the Job at its deadline (DeadlineExceeded): {failed.message}"
        if pod is not None and pod.status.reason == "Evicted":
            return f"the pod was evicted (Evicted): {pod.status.message}"
        state = _container_state(pod) if pod is not None else None
        ended = state.terminated if state is not None else None
        if ended is not None and ended.reason == "OOMKilled":
            if self.tier is None:
                return "ran out of memory (OOMKilled): no tier limits the step, so the node ran out"
            limit = self.tier.memory_limit
            allows = f"allows {format_bytes(limit)}" if limit is not None else "sets no memory limit"
            return f"ran out of memory (OOMKilled): the tier '{self.tier.name}' {allows}"
        if ended is not None:
            detail = f": {ended.message}" if ended.message else ""
            return f"the step's container exited with code {ended.exit_code} ({ended.reason}){detail}"
        return f"the Job failed ({failed.reason}): {failed.message}"

    # -- cleanup ------------------------------------------------------------------------------------

    def _delete_job(self, why: str) -> None:
        """Delete the Job and, in the background, its pod and Secret (they are owned by it)."""
        with self._lock:
            if self._deleted or not self.created:
                return
            self._deleted = True
        self.say(f"deleting Job {self.name}: {why}")
        try:
            self.executor.batch.delete_namespaced_job(self.name, self.namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                log.warning("Could not delete Job %s: %s", self.name, api_message(error))
        except urllib3.exceptions.HTTPError as error:
            log.warning("Could not delete Job %s: %s", self.name, error)

    def _release(self) -> None:
        """Refuse later results, delete the token's Secret, and let the log follower finish: the
        last lines of a pod that ended are still coming; a deleted pod's are not worth waiting for."""
        self.executor._forget(self)
        self.executor.delete_secret(self.secret_name)
        if self._log_thread is not None:
            self._log_thread.join(timeout=1 if self._deleted else 10)
            if self._log_thread.is_alive() and self._log_stream is not None:
                self._released = True
                self._log_stream.close()


def _creation(pod: Any) -> datetime:
    created: datetime = pod.metadata.creation_timestamp
    return created


def _container_state(pod: Any) -> Any:
    for status in (pod.status.container_statuses if pod.status else None) or []:
        if status.name == CONTAINER:
            return status.state
    return None


class KubernetesExecutor(Executor):
    """Runs each notebook step in its own Kubernetes Job (see the module docstring), configured as
    ``c.KubernetesExecutor.*``; the ``HIMALIA_KUBERNETES_*`` variables give the defaults.

    ``tier_for`` names the tier of a job's ``tier`` (``None`` when unset or unknown: the pod then
    gets no resource requests or limits). ``api_client`` is the Kubernetes API's client (default:
    in-cluster, else from kubeconfig).
    """

    isolates_code = True  # each step is a pod of its own, without the control plane's files or keys

    namespace = Unicode(config=True, help="Namespace of the Jobs ($HIMALIA_KUBERNETES_NAMESPACE, else default).")
    image = Unicode(
        config=True,
        help="Image of the Jobs' pods: Python with himalia and the users' libraries ($HIMALIA_KUBERNETES_IMAGE).",
    )
    api_url = Unicode(
        config=True,
        help="""The control plane's API as pods reach it, e.g. `http://himalia.jhub.svc:8080/himalia/api/v1`
        ($HIMALIA_KUBERNETES_API_URL, else the API as the control plane serves it); pods fetch their
        notebook and send results there with the run's token.""",
    )
    service_account = Unicode(
        config=True, help="Service account of the Jobs' pods ($HIMALIA_KUBERNETES_SERVICE_ACCOUNT); empty: the default."
    )
    image_pull_secrets = List(Unicode(), config=True, help="Secrets the pods' image is pulled with.")
    poll_interval = Float(2.0, min=0.0, config=True, help="Seconds between two looks at a running step's Job.")
    pull_grace = Float(
        300.0, min=0.0, config=True, help="Seconds an image that cannot be pulled is retried before the step fails."
    )
    ttl_after_finished = Int(
        3600, min=0, config=True, help="Seconds Kubernetes keeps a finished Job and its pod (for `kubectl logs`)."
    )
    deadline_grace = Float(
        15.0,
        min=0.0,
        config=True,
        help="""Seconds a pod may run past its step's deadline (it stops the step there itself and
        sends the executed notebook) before the executor deletes its Job.""",
    )

    _default_namespace = environment_default("namespace", "HIMALIA_KUBERNETES_NAMESPACE", "default")
    _default_image = environment_default("image", "HIMALIA_KUBERNETES_IMAGE", "")
    _default_api_url = environment_default("api_url", "HIMALIA_KUBERNETES_API_URL", "")
    _default_service_account = environment_default("service_account", "HIMALIA_KUBERNETES_SERVICE_ACCOUNT", "")

    def __init__(self, *, api_client: ApiClient | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.image:
            raise InvalidInput("The Kubernetes executor needs an image: set KubernetesExecutor.image.")
        #: Where pods reach the API.
        self.step_api_url = self.api_url or self.served_api_url
        self.api_client = api_client if api_client is not None else load_api_client()
        self.batch = BatchV1Api(self.api_client)
        self.core = CoreV1Api(self.api_client)
        self._steps: dict[tuple[int, str], _KubernetesStep] = {}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "image": self.image, "namespace": self.namespace}

    # -- manifests ----------------------------------------------------------------------------------

    def labels(self, job: StepJob) -> dict[str, str]:
        return {APP_LABEL: APP, RUN_LABEL: str(job.run_id), STEP_LABEL: _slug(job.step, 63)}

    def secret_manifest(self, job: StepJob, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-token", "namespace": self.namespace, "labels": self.labels(job)},
            "type": "Opaque",
            "stringData": {TOKEN_KEY: job.env.get("HIMALIA_TOKEN", "")},
        }

    def job_manifest(self, job: StepJob, name: str, tier: DescribeTier | None) -> dict[str, Any]:
        """The Job of one step; the run's token is only referenced, from the Secret."""
        env = {**job.env, "HIMALIA_API_URL": self.step_api_url, "HIMALIA_STEP": job.step, "PYTHONUNBUFFERED": "1"}
        variables: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items() if k != "HIMALIA_TOKEN"]
        variables.append(
            {"name": "HIMALIA_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{name}-token", "key": TOKEN_KEY}}}
        )
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "command": ["python", "-m", "himalia.execution.kubernetes.pod"],
            "env": variables,
            "securityContext": {"allowPrivilegeEscalation": False},
        }
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            # The notebook is anyone's code: it gets no credentials to the Kubernetes API.
            "automountServiceAccountToken": False,
            "containers": [container],
        }
        if tier is not None:
            container["resources"] = container_resources(tier)
            pod.update(scheduling(tier))
            volume, mount = shm_volume(tier), shm_volume_mount(tier)
            if volume is not None and mount is not None:
                pod["volumes"], container["volumeMounts"] = [volume], [mount]
        if self.service_account:
            pod["serviceAccountName"] = self.service_account
        if self.image_pull_secrets:
            pod["imagePullSecrets"] = [{"name": secret} for secret in self.image_pull_secrets]
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": self.ttl_after_finished,
            "template": {"metadata": {"labels": self.labels(job)}, "spec": pod},
        }
        if (left := job.seconds_left()) is not None:  # the whole step's, from now
            spec["activeDeadlineSeconds"] = math.ceil(max(left, 0) + self.deadline_grace) + DEADLINE_MARGIN
        metadata = {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(job),
            "annotations": {"himalia.io/step-name": job.step, "himalia.io/notebook": job.notebook},
        }
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}

    # -- Executor -----------------------------------------------------------------------------------

    def start(self, job: StepJob, on_output: Callable[[str], None]) -> StepHandle:
        tier = self.tier_for(job.tier)
        name = f"himalia-{job.run_id}-{_slug(job.step, 36)}-{secrets.token_hex(3)}"
        step = _KubernetesStep(self, job, name, tier, on_output)
        if tier is None:
            unknown = f"the tier '{job.tier}' does not exist" if job.tier else "the scenario names no tier"
            step.say(f"{unknown}: the pod gets no resource requests or limits")
        with self._lock:
            if (job.run_id, job.step) in self._steps:
                raise RuntimeError(f"run #{job.run_id} is already running step '{job.step}'")
            self._steps[job.run_id, job.step] = step
        try:
            self.core.create_namespaced_secret(self.namespace, V1Secret.model_validate(self.secret_manifest(job, name)))
            manifest = V1Job.model_validate(self.job_manifest(job, name, tier))
            created: Any = self.batch.create_namespaced_job(self.namespace, manifest)
            step.created = True
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": created.metadata.uid}
            self.core.patch_namespaced_secret(
                step.secret_name, self.namespace, {"metadata": {"ownerReferences": [owner]}}
            )
        except _TRANSIENT as error:
            reason = api_message(error) if isinstance(error, ApiException) else str(error)
            step.failed_to_start = f"Kubernetes did not accept the step's Job: {reason}"
            step.say(step.failed_to_start)
            step._delete_job("it could not be set up")
            return step
        sized = f" on tier '{tier.name}'" if tier is not None else ""
        step.say(f"Job {name} created in namespace {self.namespace}{sized}, image {self.image}")
        return step

    def close(self) -> None:
        self.api_client.close()

    # -- the pod's calls, through the API handlers --------------------------------------------------

    def running_job(self, run_id: int, step: str) -> StepJob:
        """The job of a step now running here, for its pod to fetch."""
        with self._lock:
            handle = self._steps.get((run_id, step))
        if handle is None:
            raise NotFound(f"Run #{run_id} has no step '{step}' running on Kubernetes.")
        return handle.job

    def running_file(self, run_id: int, step: str, digest: str) -> bytes:
        """A project file the job of a step now running lists, for its pod to fetch; no other."""
        if not any(file.digest == digest for file in self.running_job(run_id, step).files):
            raise NotFound(f"Step '{step}' of run #{run_id} has no project file {digest[:64]}.")
        try:
            return self.project_file(digest)
        except LookupError as error:
            raise NotFound(f"Step '{step}' of run #{run_id}: {error}.") from None

    def deliver(self, run_id: int, step: str, result: StepResult) -> None:
        """Hand a step's result, posted by its pod, to the waiting run; once per step."""
        with self._lock:
            handle = self._steps.get((run_id, step))
            if handle is None:
                raise NotFound(f"Run #{run_id} has no step '{step}' running on Kubernetes.")
            handle.accept(result)

    def _forget(self, step: _KubernetesStep) -> None:
        with self._lock:
            if self._steps.get((step.job.run_id, step.job.step)) is step:
                del self._steps[step.job.run_id, step.job.step]

    def delete_secret(self, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                log.warning("Could not delete Secret %s: %s", name, api_message(error))
        except urllib3.exceptions.HTTPError as error:
            log.warning("Could not delete Secret %s: %s", name, error)
