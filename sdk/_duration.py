"""Durations as users write them: a timedelta, or a string such as "30s", "24h", "1h30m".

Numbers are refused on purpose: Inngest takes milliseconds and other tools take seconds,
and a bare 30 is a bug waiting to happen either way.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*")

Duration = timedelta | str


def parse_duration(value: Duration, *, what: str = "duration") -> timedelta:
    """Turn a timedelta or a duration string into a timedelta, or explain what is wrong."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise _invalid(what, value, "it is negative")
        return value
    if not isinstance(value, str):
        raise _invalid(what, value, f"it is a {type(value).__name__}, not a string or timedelta")
    text = value.strip().lower()
    total = 0.0
    position = 0
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            raise _invalid(what, value, "it is not a number followed by a unit")
        unit = part.group(2)
        if unit not in _UNIT_SECONDS and unit.endswith("s") and unit[:-1] in _UNIT_SECONDS:
            unit = unit[:-1]  # plurals: "hours", "days"
        if unit not in _UNIT_SECONDS:
            raise _invalid(what, value, f"{part.group(2)!r} is not a unit")
        total += float(part.group(1)) * _UNIT_SECONDS[unit]
        position = part.end()
    if not text:
        raise _invalid(what, value, "it is empty")
    return timedelta(seconds=total)


def _invalid(what: str, value: object, why: str) -> Exception:
    from sdk._errors import WorkflowDefinitionError

    return WorkflowDefinitionError(
        f"invalid {what} {value!r}: {why}. Use a timedelta or a string like "
        "'10s', '30m', '24h', '7d' or '1h30m' (units: ms, s, m, h, d, w)."
    )
