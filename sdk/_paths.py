"""`match=` paths: a field of an event's data named by its dotted path, such as "data.userId".

A wait or cancel rule with `match=` is filed under the value at that path of the run's
trigger event, and an incoming event finds it by the value at the same path of its own
(engine/ids.py turns the value into the index key).
"""

from __future__ import annotations

import re
from typing import Any

from sdk._errors import WorkflowDefinitionError
from sdk._event import Event

_MATCH_PATH = re.compile(r"^data(\.[^.\s]+)+$")


class Missing:
    """The value of a path an event does not have."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def check_match_path(path: str, *, what: str) -> str:
    """Validate a `match=` path such as "data.userId"."""
    if not isinstance(path, str) or not _MATCH_PATH.match(path):
        raise WorkflowDefinitionError(
            f"{what}: match={path!r} is not a field path; use the dotted path of a field "
            "of the event's data, like 'data.userId' or 'data.order.id'"
        )
    return path


def lookup(event: Event, path: str) -> Any:
    """The value at a dotted path ("data.a.b") of an event, or MISSING."""
    parts = path.split(".")
    value: Any = event.data
    for part in parts[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value
