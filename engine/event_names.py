"""The event names an app uses: the ones the bus must route to Stepline.

An event reaches Stepline only if an EventBridge rule's pattern lists its name
(infra/event_rules.py), so that events no workflow wants cost Stepline nothing. The
names come from the app's definitions, read when the app is deployed:

- its workflows' event triggers (`trigger="user/signup"`; a Cron's ticks do not come
  through the bus),
- its `cancel_on` rules,
- the callback events (`stepline/callback.completed|failed|heartbeat`),
- the `wait_for_event` calls in its workflows' code whose `event=` is a string literal
  or a name bound to a string (a module constant, a closure's variable), found by
  reading the functions' source: `ctx.step.wait_for_event("w", event="a/b", ...)` or
  `event=PAID`.

A wait whose event name is computed at run time (`event=f"order/{kind}"`) is not known
until a run reaches it: the engine then asks the bus to route that name before it
registers the wait (`EventBus.route`, engine/operations/wait.py). On AWS a new rule can
take a moment to apply, so an event put on the bus in that moment is not seen by that
first wait; declare such names with a literal somewhere in the workflow (or in a
trigger or cancel rule) to have them routed from the deploy on.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from collections.abc import Iterable

from engine.callbacks import EVENTS as CALLBACK_EVENTS
from sdk import App, Workflow

log = logging.getLogger("stepline.events")

#: The step method whose event names are found in source.
_WAIT_METHOD = "wait_for_event"


def routed_event_names(app: App) -> list[str]:
    """Every event name the app uses (sorted): what the bus's rules must let through."""
    names: set[str] = set(CALLBACK_EVENTS)
    for workflow in app.workflows.values():
        names.update(trigger.event for trigger in workflow.triggers)
        names.update(rule.event for rule in workflow.cancel_on)
        names.update(waited_event_names(workflow))
    return sorted(names)


def waited_event_names(workflow: Workflow) -> set[str]:
    """The literal event names of the `wait_for_event` calls in the workflow's source."""
    return set(_literal_waits(workflow.fn))


def _literal_waits(fn: object) -> Iterable[str]:
    try:
        source = textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        # No source (a lambda built at run time, a frozen module): its waits are routed
        # when a run first reaches them.
        return []
    bound = _bound_names(fn)
    found: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != _WAIT_METHOD:
            continue
        for keyword in node.keywords:
            if keyword.arg != "event":
                continue
            value: object = None
            if isinstance(keyword.value, ast.Constant):
                value = keyword.value.value
            elif isinstance(keyword.value, ast.Name):
                value = bound.get(keyword.value.id)
            if isinstance(value, str) and value.strip():
                found.append(value)
    return found


def _bound_names(fn: object) -> dict[str, object]:
    """The values the function's free names have now: its closure's and its globals'
    (a name rebound later, or a local, is left to run-time routing)."""
    try:
        variables = inspect.getclosurevars(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return {}
    return {**variables.builtins, **variables.globals, **variables.nonlocals}
