"""Key expressions of flow controls: CEL over `event` whose *value* keys a limit.

`key="event.data.accountId"` gives every account its own rate limit, throttle, debounce,
batch, concurrency limit or singleton; `idempotency="event.data.orderId"` keys the
idempotency window; `Priority(run=...)` evaluates to a number of seconds. Unlike an `if_`
condition, the expression may yield any JSON value: a string, a number, a boolean, or a
list or map of them (compared by its canonical JSON form). A null result, or an error on
a particular event (a missing field, a type mismatch), is an `ExpressionError`: the
caller refuses the event for that workflow and logs the workflow and the expression,
never the value.

Evaluation shares the event's step budget with every other expression evaluated on it
(see sdk/_expression.py), so a costly key fails alone rather than holding a handler.
"""

from __future__ import annotations

from typing import Any

from sdk._errors import WorkflowDefinitionError
from sdk._event import Event
from sdk._expression import Budget, Expression, ExpressionError


class KeyExpression(Expression):
    """A compiled CEL expression over `event`, evaluated for its value."""

    def __init__(self, source: str, *, what: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise WorkflowDefinitionError(
                f"{what}: the key must be a non-empty CEL expression over the event, "
                'e.g. key="event.data.accountId"'
            )
        super().__init__(source, what=what)
        if "async" in self._reads:
            raise WorkflowDefinitionError(
                f"{what}: the expression {source!r} reads `async`, which only waits and "
                "cancel rules have; a key sees the triggering `event` alone"
            )

    def value(self, *, event: Event, budget: Budget | None = None) -> Any:
        """The key's value on `event`, as plain JSON; ExpressionError if there is none."""
        result = self.result(event=event, budget=budget)
        if result is None:
            raise ExpressionError(self.source, "gave a null, not a key value")
        try:
            return _plain(result)
        except TypeError as error:
            raise ExpressionError(self.source, str(error)) from None

    def number(self, *, event: Event, budget: Budget | None = None) -> float:
        """The expression's value as a number (Priority); ExpressionError otherwise."""
        value = self.value(event=event, budget=budget)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionError(self.source, f"gave a {_kind(value)}, not a number")
        return float(value)


def _kind(value: Any) -> str:
    return {str: "string", bool: "boolean", list: "list", dict: "map"}.get(type(value), "value")


def _plain(value: Any) -> Any:
    """A CEL value as JSON: celpy's types subclass Python's, except where noted."""
    from celpy import celtypes

    if value is None or isinstance(value, celtypes.BoolType | bool):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, celtypes.TimestampType | celtypes.DurationType):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    raise TypeError(f"gave a {type(value).__name__.removesuffix('Type').lower()}, not a JSON value")
