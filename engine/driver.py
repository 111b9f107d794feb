"""How an operation meets the world: effects, and the sync and async drivers that perform them.

Each durable operation (engine/operations/) is written once, as an `async def` that
awaits *effects* instead of doing I/O or calling user code itself:

- `Io(call)`: a call to a port (store, index, event log, queue, bus; the step gate);
- `UserCall(call)`: the user's code (a step's function), which may return an awaitable;
- `Concurrently(calls)`: parallel branches.

An operation is never awaited by asyncio. A driver steps it with `send`/`throw`, performs
each effect it yields and sends back the result (or throws in the exception):

- `drive_sync` (sync workflows) performs an effect inline in the calling thread; a step
  function's coroutine runs to completion on its own event loop; branches run in threads;
- `drive_async` (`async def` workflows) runs on the workflow's event loop: port calls go
  to worker threads (`asyncio.to_thread`, which carries the context variables), so
  parallel branches overlap their I/O instead of queueing on the loop; user code runs on
  the loop and is awaited; branches are tasks.

Either way the operation's own code runs in the caller's context (its thread, or its
task), so what it sets in context variables (the scope, the running step, log keys) is
seen by the user code it calls. `asyncio` is imported only when an async workflow needs
it (it costs ~7 ms at cold start).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from engine.errors import CONTROL_FLOW

T = TypeVar("T")


class Effect(Generic[T]):
    """Something an operation needs done; `await effect` hands it to the driver."""

    __slots__ = ()

    def __await__(self) -> Generator[Effect[Any], Any, T]:
        return cast(T, (yield self))


class Io(Effect[T]):
    """Call a port: inline in a sync workflow, in a worker thread in an async one."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call


class UserCall(Effect[Any]):
    """Call user code; an awaitable it returns is awaited (run to completion when sync)."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call


@dataclass(frozen=True, slots=True)
class Settled:
    """How one branch ended: its value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class Concurrently(Effect[list[Settled]]):
    """Run `calls` concurrently (threads, or tasks); each settles with a value or an error.

    An `Exception` or an engine control-flow exception is the branch's outcome; anything
    else (KeyboardInterrupt, a cancelled task) propagates at once.
    """

    __slots__ = ("calls", "max_threads")

    def __init__(self, calls: Sequence[Callable[[], Any]], max_threads: int) -> None:
        self.calls = calls
        self.max_threads = max_threads


Operation = Coroutine[Any, Any, T]


def drive_sync(operation: Operation[T]) -> T:
    """Run an operation to its end in this thread."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)
            value, error = None, None
            try:
                value = _perform_sync(effect)
            except BaseException as raised:
                error = raised
    finally:
        operation.close()


def _perform_sync(effect: object) -> Any:
    if isinstance(effect, Io):
        return effect.call()
    if isinstance(effect, UserCall):
        result = effect.call()
        if isinstance(result, Coroutine):
            # An async step function in a sync workflow: run it to completion here.
            return run_coroutine(lambda: result)
        return result
    if isinstance(effect, Concurrently):
        return _branches_in_threads(effect)
    raise TypeError(f"an operation awaited {effect!r}, which is not an engine effect")


def _branches_in_threads(effect: Concurrently) -> list[Settled]:
    def settle(call: Callable[[], Any]) -> Settled:
        try:
            return Settled(value=call())
        except (Exception, *CONTROL_FLOW) as error:
            return Settled(error=error)

    calls = effect.calls
    if len(calls) == 1:
        return [contextvars.copy_context().run(settle, calls[0])]
    workers = min(len(calls), effect.max_threads)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stepline") as pool:
        futures = [pool.submit(contextvars.copy_context().run, settle, call) for call in calls]
        return [future.result() for future in futures]


async def drive_async(operation: Operation[T]) -> T:
    """Run an operation to its end from the workflow's event loop."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = operation.send(value) if error is None else operation.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)
            value, error = None, None
            try:
                value = await _perform_async(effect)
            except BaseException as raised:
                error = raised
    finally:
        operation.close()


async def _perform_async(effect: object) -> Any:
    import asyncio

    if isinstance(effect, Io):
        return await asyncio.to_thread(effect.call)
    if isinstance(effect, UserCall):
        result = effect.call()
        if isinstance(result, Awaitable):
            result = await result
        return result
    if isinstance(effect, Concurrently):

        async def settle(call: Callable[[], Any]) -> Settled:
            try:
                result = call()
                if isinstance(result, Awaitable):
                    result = await result
                return Settled(value=result)
            except (Exception, *CONTROL_FLOW) as error:
                return Settled(error=error)

        # Each branch is a task, with a copy of the context: what a branch sets (its
        # scope) stays its own.
        return list(await asyncio.gather(*(settle(call) for call in effect.calls)))
    raise TypeError(f"an operation awaited {effect!r}, which is not an engine effect")


def run_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code (an async workflow, or step function)."""
    import asyncio  # imported here: sync-only apps never pay for it at cold start

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside a running loop (a test harness, a notebook): use a thread.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, main()).result()
