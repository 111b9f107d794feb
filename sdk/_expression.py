"""Match expressions: `match="data.userId"` paths and `if_=` CEL expressions.

A CEL expression sees two variables, as in Inngest: `event`, the run's triggering event,
and `async`, the incoming event being matched. Each is a map with `name`, `data`, `id`
and `ts`. Expressions compile when the workflow is defined, so a typo fails at import
time rather than on the first event; an expression that errors on a particular event
(a missing field, a type mismatch) counts as "no match" and the caller logs it.

cel-python is imported on first use: it costs ~70 ms, which handlers that never meet an
expression should not pay at cold start.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sdk._errors import WorkflowDefinitionError
from sdk._event import Event

_MATCH_PATH = re.compile(r"^data(\.[^.\s]+)+$")


class ExpressionError(Exception):
    """An expression could not be evaluated against a particular event."""


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


def canonical(value: Any) -> str:
    """A stable text form of a matched value, used in index keys (1 and "1" differ)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_as_map(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "data": event.data,
        "id": event.id,
        "ts": event.ts.isoformat() if event.ts else None,
    }


class Expression:
    """A compiled CEL expression over `event` (the trigger) and `async` (the incoming event)."""

    def __init__(self, source: str, *, what: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise WorkflowDefinitionError(f"{what}: if_ must be a non-empty CEL expression")
        import celpy

        self.source = source
        environment = celpy.Environment()
        try:
            tree = environment.compile(source)
        except Exception as error:
            raise WorkflowDefinitionError(
                f"{what}: the CEL expression {source!r} does not compile: {error}. "
                'Expressions use CEL syntax, e.g. "async.data.userId == event.data.userId".'
            ) from error
        self._program = environment.program(tree)

    def evaluate(self, *, event: Event, incoming: Event | None = None) -> bool:
        """True when the expression holds; raises ExpressionError when it cannot be evaluated."""
        from celpy import celtypes
        from celpy.adapter import json_to_cel

        activation = {"event": json_to_cel(event_as_map(event))}
        if incoming is not None:
            activation["async"] = json_to_cel(event_as_map(incoming))
        try:
            result = self._program.evaluate(activation)
        except Exception as error:
            raise ExpressionError(f"{self.source!r}: {error}") from error
        if isinstance(result, Exception):
            raise ExpressionError(f"{self.source!r}: {result}")
        if not isinstance(result, celtypes.BoolType | bool):
            raise ExpressionError(f"{self.source!r} gave {result!r}, not a boolean")
        return bool(result)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
