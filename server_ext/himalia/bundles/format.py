"""The bundle file: a zip of ``manifest.json``, ``manifest.sig`` and the content it lists by digest.

The manifest names every other member with its SHA-256 and size, and the instance that made the
bundle signs the manifest's exact bytes with its Ed25519 key (``manifest.sig``, base64). Reading
checks, before any content is trusted: the zip's own bounds (members, sizes), that the signature
is by a key the reader trusts and matches the manifest, that every listed member is present with
its digest and that nothing unlisted was added. Every refusal names the member at fault, so an
operator knows which file was altered. Nothing here touches the store.
"""

import base64
import binascii
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from himalia.core.errors import InvalidInput
from himalia.core.private_files import create_private_file, ensure_private_folder, restrict_to_owner

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
DEFINITIONS = "definitions.json"
BLOB_FOLDER = "blobs/"
#: The prefix of a public key's text form, so that a pasted key says what it is.
KEY_PREFIX = "ed25519:"
#: Bounds checked before anything is decompressed: a bundle holds definitions and code, not data.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: The manifest is parsed before its signature is checked: it is bounded tighter (20,000 entries fit).
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
#: Fixed member times, so that the same content always makes the same file.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class BundleRefused(InvalidInput):
    """A bundle that is damaged, altered or signed by a key this instance does not trust; ``field`` is the member."""


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class BundleManifest(BaseModel):
    """What ``manifest.json`` says: whose project, which version, and the digest of every member."""

    model_config = ConfigDict(extra="forbid")

    format: int
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")
    version: int = Field(ge=1)
    note: str = Field("", max_length=10_000)
    created_by: str = Field(max_length=100)
    created_at: datetime
    signer: str = Field(max_length=200, description="The public key that signs the manifest (ed25519:…).")
    datasets: int = Field(ge=0, description="How many datasets the definitions hold (for listings).")
    scenarios: int = Field(ge=0)
    files: dict[str, ManifestFile]


@dataclass(frozen=True)
class OpenedBundle:
    """A verified bundle: its manifest, every member's bytes, and who signed it."""

    manifest: BundleManifest
    members: dict[str, bytes]
    signer_name: str

    def blob(self, digest: str) -> bytes:
        return self.members[BLOB_FOLDER + digest]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keys -----------------------------------------------------------------------------------------


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM), created 0600 on first use like the instance's other keys."""
    ensure_private_folder(path.parent)
    fresh = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not create_private_file(path, fresh.decode()):
        restrict_to_owner(path)
    return signing_key_from_pem(path.read_text(), str(path))


def signing_key_from_pem(text: str, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{where}: not an unencrypted PEM private key.", field="bundle_signing_key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{where}: the bundle signing key must be an Ed25519 key.", field="bundle_signing_key")
    return key


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the 32 raw bytes>``: the form people copy between instances."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str, field: str = "public_key") -> Ed25519PublicKey:
    """The key of ``ed25519:<base64>``, or ``InvalidInput`` naming ``field``."""
    body = text.strip().removeprefix(KEY_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"{field}: not an Ed25519 public key (expected {KEY_PREFIX} and 44 base64 characters, "
            "as `himalia bundle key` prints).",
            field=field,
        ) from None


def fingerprint(public_text: str) -> str:
    """A short name for a public key in messages: the first 16 hex digits of its SHA-256."""
    return sha256(public_text.encode())[:16]


# -- writing --------------------------------------------------------------------------------------


def write_bundle(
    key: Ed25519PrivateKey,
    *,
    project: str,
    version: int,
    note: str,
    created_by: str,
    created_at: datetime,
    counts: tuple[int, int],
    members: Mapping[str, bytes],
) -> tuple[bytes, BundleManifest]:
    """The signed zip of ``members`` (``definitions.json`` and ``blobs/<sha256>``) and its manifest."""
    manifest = BundleManifest(
        format=FORMAT_VERSION,
        project=project,
        version=version,
        note=note,
        created_by=created_by,
        created_at=created_at,
        signer=public_key_text(key),
        datasets=counts[0],
        scenarios=counts[1],
        files={name: ManifestFile(sha256=sha256(data), size=len(data)) for name, data in sorted(members.items())},
    )
    manifest_bytes = manifest_text(manifest)
    signature = base64.b64encode(key.sign(manifest_bytes))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(MANIFEST, manifest_bytes), (SIGNATURE, signature), *sorted(members.items())]:
            archive.writestr(zipfile.ZipInfo(name, _EPOCH), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue(), manifest


def manifest_text(manifest: BundleManifest) -> bytes:
    return json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode() + b"\n"


# -- reading --------------------------------------------------------------------------------------


def read_bundle(data: bytes, trusted: Mapping[str, str]) -> OpenedBundle:
    """The bundle in ``data`` if signed by a key of ``trusted`` (public key text -> its name) and intact.

    Raises ``BundleRefused`` naming the member at fault otherwise.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleRefused(f"bundle: {len(data)} bytes, more than the {MAX_BUNDLE_BYTES} accepted.", field="bundle")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BundleRefused("bundle: not a bundle file (not a zip archive).", field="bundle") from None
    with archive:
        infos = _bounded_members(archive)
        manifest_bytes = _member(archive, infos, MANIFEST)
        signature_text = _member(archive, infos, SIGNATURE)
        manifest = _parse_manifest(manifest_bytes)
        signer_name = _verify_signature(manifest, manifest_bytes, signature_text, trusted)
        listed = set(manifest.files)
        for name in sorted(set(infos) - listed - {MANIFEST, SIGNATURE}):
            raise BundleRefused(f"{name}: not listed in the signed manifest (added after signing).", field=name)
        members = {}
        for name, expected in sorted(manifest.files.items()):
            if name not in infos:
                raise BundleRefused(f"{name}: listed in the signed manifest but missing.", field=name)
            content = _member(archive, infos, name)
            if len(content) != expected.size or sha256(content) != expected.sha256:
                raise BundleRefused(
                    f"{name}: its content differs from the SHA-256 the signed manifest lists (altered).", field=name
                )
            members[name] = content
    if DEFINITIONS not in members:
        raise BundleRefused(f"{DEFINITIONS}: missing from the bundle.", field=DEFINITIONS)
    return OpenedBundle(manifest=manifest, members=members, signer_name=signer_name)


def bundle_project(data: bytes) -> str:
    """The project key a bundle's manifest names, read before verification only to find its target."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _parse_manifest(_member(archive, _bounded_members(archive), MANIFEST)).project
    except zipfile.BadZipFile:
        raise BundleRefused("bundle: not a bundle file (not a zip archive).", field="bundle") from None


def _bounded_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The members by name, refusing duplicates, odd names and sizes beyond the bounds before reading."""
    infos: dict[str, zipfile.ZipInfo] = {}
    total = 0
    entries = archive.infolist()
    if len(entries) > MAX_MEMBERS:
        raise BundleRefused(f"bundle: more than {MAX_MEMBERS} members.", field="bundle")
    for info in entries:
        name = info.filename
        if name in infos:
            raise BundleRefused(f"{name}: appears twice in the bundle.", field=name)
        if not _expected_name(name):
            raise BundleRefused(f"{name}: not a member a bundle holds.", field=name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise BundleRefused(f"{name}: {info.file_size} bytes, more than {MAX_MEMBER_BYTES}.", field=name)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BundleRefused(f"bundle: its members hold more than {MAX_TOTAL_BYTES} bytes.", field="bundle")
        infos[name] = info
    return infos


def _expected_name(name: str) -> bool:
    if name in (MANIFEST, SIGNATURE, DEFINITIONS):
        return True
    digest = name.removeprefix(BLOB_FOLDER)
    return name.startswith(BLOB_FOLDER) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _member(archive: zipfile.ZipFile, infos: Mapping[str, zipfile.ZipInfo], name: str) -> bytes:
    if name not in infos:
        raise BundleRefused(f"{name}: missing from the bundle.", field=name)
    info = infos[name]
    try:
        with archive.open(info) as handle:
            content = handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:  # a CRC or a stream that does not inflate
        raise BundleRefused(f"{name}: damaged ({error}).", field=name) from None
    except (RuntimeError, NotImplementedError) as error:  # an encrypted member, a compression zipfile lacks
        raise BundleRefused(f"{name}: cannot be read ({error}).", field=name) from None
    if len(content) != info.file_size:
        raise BundleRefused(f"{name}: its size differs from the archive's record (damaged).", field=name)
    return content


def _parse_manifest(text: bytes) -> BundleManifest:
    if len(text) > MAX_MANIFEST_BYTES:
        raise BundleRefused(f"{MANIFEST}: {len(text)} bytes, more than {MAX_MANIFEST_BYTES}.", field=MANIFEST)
    try:
        plain: Any = json.loads(text)
        manifest = BundleManifest.model_validate(plain)
    except RecursionError:
        raise BundleRefused(f"{MANIFEST}: not a bundle manifest (nested too deep).", field=MANIFEST) from None
    except ValueError as error:
        reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else "not valid JSON"
        raise BundleRefused(f"{MANIFEST}: not a bundle manifest ({reason}).", field=MANIFEST) from None
    if manifest.format != FORMAT_VERSION:
        raise BundleRefused(
            f"{MANIFEST}: format {manifest.format}; this version reads format {FORMAT_VERSION}.", field=MANIFEST
        )
    return manifest


def _verify_signature(manifest: BundleManifest, text: bytes, signature_text: bytes, trusted: Mapping[str, str]) -> str:
    """The trusted name of the manifest's signer, once its signature over ``text`` is verified."""
    name = trusted.get(manifest.signer)
    if name is None:
        raise BundleRefused(
            f"{SIGNATURE}: {MANIFEST} is signed with the key {fingerprint(manifest.signer)}, which this instance "
            "does not trust (an administrator adds it with `himalia bundle trust NAME PUBLIC_KEY`).",
            field=SIGNATURE,
        )
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
        parse_public_key(manifest.signer, MANIFEST).verify(signature, text)
    except (binascii.Error, ValueError, InvalidSignature, InvalidInput):
        raise BundleRefused(
            f"{SIGNATURE}: does not verify {MANIFEST} with the trusted key '{name}' (either file was altered).",
            field=SIGNATURE,
        ) from None
    return name
