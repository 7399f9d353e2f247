"""A bundle altered in any way, or signed by a key the importer does not trust, is refused naming the file.

The class: a byte flipped in each member in turn, each member dropped, a member added, the
signature of another bundle swapped in, the manifest re-signed with an untrusted key. And no
secret or connection detail is ever in a bundle.
"""

import base64
import io
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from himalia.bundles.format import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SIGNATURE,
    BundleManifest,
    BundleRefused,
    manifest_text,
    public_key_text,
    read_bundle,
)
from himalia.controlplane import ControlPlane

from .conftest import DESIGN_SECRET, PROJECT


def members_of(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def signed(design: ControlPlane) -> tuple[bytes, dict[str, str]]:
    """A real bundle of FRAUD from design, and the keys design trusts (its own)."""
    admin = design.users.caller_for("admin")
    design.bundles.create_bundle(admin, PROJECT, note="to tamper with")
    content = design.bundles.download(admin, PROJECT, 1)[1]
    return content, {design.bundles.public_key().public_key: "this instance"}


def refusal(content: bytes, trusted: dict[str, str]) -> BundleRefused:
    with pytest.raises(BundleRefused) as refused:
        read_bundle(content, trusted)
    return refused.value


def test_the_untouched_bundle_is_read(signed: tuple[bytes, dict[str, str]]) -> None:
    content, trusted = signed
    opened = read_bundle(content, trusted)
    assert opened.manifest.project == PROJECT and opened.signer_name == "this instance"
    # definitions.json, the notebook's snapshot, and the three files of its folder (itself, a module, a CSV)
    assert len(opened.members) == 5


def test_a_byte_flipped_in_any_member_is_refused_naming_it(signed: tuple[bytes, dict[str, str]]) -> None:
    content, trusted = signed
    members = members_of(content)
    assert len(members) == 7
    for name, data in members.items():
        for position in (0, len(data) // 2, len(data) - 1):
            altered = bytearray(data)
            altered[position] ^= 0x01
            error = refusal(zipped({**members, name: bytes(altered)}), trusted)
            assert name in error.message, (name, position, error.message)
            assert error.field in (name, SIGNATURE, MANIFEST)


def test_a_dropped_or_added_member_is_refused_naming_it(signed: tuple[bytes, dict[str, str]]) -> None:
    content, trusted = signed
    members = members_of(content)
    for name in members:
        error = refusal(zipped({n: d for n, d in members.items() if n != name}), trusted)
        assert name in error.message and error.field == name
    extra = "blobs/" + "0" * 64
    error = refusal(zipped({**members, extra: b"print('planted')"}), trusted)
    assert error.field == extra and "not listed in the signed manifest" in error.message
    error = refusal(zipped({**members, "../outside.py": b"x"}), trusted)
    assert error.field == "../outside.py"


def test_a_swapped_signature_or_an_untrusted_key_is_refused(
    design: ControlPlane, signed: tuple[bytes, dict[str, str]]
) -> None:
    content, trusted = signed
    members = members_of(content)
    admin = design.users.caller_for("admin")
    design.bundles.create_bundle(admin, PROJECT, note="another")
    other = members_of(design.bundles.download(admin, PROJECT, 2)[1])
    error = refusal(zipped({**members, SIGNATURE: other[SIGNATURE]}), trusted)
    assert error.field == SIGNATURE and MANIFEST in error.message

    stranger = Ed25519PrivateKey.generate()
    manifest = BundleManifest.model_validate_json(members[MANIFEST])
    resigned = manifest_text(manifest.model_copy(update={"signer": public_key_text(stranger)}))
    forged = {**members, MANIFEST: resigned, SIGNATURE: base64.b64encode(stranger.sign(resigned))}
    error = refusal(zipped(forged), trusted)
    assert error.field == SIGNATURE and "does not trust" in error.message
    # Signed by the stranger but claiming the trusted key: the signature does not verify.
    claimed = {**members, SIGNATURE: base64.b64encode(stranger.sign(members[MANIFEST]))}
    error = refusal(zipped(claimed), trusted)
    assert error.field == SIGNATURE and "altered" in error.message


def test_a_file_that_is_no_bundle_is_refused(signed: tuple[bytes, dict[str, str]]) -> None:
    _, trusted = signed
    assert refusal(b"not a zip at all", trusted).field == "bundle"


def test_malformed_archives_are_refused_naming_the_member_never_a_server_error(
    signed: tuple[bytes, dict[str, str]],
) -> None:
    """What a crafted file does to the reader before the signature is checked: a manifest nested
    past the parser's recursion, one over its bound, a member flagged as encrypted."""
    content, trusted = signed
    members = members_of(content)
    for manifest in (b"[" * 100_000 + b"]" * 100_000, b" " * (MAX_MANIFEST_BYTES + 1)):
        error = refusal(zipped({**members, MANIFEST: manifest}), trusted)
        assert error.field == MANIFEST, error.message
    archive = zipped(members)
    for name in members:
        error = refusal(flagged_encrypted(archive, name), trusted)
        assert error.field == name and name in error.message, (name, error.message)


def flagged_encrypted(archive: bytes, name: str) -> bytes:
    """``archive`` with ``name`` flagged as encrypted in its local and central headers (zipfile
    cannot write the flag itself); reading it asks for a password."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        local = opened.getinfo(name).header_offset
    data[local + 6] |= 0x1  # general purpose flags of the local file header
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + length] == name.encode():
            data[central + 8] |= 0x1  # the same flags in the central directory
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def test_no_secret_and_no_connection_detail_is_in_a_bundle(
    design: ControlPlane, signed: tuple[bytes, dict[str, str]], tmp_path: Path
) -> None:
    content, _ = signed
    warehouse = str(tmp_path / "design-warehouse.sqlite")
    haystacks = [content, *members_of(content).values()]
    for needle in (DESIGN_SECRET, warehouse, "sqlite:///"):
        assert not any(needle.encode() in haystack for haystack in haystacks), needle
