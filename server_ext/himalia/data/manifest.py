"""Declarative definitions: ``himalia apply -f FILE.yaml`` creates or updates datasets and checks.

The format (one project per file)::

    project: FRAUD
    datasets:
      - name: transactions_2018          # every field of a dataset, as in the REST API
        connection: warehouse
        table: transactions_2018
        probes: [record_count, column_count]
        freshness: {column: updated_at, max_age: 26h}   # optional: how old its data may be
        checks:                          # every field of a check, as in the REST API
          - {name: Columns 13, type: in_set, metric: column_count, values: [13]}
          - {name: Over 10k records, type: range, metric: record_count, min: 10000}

Applying is idempotent: what is already as described is left alone, a dataset's settings and
checks are updated in place, and nothing absent from the file is deleted. A dataset's location
(connection, table, query, path) is its identity: changing it is refused, not silently applied.
Every error names the file, the line and the field.
"""

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from himalia.core.documents import DocumentError, load_document
from himalia.core.errors import HimaliaError, NotFound
from himalia.data.checks import CheckService
from himalia.data.datasets import DatasetService
from himalia.identity.caller import Caller
from himalia.wire.common import ProjectKey
from himalia.wire.data import CheckSpec, CreateDataset, DescribeCheck, UpdateDataset


class DataServices(Protocol):
    """What applying a manifest uses of the control plane (a layer above ``data``, so not imported here)."""

    @property
    def datasets(self) -> DatasetService: ...

    @property
    def checks(self) -> CheckService: ...


LOCATION_FIELDS = ("connection", "table", "db_schema", "query", "path", "format")


class DatasetManifest(CreateDataset):
    checks: list[CheckSpec] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectKey
    datasets: list[DatasetManifest] = Field(default_factory=list)


class ManifestError(HimaliaError):
    status = 400


def load_manifest(text: str, filename: str = "<manifest>") -> Manifest:
    try:
        return load_document(text, Manifest, filename)
    except DocumentError as error:
        raise ManifestError(error.message, field=error.field) from None


def apply_manifest(plane: DataServices, caller: Caller, manifest: Manifest, filename: str = "<manifest>") -> list[str]:
    """Make the project's datasets and checks as described; return what was done, one line each."""
    key, done = manifest.project, []
    for index, wanted in enumerate(manifest.datasets):
        try:
            done += _apply_dataset(plane, caller, key, wanted)
        except HimaliaError as error:
            raise ManifestError(
                f"{filename}: datasets[{index}] ({wanted.name}): {error.message}", field=error.field
            ) from None
    return done


def _apply_dataset(plane: DataServices, caller: Caller, key: str, wanted: DatasetManifest) -> list[str]:
    spec = CreateDataset.model_validate(wanted.model_dump(exclude={"checks"}))
    try:
        current = plane.datasets.get_dataset(caller, key, wanted.name)
    except NotFound:
        plane.datasets.create_dataset(caller, key, spec)
        return [f"created dataset {key}/{wanted.name}", *_apply_checks(plane, caller, key, wanted, {})]
    moved = [f for f in LOCATION_FIELDS if getattr(current, f) != getattr(spec, f)]
    if moved:
        raise ManifestError(
            f"its {', '.join(moved)} differ from the existing dataset's; delete it first to move it", field=moved[0]
        )
    update = UpdateDataset(
        description=spec.description,
        probes=list(dict.fromkeys(spec.probes)),
        custom_metrics=spec.custom_metrics,
        auto_compute_after_build=spec.auto_compute_after_build,
        freshness=spec.freshness,
        conditions=spec.conditions,
    )
    if (
        update.model_dump()
        == UpdateDataset.model_validate(current.model_dump(include=set(UpdateDataset.model_fields))).model_dump()
    ):
        done = [f"unchanged dataset {key}/{wanted.name}"]
    else:
        plane.datasets.update_dataset(caller, key, wanted.name, update)
        done = [f"updated dataset {key}/{wanted.name}"]
    existing = {c.name: c for c in plane.checks.list_checks(caller, key, wanted.name)}
    return done + _apply_checks(plane, caller, key, wanted, existing)


def _apply_checks(
    plane: DataServices, caller: Caller, key: str, wanted: DatasetManifest, existing: dict[str, DescribeCheck]
) -> list[str]:
    done = []
    for check in wanted.checks:
        have = existing.get(check.name)
        if have is None:
            plane.checks.save_check(caller, key, wanted.name, check)
            done.append(f"created check {wanted.name}/{check.name}")
        elif CheckSpec.model_validate(have.model_dump(include=set(CheckSpec.model_fields))) == check:
            done.append(f"unchanged check {wanted.name}/{check.name}")
        else:
            plane.checks.save_check(caller, key, wanted.name, check, replace=check.name)
            done.append(f"updated check {wanted.name}/{check.name}")
    return done
