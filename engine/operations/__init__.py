"""The durable operations, one module each, and the registry that binds them to `ctx.step`.

Each operation is an `async def` written once against the invocation's `Session`
(engine/session.py), starting with its replay branch; it awaits effects (engine/driver.py)
rather than doing I/O, so the same code serves sync and `async def` workflows.

`OPERATIONS` maps each method of `sdk.Step` / `sdk.AsyncStep` to its implementation;
engine/steps.py binds them by name. A new operation is a new module here, one line
below, and its declaration in both `Step` and `AsyncStep` (tests pin that the three
agree). `ctx.patched` and `ctx.deprecate_patch` are methods of the context, not of
`ctx.step`: `patched.py` implements them and the interpreter binds them (`Patches`).
agree). Modules that are not operations serve several: `batch` (map and parallel with
completion options), `child.run_scope` (child and wait_for_callback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.driver import Operation
from engine.operations import (
    callback,
    child,
    condition,
    invoke,
    map,
    parallel,
    run,
    send,
    sleep,
    wait,
)

OPERATIONS: Mapping[str, Callable[..., Operation[Any]]] = {
    "run": run.run,
    "sleep": sleep.sleep,
    "sleep_until": sleep.sleep_until,
    "wait_for_event": wait.wait_for_event,
    "send_event": send.send_event,
    "invoke": invoke.invoke,
    "parallel": parallel.parallel,
    "map": map.map,
    "child": child.child,
    "create_callback": callback.create_callback,
    "wait_for_callback": callback.wait_for_callback,
    "wait_for_condition": condition.wait_for_condition,
}
