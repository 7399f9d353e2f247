"""Units people write: durations (``90m``, ``2d``) and sizes (``512Mi``, ``4G``)."""

import re
from datetime import timedelta

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kMGTP]i?|)\s*$")
_MULTIPLIERS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_MULTIPLIERS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def parse_bytes(value: object) -> int | None:
    """Bytes from an integer or a Kubernetes quantity ('512Mi', '4G'); decimal and binary suffixes."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and (match := _QUANTITY.match(value)):
        return int(float(match[1]) * _MULTIPLIERS[match[2]])
    raise ValueError("a memory size is a number of bytes or a quantity such as '512Mi', '4Gi' or '8G'")


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"36h"``, ``"2d"``, ``"1w"`` or ``"3600s"``, up to ten years."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration such as 90m, 36h, 2d or 1w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"'{text}' is longer than ten years")
    return timedelta(seconds=seconds)
