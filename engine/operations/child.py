"""`step.child`: run a function of steps as one operation, recorded once.

The child takes one position K and writes a STARTED record there before its function
runs; its steps are recorded in a scope of their own under it (K+(0, 0), K+(0, 1), ...).
When the function returns, its result is recorded at K (COMPLETED; with `serdes`, as its
text), and every later replay returns it without calling the function, or reading the
steps inside. If the function raises, the child is recorded FAILED and `StepError` is
raised (a failing step inside keeps its error type). A suspension inside (a sleep, a
wait) suspends the run; on resume the function runs again and its recorded steps replay.

`run_scope` is that machinery for any operation made of other operations
(`wait_for_callback` runs its callback and its submitter step in one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.driver import Operation, Schedule, UserCall
from engine.errors import StepOutputError, SuspendRun
from engine.model import StepKind, StepRecord, StepStatus
from engine.operations.batch import failure_info
from engine.session import Session, step_error
from engine.values import from_record, to_record
from sdk import NonDeterminismError, Serdes, WorkflowDefinitionError
from sdk._serdes import check_serdes


async def child(
    session: Session, step_id: str, fn: Callable[[], Any], *, serdes: Serdes | None = None
) -> Any:
    what = f"step.child {step_id!r}"
    if not callable(fn):
        raise WorkflowDefinitionError(f"{what}: {fn!r} is not callable; child takes fn()")
    checked = check_serdes(serdes, what=what)

    async def body() -> Any:
        return await UserCall(fn)

    return await run_scope(session, StepKind.CHILD, step_id, body, checked)


async def run_scope(
    session: Session,
    kind: StepKind,
    step_id: str,
    body: Callable[[], Operation[Any]],
    serdes: Serdes | None,
) -> Any:
    """The scope operation at the next position: replayed from its record, or run."""
    slot = await session.open(kind, step_id, holds_steps=True)
    record = slot.record
    if record is not None and record.settled:
        if record.status is StepStatus.COMPLETED:
            return from_record(record.output, serdes)
        raise step_error(record)
    plugins = session.plugins
    if record is None:
        await session.record(
            slot,
            StepRecord(
                id=slot.step_id,
                kind=kind,
                status=StepStatus.STARTED,
                started_at=session.clock.now(),
            ),
        )
        if plugins is not None:
            plugins.operation_start(slot.step_id, kind.value)
    inner = slot.key.branch(0)

    async def scoped() -> Any:
        session.enter_scope(inner)
        return await body()

    [outcome] = await Schedule([lambda: scoped()], limit=1, max_threads=1, operations=True)
    assert outcome is not None
    error = outcome.error
    value = outcome.value
    if error is None:
        try:
            value = to_record(
                f"{kind} {step_id!r}", value, serdes, max_bytes=session.settings.max_output_bytes
            )
        except StepOutputError as unstorable:
            error = unstorable
    if isinstance(error, SuspendRun):
        session.mark_suspended()
        raise SuspendRun()
    if error is not None and (
        not isinstance(error, Exception) or isinstance(error, NonDeterminismError)
    ):
        raise error
    now = session.clock.now()
    started_at = slot.record.started_at if slot.record is not None else now
    if error is not None:
        failed = await session.record(
            slot,
            StepRecord(
                id=slot.step_id,
                kind=kind,
                status=StepStatus.FAILED,
                error=failure_info(error),
                started_at=started_at,
                ended_at=now,
            ),
        )
        if plugins is not None:
            plugins.operation_settled(failed, failed=True)
        raise step_error(failed)
    done = await session.record(
        slot,
        StepRecord(
            id=slot.step_id,
            kind=kind,
            status=StepStatus.COMPLETED,
            output=value,
            started_at=started_at,
            ended_at=now,
        ),
    )
    if plugins is not None:
        plugins.operation_settled(done, failed=False)
    return from_record(value, serdes)
