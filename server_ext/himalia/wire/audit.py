"""What the audit page offers in its filters: the values the trail holds."""

from pydantic import BaseModel, Field


class AuditFacet(BaseModel):
    values: list[str] = Field(description="Sorted; at most the facet limit of them.")
    complete: bool = Field(description="False when the trail holds more values than these.")


class AuditFacets(BaseModel):
    """The distinct actors, actions, object types and projects of the trail, each list bounded."""

    actors: AuditFacet
    actions: AuditFacet
    object_types: AuditFacet
    projects: AuditFacet
