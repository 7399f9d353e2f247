"""The Kubernetes path, without a cluster: schemas, the official client, recorded API responses.

No Kubernetes API server runs here, so:

* every object Himalia generates (KubeSpawner's pod for each tier, the executor's Jobs and
  Secrets, the manifests in hub_config/kubernetes.md and the pieces of hub_config/values.yaml) is
  validated against the Kubernetes OpenAPI schemas by ``kubernetes-validate`` in strict mode;
* the executor drives the official ``kubernetes`` client, whose urllib3 pool manager is replaced by
  ``RecordedKubernetes``: it answers each request with API objects from
  ``tests/kubernetes_recordings`` (Jobs, pods and Status bodies written in the shape an API server
  sends them, not captured from a cluster, and themselves checked against the schemas) and records
  the requests, so the tests can say which Jobs and Secrets were created and deleted;
* the pod's side runs for real: the run-step handlers in a live API, and ``python -m
  himalia.execution.kubernetes.pod`` started by a small simulated kubelet with the environment of the Job's spec;
* hub_config/values.yaml is checked against the Zero to JupyterHub chart's values schema
  (tests/kubernetes_schemas).
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from unittest.mock import Mock
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes.config.kube_config
import kubernetes_asyncio.config.kube_config
import kubernetes_validate
import pytest
import urllib3
import yaml
from jupyterhub.objects import Hub, Server
from kubernetes.client import ApiClient, Configuration
from kubernetes_asyncio.client import ApiClient as AsyncApiClient
from kubespawner import KubeSpawner
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from himalia.api import API_PREFIX
from himalia.compute.resources import (
    container_resources,
    format_bytes,
    kubespawner_overrides,
    profile_entry,
    scheduling,
)
from himalia.compute.tiers import load_tiers_file
from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict, InvalidInput, NotFound
from himalia.execution.base import PRIVATE_ENVIRONMENT
from himalia.execution.kubernetes.executor import DEADLINE_MARGIN, KubernetesExecutor
from himalia.hub.kubespawner import KubernetesTierSpawner
from himalia.identity.caller import Caller
from himalia.scenarios.engine import RunEngine, StepServices
from himalia.scenarios.reporting import report_all
from himalia.store.orm import NotebookSnapshot, ScenarioRun
from himalia.wire.compute import DescribeTier
from himalia.wire.steps import Reason, StepJob, StepResult, deadline_after

from ..conftest import LiveAPI

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).parent / "kubernetes_recordings"
Z2JH_SCHEMA = Path(__file__).parent / "kubernetes_schemas" / "z2jh-values.schema.yaml"
#: The newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES = kubernetes_validate.utils.latest_version()
NAMESPACE = "himalia"
IMAGE = "registry.example.org/himalia/singleuser:0.1.0"
POD_API_URL = "http://hub:10101/services/himalia/himalia/api/v1"
TOKEN = "hml_run-token-for-the-tests-only"
TIERS = {
    name: DescribeTier(name=name, updated_at=datetime.now(UTC), **spec)
    for name, spec in yaml.safe_load((REPO / "hub_config" / "tiers.yaml").read_text())["tiers"].items()
}


@pytest.fixture
def backend() -> str:
    return "sqlite"


def valid(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest, once the Kubernetes schemas accept it (unknown fields are errors)."""
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    return manifest


def notebook_job(tier: str | None = "small", timeout: float | None = 1800, step: str = "Score") -> StepJob:
    return StepJob(
        run_id=7,
        step=step,
        notebook="notebooks/score.ipynb",
        content=json.dumps(new_notebook()),
        parameters={"threshold": 0.7},
        env={
            "HIMALIA_API_URL": "http://127.0.0.1:10101/services/himalia/himalia/api/v1",
            "HIMALIA_TOKEN": TOKEN,
            "HIMALIA_PROJECT": "FRAUD",
            "HIMALIA_RUN_ID": "7",
            "HIMALIA_SCENARIO": "daily_fraud_scoring",
            "HIMALIA_TIER": tier or "",
        },
        tier=tier,
        deadline=deadline_after(timeout),
    )


# -- a Kubernetes API server, recorded ------------------------------------------------------------

Reply = str | bytes | Callable[[], str | bytes]


class RecordedKubernetes:
    """The pool manager of the official client's REST layer, answering from recorded API objects.

    ``on(method, path, *replies)``: requests to ``path`` (a regular expression) get the replies in
    turn, the last one repeated. A reply is a recording's file name, literal bytes, or a function
    returning either (for state that follows the test). ``$JOB`` and ``$NAMESPACE`` in recordings
    become the name of the Job the client created and the namespace.
    """

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], int, list[Reply]]] = []
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.job = ""
        self._lock = threading.Lock()

    def on(self, method: str, path: str, *replies: Reply, status: int = 200) -> None:
        self.routes.insert(0, (method, re.compile(path), status, list(replies)))

    def client(self) -> ApiClient:
        client = ApiClient(Configuration(host="https://kubernetes.test"))
        client.rest_client.pool_manager = self  # type: ignore[assignment]
        return client

    def request(self, method: str, url: str, body: str | None = None, **_: Any) -> urllib3.HTTPResponse:
        parts = urlsplit(url)
        payload = json.loads(body) if body else None
        with self._lock:
            self.requests.append((method, parts.path, parse_qs(parts.query), payload))
            if method == "POST" and parts.path.endswith("/jobs") and payload:
                self.job = payload["metadata"]["name"]
            status, reply = self._reply(method, parts.path)
        content = reply() if callable(reply) else reply
        if isinstance(content, str):
            text = (RECORDINGS / content).read_text().replace("$JOB", self.job).replace("$NAMESPACE", NAMESPACE)
            content = text.encode()
        kind = "application/json" if content.startswith(b"{") else "text/plain"
        return urllib3.HTTPResponse(
            body=io.BytesIO(content),
            status=status,
            reason=HTTPStatus(status).phrase,
            headers={"Content-Type": kind},
            preload_content=False,
        )

    def _reply(self, method: str, path: str) -> tuple[int, Reply]:
        for route_method, pattern, status, replies in self.routes:
            if route_method == method and pattern.fullmatch(path):
                return status, replies.pop(0) if len(replies) > 1 else replies[0]
        raise AssertionError(f"no recording for {method} {path}")

    def clear(self) -> None:
        """The client closes its pool manager when it is closed."""

    def made(self, method: str, path: str) -> list[tuple[dict[str, list[str]], Any]]:
        """Query and body of each request made to ``path`` (a regular expression)."""
        return [(query, body) for m, p, query, body in self.requests if m == method and re.fullmatch(path, p)]


SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


def cluster(jobs: list[Reply], pods: list[Reply], log: Reply = "pod-log.txt") -> RecordedKubernetes:
    """A cluster where the step's Job and pod go through ``jobs`` and ``pods``, one per poll."""
    k8s = RecordedKubernetes()
    k8s.on("POST", SECRETS, "secret-created.json", status=201)
    k8s.on("POST", JOBS, "job-created.json", status=201)
    k8s.on("PATCH", SECRETS + "/[^/]+", "secret-owned.json")
    k8s.on("GET", JOBS + "/[^/]+/status", *jobs)
    k8s.on("GET", PODS, *pods)
    k8s.on("GET", PODS + "/[^/]+/log", log)
    k8s.on("DELETE", JOBS + "/[^/]+", "status-job-deleted.json")
    k8s.on("DELETE", SECRETS + "/[^/]+", "status-secret-deleted.json")
    return k8s


def executor_on(k8s: RecordedKubernetes, **settings: Any) -> KubernetesExecutor:
    return KubernetesExecutor(
        namespace=NAMESPACE,
        image=IMAGE,
        api_url=POD_API_URL,
        tier_for=lambda name: TIERS.get(name or ""),
        poll_interval=0.01,
        api_client=k8s.client(),
        **settings,
    )


class Output(list[str]):
    """What a step streams to the run's log."""

    def __call__(self, text: str) -> None:
        self.append(text)

    @property
    def text(self) -> str:
        return "".join(self)


# -- tiers: KubeSpawner and the executor's manifests -----------------------------------------------


class MockUser(Mock):
    """A hub user as KubeSpawner's own tests build it."""

    name = "alice"
    server = Server()

    def __init__(self, **attributes: Any) -> None:
        super().__init__()
        for key, value in attributes.items():
            setattr(self, key, value)

    @property
    def escaped_name(self) -> str:
        return str(self.name)

    @property
    def url(self) -> str:
        return str(self.server.url)


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kubeconfig for the clients configured on construction (KubeSpawner's, the executor's), never used here."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": "https://kubernetes.test"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "unused"}}],
            }
        )
    )
    monkeypatch.setattr(kubernetes_asyncio.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


HOME_VOLUME = {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}
DEDICATED = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}


@pytest.mark.parametrize("name", TIERS)
async def test_kubespawner_pod_of_each_tier(name: str, kubeconfig: None) -> None:
    """The tier chosen in the spawn form, applied by KubeSpawner itself, gives a valid pod of that size."""
    tier = TIERS[name]
    spawner = KubeSpawner(_mock=True, hub=Hub(), user=MockUser(name="alice"))
    # As Zero to JupyterHub configures them: the tier's overrides must add to these, not replace them.
    spawner.volumes = [HOME_VOLUME]
    spawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    spawner.tolerations = [DEDICATED]
    spawner.profile_list = [profile_entry(t) for t in TIERS.values()]
    spawner.user_options = {"profile": name}
    await spawner.load_user_options()
    async with AsyncApiClient() as client:
        pod = valid(client.sanitize_for_serialization(await spawner.get_pod_manifest()))

    assert set(kubespawner_overrides(tier)) <= set(KubeSpawner.class_trait_names())
    container = pod["spec"]["containers"][0]
    resources = container["resources"]
    assert float(resources["requests"]["cpu"]) == tier.cpu_request
    assert float(resources["limits"]["cpu"]) == tier.cpu_limit
    assert int(resources["requests"]["memory"]) == tier.memory_request
    assert int(resources["limits"]["memory"]) == tier.memory_limit
    assert {"name": "HIMALIA_TIER", "value": name} in container["env"]
    assert pod["spec"].get("nodeSelector") == (tier.node_selector or None)
    assert pod["spec"]["tolerations"] == [DEDICATED, *(t.model_dump(exclude_none=True) for t in tier.tolerations)]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["home"] == HOME_VOLUME and mounts["home"] == "/home/jovyan"
    if tier.shm_size:
        assert mounts["himalia-shm"] == "/dev/shm"
        assert volumes["himalia-shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": str(tier.shm_size)}
    else:
        assert "himalia-shm" not in volumes
    if tier.gpus:
        assert resources["limits"][tier.gpu_resource] == resources["requests"][tier.gpu_resource] == str(tier.gpus)


async def test_tier_overrides_add_to_keyed_volumes_and_tolerations(kubeconfig: None) -> None:
    """KubeSpawner also takes volumes and tolerations as {key: item}; the tier adds its own there too."""
    spawner = KubeSpawner(_mock=True, hub=Hub(), user=MockUser(name="alice"))
    spawner.volumes = {"home": HOME_VOLUME}
    spawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}
    spawner.tolerations = {"dedicated": DEDICATED}
    spawner.profile_list = [profile_entry(TIERS["gpu"])]
    await spawner.load_user_options()
    async with AsyncApiClient() as client:
        pod = valid(client.sanitize_for_serialization(await spawner.get_pod_manifest()))
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"home", "himalia-shm"}
    assert {m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]} == {"home", "himalia-shm"}
    assert {t["key"] for t in pod["spec"]["tolerations"]} == {"hub.jupyter.org/dedicated", "nvidia.com/gpu"}


def test_profile_entries_of_the_seed_tiers() -> None:
    entries = [profile_entry(tier) for tier in TIERS.values()]
    assert [e["slug"] for e in entries] == ["small", "medium", "large", "gpu"]
    assert [e["default"] for e in entries] == [True, False, False, False]
    assert entries[0]["display_name"] == "Small"
    assert entries[0]["description"] == "Exploring and light analysis. Everyone may use it."
    assert entries[3]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}


def test_tier_quantities() -> None:
    assert container_resources(TIERS["small"]) == {
        "requests": {"cpu": "500m", "memory": str(2**30)},
        "limits": {"cpu": "1", "memory": str(2 * 2**30)},
    }
    assert container_resources(TIERS["gpu"])["requests"]["nvidia.com/gpu"] == "1"
    assert scheduling(TIERS["small"]) == {}
    assert scheduling(TIERS["gpu"]) == {
        "nodeSelector": {"himalia.io/node-pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    assert [format_bytes(n) for n in (2**31, 3 * 2**20, 1536 * 2**20, 10**9 + 1)] == [
        "2Gi",
        "3Mi",
        "1536Mi",
        "1000000001",
    ]


@pytest.mark.parametrize("name", [*TIERS, None])
def test_executor_manifests_of_each_tier(name: str | None) -> None:
    executor = executor_on(RecordedKubernetes())
    job = notebook_job(tier=name)
    tier = TIERS[name] if name else None
    secret = valid(executor.secret_manifest(job, "himalia-7-score-a1b2c3"))
    manifest = valid(executor.job_manifest(job, "himalia-7-score-a1b2c3", tier))

    spec = manifest["spec"]
    deadline = 1800 + executor.deadline_grace + DEADLINE_MARGIN  # Kubernetes acts only when the control plane is gone
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, deadline, 3600)
    labels = {"app.kubernetes.io/name": "himalia-run", "himalia.io/run-id": "7", "himalia.io/step": "score"}
    assert manifest["metadata"]["labels"] == spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "himalia.execution.kubernetes.pod"]
    assert container.get("resources") == (container_resources(tier) if tier else None)
    assert pod.get("nodeSelector") == (tier.node_selector or None if tier else None)
    assert ("volumes" in pod) == bool(tier and tier.shm_size)
    assert secret["stringData"] == {"token": TOKEN}
    assert TOKEN not in json.dumps(manifest)
    env = {e["name"]: e for e in container["env"]}
    assert env["HIMALIA_TOKEN"] == {
        "name": "HIMALIA_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "token"}},
    }
    assert env["HIMALIA_API_URL"]["value"] == POD_API_URL
    assert env["HIMALIA_STEP"]["value"] == "Score"
    assert not set(env) & set(PRIVATE_ENVIRONMENT)


def test_broken_manifests_are_rejected() -> None:
    """The validation is real: a misspelt field, a wrong type and a bad quantity are refused."""
    manifest = executor_on(RecordedKubernetes()).job_manifest(notebook_job(), "himalia-7-score-a1b2c3", TIERS["gpu"])
    valid(manifest)
    typo = json.loads(json.dumps(manifest))
    typo["spec"]["backofLimit"] = typo["spec"].pop("backoffLimit")
    wrong_type = json.loads(json.dumps(manifest))
    wrong_type["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = 7
    no_image = json.loads(json.dumps(manifest))
    del no_image["spec"]["template"]["spec"]["containers"][0]["command"]
    no_image["spec"]["template"]["spec"]["containers"][0]["name"] = None
    for broken in (typo, wrong_type, no_image):
        with pytest.raises(kubernetes_validate.ValidationError):
            valid(broken)


def test_the_recordings_are_api_objects() -> None:
    """Every recorded Job, pod list and Secret is one the API server could have sent."""
    for path in sorted(RECORDINGS.glob("*.json")):
        body = json.loads(path.read_text().replace("$JOB", "himalia-7-score-a1b2c3").replace("$NAMESPACE", NAMESPACE))
        if body["kind"] != "Status":  # meta/v1 Status has no schema of its own in kubernetes-validate
            valid(body)


# -- the executor against recorded responses --------------------------------------------------------


def test_success_returns_the_delivered_result() -> None:
    k8s = cluster(
        ["job-active.json", "job-active.json", "job-complete.json"],
        ["pods-none.json", "pods-running.json", "pods-succeeded.json"],
    )
    executor, output = executor_on(k8s), Output()
    handle = executor.start(notebook_job(), output)
    assert executor.running_job(7, "Score").notebook == "notebooks/score.ipynb"
    delivered = StepResult(reason=Reason.OK, executed=b'{"cells": []}', html=b"<html></html>")
    executor.deliver(7, "Score", delivered)

    assert handle.wait() is delivered
    assert len(k8s.made("GET", JOBS + "/[^/]+/status")) == 3, "the result is returned once the Job completed"
    assert "scored 1288 transactions, 17 above the threshold\n" in output
    assert f"[kubernetes] Job {k8s.job} created in namespace himalia on tier 'small'" in output.text
    assert k8s.made("DELETE", f"{SECRETS}/{k8s.job}-token"), "the token's Secret is deleted at once"
    assert not k8s.made("DELETE", JOBS + "/.+"), "the Job stays for ttlSecondsAfterFinished"
    with pytest.raises(NotFound, match="Run #7 has no step 'Score' running on Kubernetes"):
        executor.deliver(7, "Score", delivered)
    executor.close()


def test_a_result_is_accepted_once_and_for_a_running_step_only() -> None:
    executor = executor_on(cluster(["job-active.json"], ["pods-running.json"]))
    handle = executor.start(notebook_job(), Output())
    with pytest.raises(NotFound):
        executor.deliver(7, "Other step", StepResult(reason=Reason.OK))
    with pytest.raises(NotFound):
        executor.running_job(8, "Score")
    executor.deliver(
        7, "Score", StepResult(reason=Reason.CELL_ERROR, error="cell 2: ZeroDivisionError: division by zero")
    )
    with pytest.raises(Conflict, match="already received the result"):
        executor.deliver(7, "Score", StepResult(reason=Reason.OK))
    handle.abort()
    assert handle.wait().reason == "aborted"


def test_a_step_that_ends_without_its_result_fails() -> None:
    k8s = cluster(["job-active.json", "job-complete.json"], ["pods-running.json", "pods-succeeded.json"])
    result = executor_on(k8s).start(notebook_job(), Output()).wait()
    assert (result.reason, result.error) == ("failed", "the step's pod ended without sending its result")


def test_out_of_memory_names_the_tier_limit() -> None:
    k8s = cluster(["job-active.json", "job-failed.json"], ["pods-running.json", "pods-oomkilled.json"])
    result = executor_on(k8s).start(notebook_job(tier="small"), Output()).wait()
    assert (result.reason, result.error) == ("failed", "ran out of memory (OOMKilled): the tier 'small' allows 2Gi")


def test_an_image_that_cannot_be_pulled_fails_the_step_and_deletes_the_job() -> None:
    k8s = cluster(["job-active.json"], ["pods-image-pull-backoff.json"])
    output = Output()
    result = executor_on(k8s, pull_grace=0).start(notebook_job(), output).wait()
    assert result.reason == "failed"
    assert result.error is not None
    assert result.error.startswith(f"cannot pull the image '{IMAGE}' (ImagePullBackOff): Back-off pulling image")
    assert result.error.endswith("registry.example.org/himalia/singleuser:0.1.0: not found")
    deleted = k8s.made("DELETE", f"{JOBS}/{k8s.job}")
    assert [query for query, _ in deleted] == [{"propagationPolicy": ["Background"]}]
    assert f"pod {k8s.job}-x2k9d: Pending (ImagePullBackOff) on gke-himalia-pool-1-5c2f9a7d-q8wz" in output.text


def test_a_pull_back_off_within_the_grace_is_waited_out() -> None:
    k8s = cluster(
        ["job-active.json", "job-active.json", "job-active.json", "job-complete.json"],
        ["pods-image-pull-backoff.json", "pods-image-pull-backoff.json", "pods-running.json", "pods-succeeded.json"],
    )
    executor = executor_on(k8s, pull_grace=60)
    handle = executor.start(notebook_job(), Output())
    executor.deliver(7, "Score", StepResult(reason=Reason.OK))
    assert handle.wait().reason == "ok"
    assert not k8s.made("DELETE", JOBS + "/.+")


def test_an_evicted_pod_says_why() -> None:
    k8s = cluster(["job-active.json", "job-failed.json"], ["pods-running.json", "pods-evicted.json"])
    result = executor_on(k8s).start(notebook_job(), Output()).wait()
    assert result.reason == "failed"
    assert result.error == (
        "the pod was evicted (Evicted): The node was low on resource: memory. Threshold quantity: 100Mi, available: "
        "87340Ki. Container notebook was using 1843276Ki, request is 1Gi, has larger consumption of memory. "
    )


def test_kubernetes_deadline_exceeded() -> None:
    k8s = cluster(["job-active.json", "job-deadline-exceeded.json"], ["pods-running.json", "pods-none.json"])
    result = executor_on(k8s).start(notebook_job(), Output()).wait()
    assert (result.reason, result.error) == (
        "failed",
        "Kubernetes stopped the Job at its deadline (DeadlineExceeded): Job was active longer than specified deadline",
    )


def test_the_activity_deadline_is_the_whole_steps() -> None:
    """A step started late in its scenario gets what is left of it, and Kubernetes' own deadline follows."""
    executor = executor_on(RecordedKubernetes(), deadline_grace=10)
    job = notebook_job().model_copy(update={"deadline": deadline_after(100.4)})
    manifest = valid(executor.job_manifest(job, "himalia-7-score-a1b2c3", None))
    assert manifest["spec"]["activeDeadlineSeconds"] == 101 + 10 + DEADLINE_MARGIN
    late = job.model_copy(update={"deadline": deadline_after(-5)})
    assert executor.job_manifest(late, "himalia-7-score-a1b2c3", None)["spec"]["activeDeadlineSeconds"] == (
        10 + DEADLINE_MARGIN
    )


def test_timeout_deletes_the_job() -> None:
    """The pod stops its step at the deadline itself; a pod that has not ended ``deadline_grace`` later is deleted."""
    k8s = cluster(["job-active.json"], ["pods-running.json"])
    started = time.monotonic()
    result = executor_on(k8s, deadline_grace=0.3).start(notebook_job(timeout=0.2), Output()).wait()
    assert 0.5 <= time.monotonic() - started < 5
    assert (result.reason, result.error) == (
        "timeout",
        "the step ran past its deadline; its Job was deleted 0.3 s later",
    )
    assert [query for query, _ in k8s.made("DELETE", f"{JOBS}/{k8s.job}")] == [{"propagationPolicy": ["Background"]}]
    assert k8s.made("DELETE", f"{SECRETS}/{k8s.job}-token")


def test_abort_deletes_the_job() -> None:
    k8s = cluster(["job-active.json"], ["pods-running.json"])
    handle = executor_on(k8s).start(notebook_job(), Output())
    threading.Timer(0.1, handle.abort).start()
    result = handle.wait()
    handle.abort()
    assert (result.reason, result.error) == ("aborted", "aborted")
    assert len(k8s.made("DELETE", f"{JOBS}/{k8s.job}")) == 1


def test_a_refused_job_fails_the_step_and_leaves_nothing_behind() -> None:
    k8s = cluster(["job-active.json"], ["pods-none.json"])
    k8s.on("POST", JOBS, "status-jobs-forbidden.json", status=403)
    result = executor_on(k8s).start(notebook_job(), Output()).wait()
    assert result.reason == "failed"
    assert result.error == (
        "Kubernetes did not accept the step's Job: 403 Forbidden: jobs.batch is forbidden: User "
        '"system:serviceaccount:himalia:hub" cannot create resource "jobs" in API group "batch" in the namespace '
        '"himalia"'
    )
    assert k8s.made("DELETE", SECRETS + "/himalia-7-score-[0-9a-f]{6}-token")
    assert not k8s.made("GET", JOBS + "/.+")


def test_the_token_is_only_in_the_secret_owned_by_the_job() -> None:
    k8s = cluster(["job-active.json"], ["pods-none.json"])
    handle = executor_on(k8s).start(notebook_job(tier="gpu"), Output())
    handle.abort()
    handle.wait()
    [(_, secret)] = k8s.made("POST", SECRETS)
    [(_, job)] = k8s.made("POST", JOBS)
    [(_, patch)] = k8s.made("PATCH", SECRETS + "/.+")
    assert secret["stringData"] == {"token": TOKEN}
    assert TOKEN not in json.dumps(job)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HIMALIA_TOKEN"]["valueFrom"] == {"secretKeyRef": {"key": "token", "name": f"{k8s.job}-token"}}
    recorded_uid = json.loads((RECORDINGS / "job-created.json").read_text())["metadata"]["uid"]
    assert patch == {
        "metadata": {
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": k8s.job, "uid": recorded_uid}]
        }
    }
    valid(job)
    valid(secret)


def test_a_step_without_a_known_tier_runs_unsized() -> None:
    k8s = cluster(["job-active.json"], ["pods-none.json"])
    output = Output()
    handle = executor_on(k8s).start(notebook_job(tier="huge"), output)
    handle.abort()
    handle.wait()
    assert "[kubernetes] the tier 'huge' does not exist: the pod gets no resource requests or limits\n" in output
    [(_, job)] = k8s.made("POST", JOBS)
    assert "resources" not in job["spec"]["template"]["spec"]["containers"][0]


# -- the pod's side: the run-step handlers and execution.kubernetes.pod, with the run engine ----------


def on_kubernetes(plane: ControlPlane, api: LiveAPI, k8s: RecordedKubernetes) -> KubernetesExecutor:
    """Run scenarios in ``plane`` with the Kubernetes executor, pods reaching the live API, on the
    seed tiers (a scenario's tier must exist in the store)."""
    plane.api_url = api.base
    plane.tiers.seed(
        Caller.operator("test-setup", client_address="test"), load_tiers_file(REPO / "hub_config" / "tiers.yaml")
    )
    executor = KubernetesExecutor(
        namespace=NAMESPACE,
        image=IMAGE,
        api_url=api.base,
        tier_for=lambda name: TIERS.get(name or ""),
        poll_interval=0.05,
        api_client=k8s.client(),
    )
    plane.engine = RunEngine(
        plane.runs,
        executor,
        StepServices(plane.metrics, plane.checks, plane.variables, plane.connections, plane.datasets),
        plane.events,
        report=lambda reporters, summary: report_all(reporters, summary, plane.mailer, plane.webhook_signing_key),
        api_url=lambda: plane.api_url,
        log=plane.log,
    )
    plane.engine.start()
    return executor


SCORE = new_notebook(
    cells=[
        new_code_cell("threshold: float = 0.5", metadata={"tags": ["parameters"]}),
        new_code_cell("import os\nprint('tier', os.environ['HIMALIA_TIER'], 'threshold', threshold)"),
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
SCENARIO = {
    "id": "scoring",
    "name": "Scoring on Kubernetes",
    "tier": "small",
    "steps": [{"name": "Score data", "type": "notebook", "notebook": "score.ipynb", "parameters": {"threshold": 0.7}}],
}


def start_run(api: LiveAPI) -> int:
    saved = api.request(
        "PUT", "/projects/ALPHA/scenarios/scoring", json={"definition": SCENARIO, "notebooks": {"score.ipynb": SCORE}}
    )
    assert saved.status_code == 200, saved.text
    started = api.request("POST", "/projects/ALPHA/scenarios/scoring/run", json={})
    assert started.status_code == 201, started.text
    run_id: int = started.json()["id"]
    return run_id


def run_state(api: LiveAPI, run_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return dict(run)
        assert time.monotonic() < deadline, f"run {run_id} is still {run['state']}"
        time.sleep(0.1)


def snapshot_of(plane: ControlPlane, run_id: int, path: str) -> str:
    with plane.db.read() as session:
        run = session.get_one(ScenarioRun, run_id)
        return session.get_one(NotebookSnapshot, run.notebooks[path]).content


def until(condition: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_the_control_plane_selects_the_kubernetes_executor(plane: ControlPlane, kubeconfig: None) -> None:
    plane.executor_class = "himalia.execution.kubernetes.executor.KubernetesExecutor"
    plane.config.KubernetesExecutor.update(namespace=NAMESPACE, image=IMAGE, api_url=POD_API_URL)
    engine = plane.start_engine(schedule=False)
    executor = engine.executor
    assert isinstance(executor, KubernetesExecutor)
    assert (executor.namespace, executor.image, executor.step_api_url) == (NAMESPACE, IMAGE, POD_API_URL)
    assert executor.api_client.configuration.host == "https://kubernetes.test"
    engine.stop()


def test_the_kubernetes_executor_reads_its_environment(monkeypatch: pytest.MonkeyPatch, kubeconfig: None) -> None:
    """The ``HIMALIA_KUBERNETES_*`` variables are its defaults; without an API URL, pods use the served one."""
    monkeypatch.setenv("HIMALIA_KUBERNETES_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("HIMALIA_KUBERNETES_IMAGE", IMAGE)
    monkeypatch.setenv("HIMALIA_KUBERNETES_SERVICE_ACCOUNT", "runner")
    executor = KubernetesExecutor(served_api_url="http://plane:8080/himalia/api/v1")
    assert (executor.namespace, executor.image, executor.service_account) == (NAMESPACE, IMAGE, "runner")
    assert executor.step_api_url == "http://plane:8080/himalia/api/v1"
    monkeypatch.delenv("HIMALIA_KUBERNETES_IMAGE")
    with pytest.raises(InvalidInput, match=r"needs an image: set KubernetesExecutor\.image"):
        KubernetesExecutor()


def test_the_pod_fetches_its_step_and_reports_with_the_run_token(plane: ControlPlane, api: LiveAPI) -> None:
    reported = threading.Event()
    k8s = cluster(
        [lambda: "job-complete.json" if reported.is_set() else "job-active.json"],
        [lambda: "pods-succeeded.json" if reported.is_set() else "pods-running.json"],
    )
    on_kubernetes(plane, api, k8s)
    run_id = start_run(api)
    [(_, secret)] = until(lambda: k8s.made("POST", SECRETS))
    token = secret["stringData"]["token"]
    step = f"/projects/ALPHA/runs/{run_id}/steps/Score%20data"

    def call(method: str, path: str, token: str | None = None, role: str = "anonymous", **body: Any) -> Any:
        headers = {"Authorization": f"token {token}"} if token else {}
        return api.request(method, path, role, headers=headers, **body)

    fetched = until(lambda: call("GET", f"{step}/job", token))
    assert fetched.status_code == 200, fetched.text
    job = fetched.json()
    assert job["content"] == snapshot_of(plane, run_id, "score.ipynb")
    assert job["parameters"] == {"threshold": 0.7}
    assert (job["notebook"], job["kernel"], job["hide_code"]) == ("score.ipynb", None, False)
    assert job["env"] == {}, "the pod's Job sets its environment, the token from a Secret"
    assert job["deadline"] is None, "the scenario sets no time limit"

    assert call("GET", f"{step}/job", role="reader").status_code == 404, "another user learns nothing"
    refused = call("GET", f"{step}/job", role="admin")
    assert (refused.status_code, refused.json()["message"]) == (
        403,
        f"Only the token of run #{run_id} may fetch its steps and report their results.",
    )
    assert call("GET", f"/projects/BETA/runs/{run_id}/steps/Score%20data/job", token).status_code == 404
    assert call("GET", f"/projects/ALPHA/runs/{run_id}/steps/Other/job", token).status_code == 404
    assert call("GET", f"/projects/ALPHA/runs/{run_id + 1}/steps/Score%20data/job", token).status_code == 404
    bad = call("POST", f"{step}/result", token, json={"reason": "great"})
    assert (bad.status_code, bad.json()["field"]) == (400, "reason")

    executed = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    result = {"reason": "ok", "error": None, "executed": base64.b64encode(executed).decode(), "html": None}
    assert call("POST", f"{step}/result", token, json=result).status_code == 204
    again = call("POST", f"{step}/result", token, json=result)
    assert (again.status_code, again.json()["message"]) == (
        409,
        f"Run #{run_id} already received the result of step 'Score data'.",
    )
    reported.set()  # the pod exits: the Job completes
    run = run_state(api, run_id)
    assert run["state"] == "succeeded", run
    notebook = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}/notebook")
    assert notebook.content == executed
    assert call("GET", f"{step}/job", token).status_code == 401, "the run's token dies with the run"


class Kubelet:
    """Runs the pod of the Job the executor creates, as a process: the Job's command with the
    environment its spec gives (the token resolved from the Secret), as a node would."""

    def __init__(self, k8s: RecordedKubernetes, folder: Path) -> None:
        self.k8s, self.log = k8s, folder / "pod.log"
        self.process: subprocess.Popen[bytes] | None = None

    def create_job(self) -> str:
        [(_, secret)] = self.k8s.made("POST", SECRETS)
        [(_, job)] = self.k8s.made("POST", JOBS)
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENVIRONMENT}
        for variable in container["env"]:
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            env[variable["name"]] = secret["stringData"][reference["key"]] if reference else variable["value"]
        command = [sys.executable if part == "python" else part for part in container["command"]]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return "job-created.json"

    def ended(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def job(self) -> str:
        code = self.ended()
        return "job-active.json" if code is None else "job-complete.json" if code == 0 else "job-failed.json"

    def pods(self) -> str:
        code = self.ended()
        return "pods-running.json" if code is None else "pods-succeeded.json" if code == 0 else "pods-oomkilled.json"

    def follow_log(self) -> bytes:
        assert self.process is not None
        self.process.wait(timeout=120)
        return self.log.read_bytes()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_a_notebook_step_runs_in_its_pod(plane: ControlPlane, api: LiveAPI, tmp_path: Path) -> None:
    """End to end: the engine, the executor's Job, ``python -m himalia.execution.kubernetes.pod`` with papermill and a
    kernel, the handlers, back to the run's artifacts and log."""
    k8s = cluster(["job-active.json"], ["pods-none.json"])
    kubelet = Kubelet(k8s, tmp_path)
    k8s.on("POST", JOBS, kubelet.create_job, status=201)
    k8s.on("GET", JOBS + "/[^/]+/status", kubelet.job)
    k8s.on("GET", PODS, kubelet.pods)
    k8s.on("GET", PODS + "/[^/]+/log", kubelet.follow_log)
    on_kubernetes(plane, api, k8s)
    try:
        run_id = start_run(api)
        run = run_state(api, run_id)
    finally:
        kubelet.stop()
    assert run["state"] == "succeeded", (run, kubelet.log.read_text())
    log = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}/log").text
    assert f"[himalia] fetching step 'Score data' of run #{run_id}\n" in log
    assert "tier small threshold 0.7\n" in log
    assert "[himalia] sending the result: ok\n" in log
    # The pod's log is the run's: no papermill file lines, no kernel transport warning, no job folder.
    assert "Input Notebook" not in log and "without encryption" not in log and "himalia-step-" not in log, log
    executed = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}/notebook").json()
    assert executed["cells"][-1]["outputs"][0]["text"] == ["tier small threshold 0.7\n"]
    report = api.request("GET", f"/projects/ALPHA/scenarios/scoring/runs/{run_id}/report")
    assert report.status_code == 200 and "tier small threshold 0.7" in report.text
    assert k8s.made("DELETE", f"{SECRETS}/{k8s.job}-token")


def test_the_step_pod_says_why_it_cannot_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTERHUB_"))}
    env.update(HIMALIA_API_URL="http://127.0.0.1:9/himalia/api/v1", HIMALIA_TOKEN=TOKEN, HIMALIA_PROJECT="FRAUD")
    missing = subprocess.run(
        [sys.executable, "-m", "himalia.execution.kubernetes.pod"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert missing.stdout == (
        "[himalia] the step could not run: the pod's environment lacks HIMALIA_RUN_ID, HIMALIA_STEP; "
        "it is started by the Kubernetes executor\n"
    )


# -- hub_config: the chart's values and the manifests of the install guide -------------------------

VALUES = yaml.safe_load((REPO / "hub_config" / "values.yaml").read_text())
GUIDE = (REPO / "hub_config" / "kubernetes.md").read_text()


_CONDITIONS = {"oneOf", "anyOf", "allOf", "not", "if", "then", "else"}


def without_required(schema: Any) -> Any:
    """The schema minus the keys its objects require (helm checks those after merging the chart's
    defaults into the values), keeping ``required`` where it chooses between alternatives."""
    if isinstance(schema, dict):
        return {
            k: v if k in _CONDITIONS else without_required(v)
            for k, v in schema.items()
            if not (k == "required" and isinstance(v, list))
        }
    if isinstance(schema, list):
        return [without_required(item) for item in schema]
    return schema


def chart_errors(values: dict[str, Any]) -> list[str]:
    schema = without_required(yaml.safe_load(Z2JH_SCHEMA.read_text()))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def test_values_follow_the_chart_schema() -> None:
    assert chart_errors(VALUES) == []
    misspelt = json.loads(json.dumps(VALUES))
    misspelt["hub"]["extraEnvironment"] = misspelt["hub"].pop("extraEnv")
    misspelt["cull"]["timeout"] = "1h"
    assert sorted(chart_errors(misspelt)) == [
        "cull.timeout: '1h' is not of type 'integer', 'null'",
        "hub: Additional properties are not allowed ('extraEnvironment' was unexpected)",
    ]


def test_values_wire_the_control_plane() -> None:
    hub = VALUES["hub"]
    assert hub["db"]["type"] == "postgres"
    assert urlsplit(hub["db"]["url"]).password is None, "the password comes from a Secret"
    assert VALUES["cull"]["enabled"] is True
    assert VALUES["singleuser"]["profileList"] == []
    env = hub["extraEnv"]
    for name in ("PGPASSWORD", "HIMALIA_SERVICE_TOKEN", "HIMALIA_OIDC_CLIENT_SECRET", *PRIVATE_ENVIRONMENT[:3]):
        assert "secretKeyRef" in env[name]["valueFrom"], f"{name} must come from a Secret"
    container = {
        "name": "hub",
        "image": "hub",
        "env": [{"name": k, **({"value": v} if isinstance(v, str) else v)} for k, v in env.items()],
    }
    valid({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hub"}, "spec": {"containers": [container]}})
    assert env["HIMALIA_KUBERNETES_IMAGE"] == "{name}:{tag}".format(**VALUES["singleuser"]["image"])

    port = urlsplit(env["HIMALIA_KUBERNETES_API_URL"]).port
    assert env["HIMALIA_KUBERNETES_API_URL"] == f"http://hub:{port}/services/himalia{API_PREFIX}"
    [extra_port] = hub["service"]["extraPorts"]
    assert extra_port["port"] == extra_port["targetPort"] == port
    valid({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"}, "spec": {"ports": [extra_port]}})
    ingress, egress = hub["networkPolicy"]["ingress"], VALUES["singleuser"]["networkPolicy"]["egress"]
    for rules in ({"ingress": ingress}, {"egress": egress}):
        policy = {"podSelector": {}, **rules}
        valid(
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "hub"}, "spec": policy}
        )
    assert [rule["ports"] for rule in ingress + egress] == [[{"port": port}], [{"port": port}]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "himalia-run"}}} in ingress[0]["from"]


async def test_the_hub_configuration_on_kubernetes(monkeypatch: pytest.MonkeyPatch, kubeconfig: None) -> None:
    """``hub.extraConfig`` run as the chart runs it, after its own configuration."""
    for name, spec in VALUES["hub"]["extraEnv"].items():
        monkeypatch.setenv(name, spec if isinstance(spec, str) else f"<{name} from the pod spec>")
    for endpoint in ("AUTHORIZE", "TOKEN", "USERINFO"):  # else hub.setup asks the provider for them
        monkeypatch.setenv(f"HIMALIA_OIDC_{endpoint}_URL", f"https://login.example.org/{endpoint.lower()}")
    c = Config()
    c.KubeSpawner.profile_list = []  # what the chart sets from singleuser.profileList
    exec(VALUES["hub"]["extraConfig"]["himalia.py"], {"c": c})

    api = VALUES["hub"]["extraEnv"]["HIMALIA_KUBERNETES_API_URL"]
    [service] = [s for s in c.JupyterHub.services if s["name"] == "himalia"]
    assert service["url"] == "http://hub:10101" and service["command"][-4:] == ["--ip", "0.0.0.0", "--port", "10101"]
    executor_class = service["environment"]["HIMALIA_EXECUTOR_CLASS"]
    assert executor_class == "himalia.execution.kubernetes.executor.KubernetesExecutor"
    assert service["environment"]["HIMALIA_KUBERNETES_API_URL"] == api == c.TieredSpawner.himalia_server_url
    assert service["environment"]["HIMALIA_DB_URL"] == "<HIMALIA_DB_URL from the pod spec>"
    assert c.JupyterHub.spawner_class == "himalia.hub.kubespawner.KubernetesTierSpawner"
    spawner = KubernetesTierSpawner(_mock=True, config=c, hub=Hub(), user=MockUser(name="alice"))
    assert callable(spawner.profile_list), "the spawn form's profiles come from the control plane"


def guide_manifests() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE, flags=re.DOTALL)
    return [m for block in blocks for m in yaml.safe_load_all(textwrap.dedent(block)) if m]


_PATH = re.compile(
    r"/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?P<sub>/[^/]+)?)?"
)
_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


def test_the_guide_manifests_allow_what_the_executor_does() -> None:
    manifests = [valid(m) for m in guide_manifests()]
    assert [m["kind"] for m in manifests] == ["Role", "RoleBinding"]
    role, binding = manifests
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    k8s = cluster(
        ["job-active.json", "job-complete.json"],
        ["pods-image-pull-backoff.json", "pods-running.json", "pods-succeeded.json"],
    )
    executor = executor_on(k8s, deadline_grace=0)
    executor.start(notebook_job(), Output()).wait()
    executor.start(notebook_job(step="Again", timeout=0), Output()).wait()
    used = set()
    for method, path, _, _ in k8s.requests:
        match = _PATH.fullmatch(path)
        assert match, path
        resource = match["resource"] + (match["sub"] or "")
        verb = _VERBS.get(method) or ("get" if match["name"] else "list")
        used.add((verb, resource))
        assert any(
            (match["group"] or "") in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
            for rule in role["rules"]
        ), f"the Role does not allow {method} {path} ({verb} {resource})"
    assert used == {
        ("create", "secrets"),
        ("patch", "secrets"),
        ("delete", "secrets"),
        ("create", "jobs"),
        ("get", "jobs/status"),
        ("delete", "jobs"),
        ("list", "pods"),
        ("get", "pods/log"),
    }
