"""Regular expressions that people write, matched in time linear in the text.

A row condition's ``pattern`` runs over every row of a dataset, in a database or in this
process (SQLite has no regular expressions of its own). Python's ``re`` backtracks, so one
pattern such as ``(a+)+$`` can hold a thread for hours; RE2 cannot, and is the syntax DuckDB
matches with. Patterns are compiled with RE2 where they are saved and wherever they run here.
"""

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import re2

#: The longest pattern accepted, in characters.
MAX_PATTERN_LENGTH = 1000


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> "re2._Regexp":
    """``pattern`` compiled by RE2, or ``ValueError`` saying why RE2 refuses it (a pydantic
    validator's refusal, naming the field where the pattern is declared)."""
    import re2

    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"a pattern has at most {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False  # the refusal is the caller's answer, not a line on the server's stderr
    try:
        return re2.compile(pattern, options=options)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise ValueError(f"{pattern!r} is not a regular expression RE2 accepts: {reason}") from None


def search(pattern: str, text: str | None) -> bool | None:
    """Whether ``pattern`` occurs in ``text`` (``None`` for a null, as SQL's ``REGEXP`` says).

    SQLite calls this once per row: it asks RE2's own matcher directly, without the binding's
    ``search``, whose match object and offset bookkeeping cost six times the match itself
    (3.1 against 0.5 microseconds for a short code). Those names are the binding's own, so the
    dependency keeps to its major version."""
    if text is None:
        return None
    import re2

    encoded = str(text).encode("utf-8", "surrogatepass")
    spans = compile_pattern(pattern)._regexp.Match(re2._Anchor.UNANCHORED, encoded, 0, len(encoded))
    return bool(spans[0] != re2._NULL_SPAN)
