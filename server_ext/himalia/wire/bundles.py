"""Bundles on the wire: listing, creating, previewing an import and activating a version."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from himalia.wire.common import ConnectionName, LongText, Request

#: A bundle file in a JSON body: base64 of the zip (the request body limit bounds it).
BundleContent = Annotated[str, StringConstraints(min_length=1, max_length=360 * 1024 * 1024)]
ConnectionMap = Annotated[dict[ConnectionName, ConnectionName], Field(max_length=1000)]


class CreateBundle(Request):
    note: LongText = ""
    with_grants: bool = Field(False, description="Carry the project's group grants, by group name.")


class ImportBundle(Request):
    content: BundleContent = Field(description="The bundle file, base64-encoded.")
    map_connections: ConnectionMap = Field(
        default_factory=dict, description="The bundle's connection names mapped to this instance's."
    )
    activate: bool = Field(False, description="Make it the project's live definitions now, in one transaction.")


class PreviewBundle(Request):
    content: BundleContent = Field(description="The bundle file, base64-encoded.")
    map_connections: ConnectionMap = Field(default_factory=dict)


class ActivateBundle(Request):
    map_connections: ConnectionMap | None = Field(
        None, description="Replaces the mapping the version was imported with; by default that one applies."
    )


class BundleChange(BaseModel):
    kind: Literal["project", "dataset", "check", "scenario", "variable", "grant"]
    name: str
    change: Literal["added", "changed", "removed"]


class DescribeBundle(BaseModel):
    project: str
    version: int
    digest: str = Field(description="SHA-256 of the bundle file.")
    note: str
    origin: Literal["created", "imported"]
    signer: str = Field(description="The trusted name of the key that signed it.")
    created_by: str
    created_at: datetime
    connection_map: dict[str, str]
    size: int
    datasets: int
    scenarios: int
    active: bool = Field(description="The version the project's definitions were last activated from.")


class BundlePreview(BaseModel):
    """What importing (or activating) a bundle does: validated, with its difference to what is live."""

    bundle: DescribeBundle
    project_exists: bool
    changes: list[BundleChange]
    stored: bool = Field(description="The version is stored on this instance (imported now or earlier).")
    activated: bool


class SigningKey(BaseModel):
    public_key: str = Field(description="ed25519:<base64>: what an importing instance trusts.")
    fingerprint: str


class TrustKey(Request):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")]
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class DescribeTrustedKey(BaseModel):
    name: str
    public_key: str
    fingerprint: str
    source: Literal["store", "config", "instance"]
    added_by: str | None = None
    created_at: datetime | None = None
