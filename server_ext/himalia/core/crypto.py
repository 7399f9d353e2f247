"""Encryption of connection secrets at rest.

Keys never live in the database: they come from ``HIMALIA_SECRET_KEYS`` or the
``ControlPlane.secret_keys`` setting, or, for the embedded default, a key file in the data
folder created on first start with owner-only permissions. The first key encrypts; every key
decrypts, so a new key can be put first and the old ones kept until ``himalia secrets rotate``
has re-encrypted everything.
"""

import json
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from himalia.core.errors import HimaliaError
from himalia.core.private_files import create_private_file, ensure_private_folder, restrict_to_owner


class SecretKeyError(HimaliaError):
    """The instance key cannot decrypt what is stored (wrong or missing key)."""


def load_or_create_key_file(path: Path) -> list[str]:
    """Keys from ``path`` (one per line), creating it 0600 with a fresh key if absent.

    An existing file readable by others (an older version, a copy) is restricted to its owner.
    """
    ensure_private_folder(path.parent)
    if not create_private_file(path, Fernet.generate_key().decode() + "\n"):
        restrict_to_owner(path)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class SecretBox:
    """Encrypts and decrypts JSON objects of secrets with a rotating set of Fernet keys."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("No encryption key is configured for connection secrets.")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as error:
            raise SecretKeyError(
                "A configured secret key is not a valid Fernet key (32 url-safe base64 bytes)."
            ) from error

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def decrypt(self, ciphertext: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(ciphertext.encode()))
        except InvalidToken as error:
            raise SecretKeyError(
                "Stored secrets cannot be decrypted with the configured keys; "
                "was the old key removed before `himalia secrets rotate`?"
            ) from error
        return value

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise SecretKeyError("Stored secrets cannot be decrypted with the configured keys.") from error
