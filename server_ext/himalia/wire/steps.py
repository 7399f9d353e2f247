"""The notebook step job and its result: one contract for every executor.

The run engine builds a ``StepJob``; the local executor writes it to its worker's stdin, the
Kubernetes executor's pod fetches it from the API (``GET …/steps/{step}/job``); both run it with
:func:`himalia.execution.worker.execute` and answer with a ``StepResult`` (the local worker in a
file of its job folder, the pod with ``POST …/steps/{step}/result``).

A step's time limit is a ``deadline`` for the whole step, not a limit per cell: whatever runs it
stops at that instant, however many cells are left.

A job also lists the project files its notebook runs beside (``files``: path, SHA-256 and size of
each; the bytes come from the store, or through ``GET …/steps/{step}/files/{digest}`` for a pod)
and the notebook's folder among them (``folder``): the executor writes them under the job's
folder (:func:`himalia.execution.files.materialize`) and the notebook runs there.
"""

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

#: The longest error a result carries (a cell's traceback message can be long).
ERROR_LIMIT = 10_000
#: The longest project file path, and the longest name in it (Linux's NAME_MAX).
PATH_LIMIT, NAME_LIMIT = 1000, 255
_DIGEST = re.compile(r"[0-9a-f]{64}")


def project_path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file inside a project's tree (``None`` when it can): it must be
    relative, ``/``-separated, without ``.`` or ``..`` parts, empty parts, NUL or control
    characters, and within the length limits. Checked at save, in every job and when writing."""
    if not path:
        return "a path cannot be empty"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "a path must be UTF-8"
    if len(path) > PATH_LIMIT:
        return f"a path has at most {PATH_LIMIT} characters"
    if any(ord(character) < 32 or character in "\\\x7f" for character in path):
        return "a path cannot hold control characters, NUL or backslashes"
    if path.startswith("/"):
        return "a path must be relative to the project's folder, not absolute"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "a path cannot hold '..', '.' or empty parts"
        if len(part.encode()) > NAME_LIMIT:
            return f"a file or folder name has at most {NAME_LIMIT} bytes"
    return None


class ProjectFile(BaseModel):
    """One file of a project tree: where it goes, and the SHA-256 and size of its bytes."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Relative to the tree's root, '/'-separated.")
    digest: str = Field(description="SHA-256 of the content, hex.")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _inside(cls, path: str) -> str:
        problem = project_path_problem(path)
        if problem:
            raise ValueError(problem)
        return path

    @field_validator("digest")
    @classmethod
    def _sha256(cls, digest: str) -> str:
        if not _DIGEST.fullmatch(digest):
            raise ValueError("not a SHA-256 hex digest")
        return digest


class Reason(StrEnum):
    """How a notebook step ended."""

    OK = "ok"
    CELL_ERROR = "cell_error"
    KERNEL_DIED = "kernel_died"
    TIMEOUT = "timeout"
    ABORTED = "aborted"
    FAILED = "failed"


def _bytes_or_base64(value: Any) -> bytes:
    """Bytes as they are (from Python), a string as base64 (from JSON)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("not valid base64") from None
    raise ValueError("bytes or a base64 string expected")


#: File content: bytes in Python, base64 text on the wire.
Base64File = Annotated[
    bytes,
    PlainValidator(_bytes_or_base64),
    PlainSerializer(lambda value: base64.b64encode(value).decode("ascii"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "base64"}),
]


def deadline_after(seconds: float | None) -> datetime | None:
    """The deadline of a step that may run ``seconds`` from now (``None``: no limit)."""
    return None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)


class StepJob(BaseModel):
    """A notebook step as an executor runs it."""

    # Unknown fields are ignored, not refused: a pod's image may hold an older Himalia than its control plane.
    model_config = ConfigDict(frozen=True)

    run_id: int = Field(description="The run the step belongs to.")
    step: str = Field(description="The step's name in the scenario.")
    notebook: str = Field(description="The notebook's path in the project, for the log.")
    content: str = Field(description="The notebook snapshot the run uses, as JSON text.")
    parameters: dict[str, Any] = Field(description="Values for the parameters cell, typed.")
    env: dict[str, str] = Field(
        description="Environment variables of the step (the run's token among them); "
        "empty as a pod fetches it: its Job sets them."
    )
    kernel: str | None = Field(None, description="The kernel to start; none means the notebook's own.")
    deadline: AwareDatetime | None = Field(
        None, description="When the whole step must have ended, however many cells are left; none means no limit."
    )
    hide_code: bool = Field(False, description="Leave the code out of the HTML report.")
    tier: str | None = Field(None, description="The scenario's hardware tier (sizes a Kubernetes pod).")
    run_as: str | None = Field(None, description="The run-as user's login; the local executor runs the step as them.")
    files: list[ProjectFile] = Field(
        default_factory=list, description="The project files the notebook runs beside (the run's file tree)."
    )
    folder: str = Field("", description="The notebook's folder in that tree, where it runs; empty for the tree's root.")

    @field_validator("folder")
    @classmethod
    def _folder_inside(cls, folder: str) -> str:
        problem = project_path_problem(folder) if folder else None
        if problem:
            raise ValueError(problem)
        return folder

    def seconds_left(self) -> float | None:
        """Seconds until the deadline (negative once passed); ``None`` without one."""
        return None if self.deadline is None else (self.deadline - datetime.now(UTC)).total_seconds()


#: The most distributions a kernel environment lists.
MAX_PACKAGES = 5000
PackageName = Annotated[str, StringConstraints(max_length=200)]
PackageVersion = Annotated[str, StringConstraints(max_length=100)]


class KernelEnvironment(BaseModel):
    """What a notebook step's kernel ran on, as its own interpreter reports it: enough to say
    whether two runs had the same environment, and which packages differed."""

    model_config = ConfigDict(extra="forbid")

    kernel: Annotated[str, StringConstraints(max_length=200)] | None = None
    language: Annotated[str, StringConstraints(max_length=100)] | None = None
    python: Annotated[str, StringConstraints(max_length=100)] | None = Field(None, description="Its Python version.")
    executable: Annotated[str, StringConstraints(max_length=1000)] | None = None
    packages: dict[PackageName, PackageVersion] = Field(
        default_factory=dict, max_length=MAX_PACKAGES, description="Installed distributions and their versions."
    )
    digest: Annotated[str, StringConstraints(max_length=64)] = Field(
        "", description="SHA-256 of the interpreter's version and the sorted name==version lines."
    )


class StepResult(BaseModel):
    """The outcome of a notebook step, with what papermill and nbconvert produced."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    error: str | None = Field(None, max_length=ERROR_LIMIT, description="What went wrong, for the run's page.")
    environment: KernelEnvironment | None = Field(None, description="What the kernel ran on; None if unknown.")
    executed: Base64File | None = Field(None, description="The executed notebook, base64.")
    html: Base64File | None = Field(None, description="Its HTML report, base64.")

    @property
    def ok(self) -> bool:
        return self.reason == Reason.OK
