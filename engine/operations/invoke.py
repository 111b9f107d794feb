"""`step.invoke`: start a child run and return its output; its failure raises StepError.

Replay: the position holds the invoke's record. COMPLETED returns the child's output,
FAILED (the child failed or was cancelled) and TIMED_OUT raise `StepError`; WAITING past
its timeout is settled TIMED_OUT here (unless the child settled it first: then that is
the answer); otherwise the run suspends again.

First run: the child run is created first (idempotent: its id derives from this run and
the step's key), and the WAITING record second, so a crash in between makes the replay
create the same child again instead of waiting on nothing. A fast child may settle the
step before it is recorded: the conflict returns the child's record, which is the answer.
The child wakes this run when it finishes (`Lifecycle.notify_parent`); nothing polls.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ErrorType
from engine.ids import child_run_id
from engine.model import ErrorInfo, InvokeSpec, ParentRef, StepKind, StepRecord, StepStatus
from engine.session import Session, Slot, step_error
from sdk import INVOKED_EVENT, Event, Workflow, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration


async def invoke(
    session: Session,
    step_id: str,
    *,
    workflow: str | Workflow,
    data: dict[str, Any] | None = None,
    timeout: Duration | None = None,
) -> Any:
    what = f"step.invoke {step_id!r}"
    app = session.app
    workflow_id = workflow.id if isinstance(workflow, Workflow) else workflow
    child = app.get(workflow_id) if isinstance(workflow_id, str) else None
    if child is None:
        raise WorkflowDefinitionError(
            f"{what}: app {app.name!r} has no workflow {workflow_id!r} "
            f"(it has {sorted(app.workflows)})"
        )
    wait_for = parse_duration(timeout, what=f"{what} timeout") if timeout is not None else None
    payload = session.encode(f"{what} data", data or {})
    if not isinstance(payload, dict):
        raise WorkflowDefinitionError(f"{what}: data must be a JSON object (a dict)")
    slot = await session.open(StepKind.INVOKE, step_id)
    if slot.record is not None:
        return await _outcome(session, slot)
    now = session.clock.now()
    child_id = child_run_id(child.id, session.run_id, slot.key)
    parent = ParentRef(run_id=session.run_id, step_key=slot.key, step_id=slot.step_id)
    event = Event(name=INVOKED_EVENT, data=payload, id=child_id, ts=now)
    await session.call_port(
        lambda: session.lifecycle.start_run(child, event, run_id=child_id, parent=parent)
    )
    await session.record(
        slot,
        StepRecord(
            id=slot.step_id,
            kind=StepKind.INVOKE,
            status=StepStatus.WAITING,
            started_at=now,
            wake_at=now + wait_for if wait_for is not None else None,
            invoke=InvokeSpec(workflow=child.id, child_run_id=child_id),
        ),
        on_conflict="return",
    )
    return await _outcome(session, slot)


async def _outcome(session: Session, slot: Slot) -> Any:
    record = slot.record
    assert record is not None
    if record.status is StepStatus.COMPLETED:
        return record.output
    if record.settled:
        raise step_error(record)
    now = session.clock.now()
    if record.wake_at is not None and record.wake_at <= now:
        child = record.invoke.child_run_id if record.invoke else "?"
        waited = record.wake_at - (record.started_at or record.wake_at)
        await session.record(
            slot,
            record.model_copy(
                update={
                    "status": StepStatus.TIMED_OUT,
                    "ended_at": now,
                    "error": ErrorInfo(
                        type=ErrorType.INVOKE_TIMEOUT,
                        message=f"child run {child} did not finish within {waited}",
                    ),
                }
            ),
            on_conflict="return",
        )
        return await _outcome(session, slot)
    session.suspend(slot, "invoke", record.wake_at)
