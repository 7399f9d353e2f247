"""What a bundle carries (``definitions.json``): a project's definitions, never its data or secrets.

Datasets name their connection only (its URL, parameters and secrets stay on each instance;
importing maps the name to one of the importer's connections), checks keep their stored
parameters, scenarios their definition, the digest of each notebook (whose canonical text is the
blob of that digest) and of each project file their notebooks run beside, the project its
variables, and grants, when asked for, name groups.
Run history, metric values and check results are never part of it.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from himalia.wire.common import CheckName, ConnectionName, DatasetName, GroupName, LongText, ProjectKey, ShortText
from himalia.wire.data import FreshnessSpec, RowCondition


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BundledProject(_Strict):
    key: ProjectKey
    name: ShortText
    description: LongText = ""
    tags: list[str] = Field(default_factory=list, max_length=100)


class BundledCheck(_Strict):
    name: CheckName
    type: str = Field(max_length=30)
    metric: str | None = Field(None, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


class BundledDataset(_Strict):
    name: DatasetName
    description: LongText = ""
    connection: ConnectionName
    kind: str = Field(pattern=r"^(table|query|files)$")
    location: dict[str, Any]
    columns: list[dict[str, str]] | None = None
    probes: list[str] = Field(default_factory=list, max_length=500)
    custom_metrics: list[dict[str, str]] = Field(default_factory=list, max_length=100)
    auto_compute_after_build: bool = False
    #: How old its data may be (``None``: no declaration; bundles made before it existed have none).
    freshness: FreshnessSpec | None = None
    #: Rules on its rows (bundles made before they existed have none).
    conditions: list[RowCondition] = Field(default_factory=list, max_length=100)
    checks: list[BundledCheck] = Field(default_factory=list, max_length=1000)


class BundledScenario(_Strict):
    id: str = Field(max_length=100)
    #: The stored ``ScenarioDefinition`` as JSON, validated again by the importer's rules.
    definition: dict[str, Any]
    #: Notebook path -> SHA-256 of its canonical text (the blob ``blobs/<digest>``).
    notebooks: dict[str, str] = Field(default_factory=dict)
    #: The project files its notebooks run beside: path -> SHA-256 (the blob); ``None`` without a tree.
    files: dict[str, str] | None = Field(None, max_length=100_000)


class BundledGrant(_Strict):
    group: GroupName
    permission: str = Field(max_length=40)


class BundleDefinitions(_Strict):
    project: BundledProject
    variables: dict[str, Any] = Field(default_factory=dict)
    datasets: list[BundledDataset] = Field(default_factory=list, max_length=10_000)
    scenarios: list[BundledScenario] = Field(default_factory=list, max_length=10_000)
    #: ``None``: the bundle leaves the importer's grants alone; a list replaces the project's group grants.
    grants: list[BundledGrant] | None = None

    def with_connections(self, mapping: dict[str, str]) -> "BundleDefinitions":
        """These definitions with connection names replaced as ``mapping`` says (datasets, SQL steps, triggers)."""
        if not mapping:
            return self
        datasets = [d.model_copy(update={"connection": mapping.get(d.connection, d.connection)}) for d in self.datasets]
        scenarios = [
            s.model_copy(update={"definition": _mapped_definition(s.definition, mapping)}) for s in self.scenarios
        ]
        return self.model_copy(update={"datasets": datasets, "scenarios": scenarios})

    def connection_names(self) -> set[str]:
        """Every connection these definitions name."""
        names = {d.connection for d in self.datasets}
        for scenario in self.scenarios:
            for part in [*scenario.definition.get("steps", []), *scenario.definition.get("triggers", [])]:
                if isinstance(part, dict) and isinstance(part.get("connection"), str):
                    names.add(part["connection"])
        return names


def _mapped_definition(definition: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    def mapped(part: Any) -> Any:
        if isinstance(part, dict) and isinstance(part.get("connection"), str):
            return {**part, "connection": mapping.get(part["connection"], part["connection"])}
        return part

    return {
        **definition,
        "steps": [mapped(p) for p in definition.get("steps", [])],
        "triggers": [mapped(p) for p in definition.get("triggers", [])],
    }
