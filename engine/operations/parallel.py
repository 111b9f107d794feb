"""`step.parallel`: run branches concurrently; results come back in argument order.

A parallel group takes one position in its scope, and records nothing itself: each
branch is a scope of its own under the group's key (`StepKey.branch`), so the steps of
branch 1 of the group at position 3 sit at 00003.00001.00000, 00003.00001.00001, ...
whatever order the branches finish in.

Replay happens in the branches: each branch's code runs again, and its steps replay
from their own positions exactly as anywhere else. A step recorded where the code now
asks for a group (or a group where it asks for a step) is non-deterministic.

Branches run as threads (sync workflows, at most `max_parallel_threads`) or tasks
(`async def`). Every branch settles before anything surfaces, so the others finish and
are recorded first; then, in argument order: an error that ends the invocation (a fatal
error, another invocation taking over, a port failure), then a suspension (the run
suspends, and finished branches are not re-run on resume), then a branch's error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.driver import Concurrently, Settled
from engine.errors import SuspendRun
from engine.ids import StepKey
from engine.session import Session
from sdk import NonDeterminismError, WorkflowDefinitionError


async def parallel(session: Session, *branches: Callable[[], Any]) -> list[Any]:
    if not all(callable(branch) for branch in branches):
        raise WorkflowDefinitionError(
            "parallel takes callables, e.g. "
            "ctx.step.parallel(lambda: ctx.step.run('a', f), lambda: ctx.step.run('b', g))"
        )
    if not branches:
        return []
    group = session.open_group()
    calls = [
        _in_scope(session, group.branch(index), branch) for index, branch in enumerate(branches)
    ]
    settled = await Concurrently(calls, session.settings.max_parallel_threads)
    return _join(session, settled)


def _in_scope(session: Session, scope: StepKey, branch: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        # Runs in the branch's own context (thread or task): positions count from here.
        session.enter_scope(scope)
        return branch()

    return call


def _join(session: Session, settled: list[Settled]) -> list[Any]:
    """Every branch has settled: surface, in argument order, what must surface."""
    for outcome in settled:
        error = outcome.error
        if error is None or isinstance(error, SuspendRun):
            continue
        if not isinstance(error, Exception) or isinstance(error, NonDeterminismError):
            raise error
    if any(isinstance(outcome.error, SuspendRun) for outcome in settled):
        session.mark_suspended()
        raise SuspendRun()
    for outcome in settled:
        if outcome.error is not None:
            raise outcome.error
    return [outcome.value for outcome in settled]
