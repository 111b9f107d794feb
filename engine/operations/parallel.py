"""`step.parallel`: run branches concurrently; results come back in argument order.

A branch is a callable, or a `(name, callable)` pair.

Without completion options (the original form) a parallel group takes one position in
its scope and records nothing itself: each branch is a scope of its own under the
group's key (`StepKey.branch`), so the steps of branch 1 of the group at position 3 sit
at 00003.00001.00000, 00003.00001.00001, ... whatever order the branches finish in.
Replay happens in the branches: each branch's code runs again, and its steps replay
from their own positions exactly as anywhere else. A step recorded where the code now
asks for a group (or a group where it asks for a step) is non-deterministic.

Branches run as threads (sync workflows, at most `max_parallel_threads`) or tasks
(`async def`); with `max_concurrency`, at most that many at a time, and none starts
after a branch has failed. Every started branch settles before anything surfaces, so
the others finish and are recorded first; then, in argument order: an error that ends
the invocation (a fatal error, another invocation taking over, a port failure), then a
suspension (the run suspends, and finished branches are not re-run on resume), then a
branch's error.

With a completion option (`min_successful`, `tolerated_failure_count`,
`tolerated_failure_percentage`) the group is a batch (engine/operations/batch.py)
recorded as "parallel" with one record per branch (named by its pair, by
`item_namer(branch, index)`, or "branch-<i>"), and the call returns a `BatchResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.driver import Concurrently, Schedule, Settled
from engine.errors import SuspendRun
from engine.ids import StepKey
from engine.model import StepKind
from engine.operations.batch import Completion, Item, concurrency_limit, item_name, run_batch
from engine.session import Session
from sdk import NonDeterminismError, Serdes, WorkflowDefinitionError
from sdk._serdes import check_serdes

_USAGE = (
    "parallel takes callables or (name, callable) pairs, e.g. "
    "ctx.step.parallel(lambda: ctx.step.run('a', f), ('b', lambda: ctx.step.run('b', g)))"
)


async def parallel(
    session: Session,
    *branches: Callable[[], Any] | tuple[str, Callable[[], Any]],
    max_concurrency: int | None = None,
    min_successful: int | None = None,
    tolerated_failure_count: int | None = None,
    tolerated_failure_percentage: float | None = None,
    item_namer: Callable[[Any, int], str] | None = None,
    serdes: Serdes | None = None,
    item_serdes: Serdes | None = None,
) -> Any:
    what = "step.parallel"
    named = [_named(branch, index, item_namer) for index, branch in enumerate(branches)]
    limit = concurrency_limit(what, max_concurrency, len(named) or 1)
    completion = Completion.of(
        what, len(named), min_successful, tolerated_failure_count, tolerated_failure_percentage
    )
    stored_as = check_serdes(item_serdes, what=what) or check_serdes(serdes, what=what)
    if completion.active:
        return await run_batch(
            session,
            kind=StepKind.PARALLEL,
            item_kind=StepKind.BRANCH,
            step_id="parallel",
            items=[Item(item_name(what, name), call) for name, call in named],
            completion=completion,
            limit=limit,
            serdes=stored_as,
        )
    if not named:
        return []
    group = session.open_group()
    calls = [_in_scope(session, group.branch(index), call) for index, (_, call) in enumerate(named)]
    if max_concurrency is None:
        settled: list[Settled | None] = list(
            await Concurrently(calls, session.settings.max_parallel_threads)
        )
    else:
        failed: list[bool] = []
        settled = await Schedule(
            calls,
            limit=limit,
            max_threads=session.settings.max_parallel_threads,
            may_start=lambda _: not failed,
            on_settle=lambda _, outcome: failed.extend(
                [True]
                if outcome.error is not None and not isinstance(outcome.error, SuspendRun)
                else []
            ),
        )
    return _join(session, [outcome for outcome in settled if outcome is not None])


def _named(
    branch: object, index: int, namer: Callable[[Any, int], str] | None
) -> tuple[str, Callable[[], Any]]:
    if isinstance(branch, tuple):
        if len(branch) != 2 or not callable(branch[1]):
            raise WorkflowDefinitionError(_USAGE)
        return branch[0], branch[1]
    if not callable(branch):
        raise WorkflowDefinitionError(_USAGE)
    if namer is not None:
        return namer(branch, index), branch
    return f"branch-{index}", branch


def _in_scope(session: Session, scope: StepKey, branch: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        # Runs in the branch's own context (thread or task): positions count from here.
        session.enter_scope(scope)
        return branch()

    return call


def _join(session: Session, settled: list[Settled]) -> list[Any]:
    """Every started branch has settled: surface, in argument order, what must surface."""
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
