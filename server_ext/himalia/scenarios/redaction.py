"""Credentials a run was given, masked in everything the run leaves behind.

A notebook step gets the run's token (``HIMALIA_TOKEN``) so that its kernel can reach the API as
the run-as user. A notebook that prints its environment (``print(os.environ)``, ``!env``, a
traceback showing a request's headers) would write that live token into the run log, the
executed notebook and the HTML report, which everyone who may read the run can open, and so
act as the run-as user for as long as the run lasts. The run engine therefore masks, in the log
and in both artifacts, every token value the run was given, in the spellings a notebook's
output takes (as is, JSON-escaped, HTML-escaped), and anything shaped like a Himalia token.

Variables whose names say they hold a credential are also never inherited by workers from the
control plane's environment (``executors.is_secret_name``): a hub service's ``JUPYTERHUB_API_TOKEN`` or
the SMTP password are the platform's, not the notebook's.
"""

import html
import json
import re
from collections.abc import Iterable, Mapping

from himalia.execution.base import is_secret_name
from himalia.identity.tokens import TOKEN_PREFIX

MASK = "***"
#: Shorter values are not masked: "1" or "true" would blank half the log, and are no credential.
MIN_SECRET_LENGTH = 8
_TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{16,}")


def secret_values(environment: Mapping[str, str]) -> list[str]:
    """The values of the variables whose names say they are credentials."""
    return [value for name, value in environment.items() if is_secret_name(name) and value]


def _spellings(secret: str) -> set[str]:
    """How a value appears in a notebook's outputs: as printed, inside JSON strings, in HTML."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return forms | {html.escape(form, quote=quote) for form in forms for quote in (True, False)}


class Redactor:
    """Replaces given secret values, and anything shaped like a Himalia token, by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for secret in secrets if len(secret) >= MIN_SECRET_LENGTH for form in _spellings(secret)}
        ordered = sorted(forms, key=len, reverse=True)  # a longer spelling before its own prefix
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _TOKEN_SHAPE.sub(MASK, text)

    def data(self, data: bytes) -> bytes:
        """The same on a file's bytes (an executed notebook, a report), keeping bytes that are not UTF-8."""
        return self.text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
