"""Plugins: objects that hear about a run's invocations, operations and attempts.

    class Metrics:
        def on_operation_end(self, info: PluginInfo) -> None:
            emit(info.kind, info.status)

    app = App("shop", plugins=[Metrics()])

A plugin is any object with some of the hooks below; each is called with a `PluginInfo`.

| hook | called |
|---|---|
| `on_invocation_start` / `_end` | when an engine invocation starts and ends advancing a run (`first`: the run's first invocation; `status` at the end: the run's, e.g. COMPLETED, FAILED, SLEEPING) |
| `on_operation_start` / `_end` | when an operation (a step of any kind, a map item, a branch) starts for the first time and when its outcome is known (`status` COMPLETED or FAILED) |
| `on_attempt_start` / `_end` | around each attempt of a step's function (`attempt` from 1; `status` COMPLETED or FAILED) |

Each event is reported once, not again when the run replays it. A crash between an
event and its record can repeat it, as the step's code itself may run again. A hook that
raises is logged and ignored: a plugin never fails a run. Hooks run in the engine's
thread (a parallel branch's, for its operations), so they should be quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sdk._errors import WorkflowDefinitionError

HOOKS = (
    "on_invocation_start",
    "on_invocation_end",
    "on_operation_start",
    "on_operation_end",
    "on_attempt_start",
    "on_attempt_end",
)


@dataclass(frozen=True)
class PluginInfo:
    """What a hook is told."""

    run_id: str
    workflow_id: str
    #: True in (the hooks of) the run's first invocation.
    first: bool
    #: The run's status (invocation hooks) or the operation's (COMPLETED or FAILED at its
    #: end; STARTED at its start).
    status: str
    #: The operation's id as the audit trail shows it ("charge", "charge#2"); None for
    #: invocation hooks.
    step_id: str | None = None
    #: The operation's kind ("run", "sleep", "map", "callback", ...).
    kind: str | None = None
    #: The attempt (from 1) for attempt hooks and a step's end; None otherwise.
    attempt: int | None = None
    #: "Type: message" of the failure, when status is FAILED.
    error: str | None = None


def check_plugins(plugins: Sequence[object] | None) -> tuple[object, ...]:
    """The plugins as a tuple; WorkflowDefinitionError for an object with no hook."""
    if plugins is None:
        return ()
    if isinstance(plugins, str | bytes) or not isinstance(plugins, Sequence):
        raise WorkflowDefinitionError("plugins takes a list of plugin objects")
    for plugin in plugins:
        if not any(callable(getattr(plugin, hook, None)) for hook in HOOKS):
            raise WorkflowDefinitionError(
                f"plugin {plugin!r} has none of the hooks {', '.join(HOOKS)}"
            )
    return tuple(plugins)
