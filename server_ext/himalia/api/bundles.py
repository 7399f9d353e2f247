"""``projects/{key}/bundles``: a project's signed versions, their import elsewhere and their activation.

Who may do what is the service's (``himalia.bundles.service``): creating and downloading need
``admin`` on the project; previewing, importing and activating ``admin`` on the target, or the
global ``create_projects`` when the project does not exist here yet; listing ``read_content``;
trusting a signing key, or no longer trusting one, a global administrator.
"""

from himalia.api.base import APIHandler, operation
from himalia.bundles.service import decode_content
from himalia.core.errors import NotFound
from himalia.wire.bundles import (
    ActivateBundle,
    BundlePreview,
    CreateBundle,
    DescribeBundle,
    DescribeTrustedKey,
    ImportBundle,
    PreviewBundle,
    SigningKey,
    TrustKey,
)

#: Versions beyond this are no version (and no integer overflow in the store's query).
MAX_VERSION = 2**31 - 1


def version_number(version: str) -> int:
    if not (version.isascii() and version.isdigit()) or len(version) > 10 or int(version) > MAX_VERSION:
        raise NotFound(f"There is no bundle version '{version}'.")
    return int(version)


class BundlesHandler(APIHandler):
    route = "/projects/{key}/bundles"

    @operation(
        "The project's stored bundle versions, the active one marked (read_content).", response=list[DescribeBundle]
    )
    async def get(self, key: str) -> list[DescribeBundle]:
        return await self.call(self.control_plane.bundles.list_bundles, self.caller, key)

    @operation(
        "Record the project's definitions as its next version, signed by this instance (project admin).",
        body=CreateBundle,
        response=DescribeBundle,
        status=201,
    )
    async def post(self, key: str, spec: CreateBundle) -> DescribeBundle:
        bundles = self.control_plane.bundles
        return await self.call(bundles.create_bundle, self.caller, key, spec.note, spec.with_grants)


class BundleDownloadHandler(APIHandler):
    route = "/projects/{key}/bundles/{version}/download"

    @operation("The bundle file of a stored version (project admin).", media_types=("application/zip",))
    async def get(self, key: str, version: str) -> None:
        bundles = self.control_plane.bundles
        name, content = await self.call(bundles.download, self.caller, key, version_number(version))
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(content)


class BundlePreviewHandler(APIHandler):
    route = "/projects/{key}/bundles/preview"

    @operation(
        "Validate a bundle file as activating it would and list what it changes; nothing is stored.",
        body=PreviewBundle,
        response=BundlePreview,
    )
    async def post(self, key: str, spec: PreviewBundle) -> BundlePreview:
        content = decode_content(spec.content)
        return await self.call(self.control_plane.bundles.preview, self.caller, key, content, spec.map_connections)


class BundleImportHandler(APIHandler):
    route = "/projects/{key}/bundles/import"

    @operation(
        "Store a verified bundle file and, with activate, make it live in one transaction.",
        body=ImportBundle,
        response=BundlePreview,
    )
    async def post(self, key: str, spec: ImportBundle) -> BundlePreview:
        content = decode_content(spec.content)
        bundles = self.control_plane.bundles
        return await self.call(bundles.import_bundle, self.caller, key, content, spec.map_connections, spec.activate)


class BundleActivateHandler(APIHandler):
    route = "/projects/{key}/bundles/{version}/activate"

    @operation(
        "Make a stored version live again (a rollback), all or nothing.", body=ActivateBundle, response=BundlePreview
    )
    async def post(self, key: str, version: str, spec: ActivateBundle) -> BundlePreview:
        bundles = self.control_plane.bundles
        return await self.call(bundles.activate, self.caller, key, version_number(version), spec.map_connections)


class SigningKeyHandler(APIHandler):
    route = "/bundle-keys/signing"

    @operation("This instance's public bundle signing key, for importers to trust.", response=SigningKey)
    async def get(self) -> SigningKey:
        return await self.call(self.control_plane.bundles.public_key)


class TrustedKeysHandler(APIHandler):
    route = "/bundle-keys/trusted"

    @operation("The keys whose bundles this instance imports (administrators).", response=list[DescribeTrustedKey])
    async def get(self) -> list[DescribeTrustedKey]:
        return await self.call(self.control_plane.bundles.list_trusted_keys, self.caller)

    @operation("Trust a public key's bundles (administrators).", body=TrustKey, response=DescribeTrustedKey, status=201)
    async def post(self, spec: TrustKey) -> DescribeTrustedKey:
        return await self.call(self.control_plane.bundles.trust_key, self.caller, spec)


class TrustedKeyHandler(APIHandler):
    route = "/bundle-keys/trusted/{name}"

    @operation("Stop trusting a key this instance stored; its bundles no longer import (administrators).", status=204)
    async def delete(self, name: str) -> None:
        await self.call(self.control_plane.bundles.untrust_key, self.caller, name)


handlers = [
    BundlesHandler,
    BundlePreviewHandler,
    BundleImportHandler,
    BundleDownloadHandler,
    BundleActivateHandler,
    SigningKeyHandler,
    TrustedKeysHandler,
    TrustedKeyHandler,
]
