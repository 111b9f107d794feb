"""Calling a step's function with a time limit (`step.run(..., timeout=...)`).

Python cannot kill a thread, so a sync function that runs past its limit is abandoned,
not stopped: it runs in a daemon thread of its own, the attempt fails with
`StepTimeoutError` as soon as the limit passes, and whatever the function returns later
is discarded. (In Lambda, the container freezes once the invocation returns, so the
thread stops until the container's next invocation, if any.) An async function is a
task, and is cancelled at the limit.

Time is read from the Clock port: on Lambda the system clock, under LocalRuntime the
virtual clock, so a test moves time on from inside a step instead of sleeping. The
waiting itself polls in short real-time slices, since a virtual clock moves without
waking anyone.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from engine.ports import Clock

# How often a waiting caller looks at the clock (real seconds).
_SLICE = 0.02


class DeadlinePassed(Exception):
    """The function did not return within the limit (converted to StepTimeoutError)."""


@dataclass(frozen=True)
class Deadline:
    """At most `seconds` of `clock` time for one call; `is_async`: the function is async."""

    seconds: float
    clock: Clock
    is_async: bool = False


def call_sync(call: Callable[[], Any], deadline: Deadline) -> Any:
    """`call()` in a thread of its own; DeadlinePassed if it is still running at the limit."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = _sync_result(call)
        except BaseException as error:  # handed to the caller, whatever it is
            outcome["error"] = error
        finally:
            done.set()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True, name="stepline-step")
    started = deadline.clock.monotonic()
    thread.start()
    while not done.wait(_SLICE):
        if deadline.clock.monotonic() - started >= deadline.seconds and not done.is_set():
            raise DeadlinePassed()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def call_async(call: Callable[[], Any], deadline: Deadline) -> Any:
    """An async function as a task, cancelled at the limit; a sync one in a worker thread,
    abandoned at the limit. Either way DeadlinePassed is raised then."""
    import asyncio

    clock = deadline.clock
    started = clock.monotonic()
    task: asyncio.Future[Any]
    if deadline.is_async:
        task = asyncio.ensure_future(_awaited(call))
    else:
        task = asyncio.ensure_future(asyncio.to_thread(_sync_result, call))
    while True:
        finished, _ = await asyncio.wait({task}, timeout=_SLICE)
        if finished:
            return task.result()
        if clock.monotonic() - started >= deadline.seconds:
            task.cancel()
            raise DeadlinePassed()


async def _awaited(call: Callable[[], Any]) -> Any:
    result = call()
    if isinstance(result, Awaitable):
        return await result
    return result


def _sync_result(call: Callable[[], Any]) -> Any:
    result = call()
    if isinstance(result, Coroutine):
        from engine.driver import run_coroutine

        return run_coroutine(lambda: result)
    return result
