"""How an operation meets the world: effects, and the sync and async drivers that perform them.

Each durable operation (engine/operations/) is written once, as an `async def` that
awaits *effects* instead of doing I/O or calling user code itself:

- `Io(call)`: a call to a port (store, index, event log, queue, bus; the step gate);
- `UserCall(call)`: the user's code (a step's function), which may return an awaitable;
  with a `deadline` (engine/deadline.py) it runs apart and may be abandoned at the limit;
- `Concurrently(calls)`: parallel branches;
- `Schedule(calls)`: a batch (engine/operations/batch.py): at most `limit` calls at a time,
  started in index order while `may_start(index)` allows, each reported to `on_settle`
  as it settles; a call may be an operation, which is then driven like this one.

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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from engine.deadline import Deadline, call_async, call_sync
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

    __slots__ = ("call", "deadline")

    def __init__(self, call: Callable[[], Any], deadline: Deadline | None = None) -> None:
        self.call = call
        self.deadline = deadline


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


class Schedule(Effect[list[Settled | None]]):
    """Run `calls` at most `limit` at a time, in index order, while `may_start(i)` allows.

    Each result is the call's `Settled`, or None for a call never started. `on_settle(i,
    settled)` is told of each as it settles (from the thread that drives the batch). With
    `operations`, each call returns an operation (a coroutine of effects), driven like the
    caller's own: in a thread (sync) or a task (async). `max_threads` caps a sync batch.
    """

    __slots__ = ("calls", "limit", "max_threads", "may_start", "on_settle", "operations")

    def __init__(
        self,
        calls: Sequence[Callable[[], Any]],
        *,
        limit: int,
        max_threads: int,
        may_start: Callable[[int], bool] = lambda _: True,
        on_settle: Callable[[int, Settled], None] = lambda _, __: None,
        operations: bool = False,
    ) -> None:
        self.calls = calls
        self.limit = limit
        self.max_threads = max_threads
        self.may_start = may_start
        self.on_settle = on_settle
        self.operations = operations


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
        if effect.deadline is not None:
            return call_sync(effect.call, effect.deadline)
        result = effect.call()
        if isinstance(result, Coroutine):
            # An async step function in a sync workflow: run it to completion here.
            return run_coroutine(lambda: result)
        return result
    if isinstance(effect, Concurrently):
        return _branches_in_threads(effect)
    if isinstance(effect, Schedule):
        return _schedule_in_threads(effect)
    raise TypeError(f"an operation awaited {effect!r}, which is not an engine effect")


def _settle(call: Callable[[], Any]) -> Settled:
    try:
        return Settled(value=call())
    except (Exception, *CONTROL_FLOW) as error:
        return Settled(error=error)


def _settle_operation(call: Callable[[], Any]) -> Settled:
    return _settle(lambda: drive_sync(call()))


def _schedule_in_threads(effect: Schedule) -> list[Settled | None]:
    calls = effect.calls
    results: list[Settled | None] = [None] * len(calls)
    settle = _settle_operation if effect.operations else _settle
    limit = max(1, min(effect.limit, effect.max_threads, len(calls) or 1))
    if limit == 1:
        # One at a time, each in a context of its own (its scope stays its own).
        for index, call in enumerate(calls):
            if not effect.may_start(index):
                break
            results[index] = contextvars.copy_context().run(settle, call)
            effect.on_settle(index, results[index])  # type: ignore[arg-type]
        return results
    running: dict[Future[Settled], int] = {}
    following = 0
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="stepline") as pool:
        while True:
            while len(running) < limit and following < len(calls) and effect.may_start(following):
                context = contextvars.copy_context()
                running[pool.submit(context.run, settle, calls[following])] = following
                following += 1
            if not running:
                return results
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                results[index] = future.result()
                effect.on_settle(index, results[index])  # type: ignore[arg-type]


def _branches_in_threads(effect: Concurrently) -> list[Settled]:
    calls, settle = effect.calls, _settle
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
        if effect.deadline is not None:
            return await call_async(effect.call, effect.deadline)
        result = effect.call()
        if isinstance(result, Awaitable):
            result = await result
        return result
    if isinstance(effect, Concurrently):
        # Each branch is a task, with a copy of the context: what a branch sets (its
        # scope) stays its own.
        return list(await asyncio.gather(*(_settle_async(call) for call in effect.calls)))
    if isinstance(effect, Schedule):
        return await _schedule_tasks(effect)
    raise TypeError(f"an operation awaited {effect!r}, which is not an engine effect")


async def _settle_async(call: Callable[[], Any]) -> Settled:
    try:
        result = call()
        if isinstance(result, Awaitable):
            result = await result
        return Settled(value=result)
    except (Exception, *CONTROL_FLOW) as error:
        return Settled(error=error)


async def _schedule_tasks(effect: Schedule) -> list[Settled | None]:
    import asyncio

    calls = effect.calls
    results: list[Settled | None] = [None] * len(calls)
    limit = max(1, effect.limit)

    def start(call: Callable[[], Any]) -> Awaitable[Settled]:
        if effect.operations:
            return _settle_async(lambda: drive_async(call()))
        return _settle_async(call)

    running: dict[asyncio.Future[Settled], int] = {}
    following = 0
    while True:
        while len(running) < limit and following < len(calls) and effect.may_start(following):
            # A task copies the context: what an item sets (its scope) stays its own.
            running[asyncio.ensure_future(start(calls[following]))] = following
            following += 1
        if not running:
            return results
        finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            index = running.pop(task)
            results[index] = task.result()
            effect.on_settle(index, results[index])  # type: ignore[arg-type]


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
